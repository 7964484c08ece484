"""How much of the M3 table is the seed? The test table rerun with seeds 0-4 (reporting only).

The README's M3 table is one training per frequency (seed 0). A network's errors move with its
seed, and a comparison that flips with the seed is not a result. This reruns the README's
command with `SEEDS` (nothing else changed: same defaults, same cached baselines, test part),
then prints, per data set:

- rnnkit's sMAPE and MASE at each seed, their mean and standard deviation;
- against every baseline, the verdict at each seed (paired bootstrap over series, as the table);
- the seed-averaged comparison: each series' score averaged over the seeds (what a user can
  expect from one training with an unknown seed), minus the baseline's, with the paired 95%
  bootstrap over series.

It chooses nothing: the defaults, seeds and baselines were fixed before it ran (2026-12-01).

    OMP_NUM_THREADS=1 python benchmarks/forecast_seeds.py --out results/m3-seeds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from rnnkit.stats import paired_bootstrap

SEEDS = (0, 1, 2, 3, 4)
BASELINES = ("theta", "ets", "arima")
COMMAND = (
    "forecast evaluate --data m3 --baselines seasonal_naive,naive2,theta,ets,arima "
    "--cached-baselines ets,arima --workers 1"
)


def run_seed(seed: int, out: Path) -> dict:
    """The README's M3 command with ``--seed seed`` (skipped where its results exist)."""
    folder = out / f"seed{seed}"
    if not (folder / "per_series.json").exists():
        command = [str(Path(sys.executable).with_name("rnnkit")), *COMMAND.split()]
        subprocess.run([*command, "--seed", str(seed), "--out", str(folder)], check=True)
    return json.loads((folder / "per_series.json").read_text())


def summarise(runs: dict[int, dict]) -> dict:
    """Per data set: rnnkit's scores per seed and the comparisons described above."""
    summary = {}
    first = runs[SEEDS[0]]
    for data in first:
        ids = first[data]["ids"]
        entry = {"series": len(ids), "rnnkit": {}, "against": {}}
        for metric in ("smape", "mase"):
            per_seed = []
            for seed in SEEDS:
                assert runs[seed][data]["ids"] == ids, "seeds scored different series"
                per_seed.append(np.asarray(runs[seed][data]["rnnkit"][metric], float))
            per_seed = np.stack(per_seed)  # (seeds, series)
            means = per_seed.mean(axis=1)
            entry["rnnkit"][metric] = {
                "per_seed": means.round(4).tolist(),
                "mean": round(float(means.mean()), 4),
                "std": round(float(means.std(ddof=1)), 4),
            }
            for baseline in BASELINES:
                if baseline not in first[data]:
                    continue
                theirs = np.asarray(first[data][baseline][metric], float)
                verdicts = [
                    paired_bootstrap(row, theirs).verdict(higher_is_better=False)
                    for row in per_seed
                ]
                averaged = paired_bootstrap(per_seed.mean(axis=0), theirs)
                entry["against"].setdefault(baseline, {})[metric] = {
                    "baseline": round(float(theirs.mean()), 4),
                    "verdict_per_seed": verdicts,
                    "seed_averaged_difference": [
                        round(averaged.estimate, 4),
                        round(averaged.low, 4),
                        round(averaged.high, 4),
                    ],
                    "seed_averaged_verdict": averaged.verdict(higher_is_better=False),
                }
        summary[data] = entry
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/m3-seeds"))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="run these only")
    args = parser.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        run_seed(seed, args.out)
    if not all((args.out / f"seed{s}" / "per_series.json").exists() for s in SEEDS):
        return  # a partial run (--seeds): summarise once every seed is there
    summary = summarise({seed: run_seed(seed, args.out) for seed in SEEDS})
    (args.out / "seeds.json").write_text(json.dumps(summary, indent=1))
    for data, entry in summary.items():
        for metric in ("smape", "mase"):
            scores = entry["rnnkit"][metric]
            spread = f"mean {scores['mean']} sd {scores['std']}"
            print(f"{data} {metric}: rnnkit {scores['per_seed']} {spread}")
            for baseline, result in entry["against"].items():
                r = result[metric]
                print(
                    f"  vs {baseline} {r['baseline']}: per seed {r['verdict_per_seed']}; "
                    f"seed-averaged "
                    f"{r['seed_averaged_difference']} {r['seed_averaged_verdict']}"
                )


if __name__ == "__main__":
    main()
