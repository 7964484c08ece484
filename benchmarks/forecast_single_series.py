"""How a `Forecaster` trains on one short series: the single-series sweep, on M3 validation.

A newcomer often fits one series of a few hundred points. The defaults draw 100 batches of
256 windows an epoch whatever the data, so one monthly series of 144 points is read about
280 times an epoch (20 s to fit here; 3 days of 10-minute data, 7 minutes). The candidates
(`ForecasterConfig.max_passes`) cap an epoch at a number of passes over the training windows.
Neither binds on any of the ten benchmark collections (at most 25 passes there, M1 yearly),
so their results cannot change.

Data: 15 series (spread evenly, `competition_split(..., limit=15)`) of each M3 frequency's
validation split, less those too short to fit alone (`sample`), each fitted alone, seed 0,
one thread. Written down and
committed before any result (2026-12-02), with `RULE`:

    OMP_NUM_THREADS=1 python benchmarks/forecast_single_series.py --candidates defaults \
        --out results/forecast-single
    ... --candidates passes_100, then passes_30; then --choose --out results/forecast-single
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnkit.apps.forecast import Forecaster
from rnnkit.apps.forecast.competition import PROTOCOL, Split, competition_split, score
from rnnkit.apps.forecast.forecaster import history_needed
from rnnkit.data.timeseries import SERIES
from rnnkit.stats import paired_bootstrap

DATA = ["m3-monthly", "m3-quarterly", "m3-yearly", "m3-other"]
SERIES_PER_DATA = 15
METRICS = ("mase", "smape", "coverage")
# with the combination of then (the season sweep later made ``by_season`` the default)
_THEN = {"combine": "mean"}
CANDIDATES = {
    "defaults": _THEN,
    "passes_100": {**_THEN, "max_passes": 100},
    "passes_30": {**_THEN, "max_passes": 30},
}
RULE = (
    "a candidate replaces the defaults when, over the single-series fits, its MASE and its "
    "sMAPE minus the defaults' (paired 95% bootstrap over series) have upper ends of at most "
    "1% of the defaults' means, and its mean 80% coverage is at least the defaults' minus "
    "0.05; among such candidates the least total fit time wins; none: the defaults stay"
)

# What the rule chose (2026-12-02, `--choose`): ``defaults`` (none admissible: with 59 series
# the intervals are wider than the 1% margin). MASE / sMAPE / coverage / fit seconds for the
# 59: defaults 1.8569 / 12.997 / 0.705 / 932.4; passes_100 1.9826 / 12.847 / 0.885 / 43.8
# (MASE +0.1257 [-0.1100, +0.4197]); passes_30 1.9002 / 12.510 / 0.946 / 15.9 (MASE +0.0433
# [-0.1849, +0.3344], sMAPE -0.4865 [-1.5512, +0.6697]). `max_passes` stays an option
# (``--max-passes``), off by default.


def sample(name: str) -> Split:
    """``name``'s validation sample, without the series too short for a model of their own
    (fewer points than a season of history plus the horizon: `Forecaster.fit` refuses them,
    whatever the candidate; amended after the first run stopped at one, before any score)."""
    split = competition_split(name, "validation", limit=SERIES_PER_DATA)
    lengths = split.history.frame.groupby(SERIES, sort=False).size()
    model = Forecaster(horizon=split.horizon)
    needed = history_needed(
        model.season_length_for(split.history), model.context_length_for(split.history)
    )
    keep = [i for i, sid in enumerate(split.ids) if lengths[sid] >= needed + split.horizon]
    return dataclasses.replace(
        split,
        ids=[split.ids[i] for i in keep],
        truth=split.truth[keep],
        scales=split.scales[keep],
    )


def fit_one_at_a_time(split: Split, options: dict) -> tuple[dict, float]:
    """Each series of ``split`` fitted alone: (forecast arrays, seconds)."""
    frames, seconds = [], 0.0
    for sid in split.ids:
        one = split.history.frame[SERIES] == sid
        history = dataclasses.replace(split.history, frame=split.history.frame[one])
        start = time.perf_counter()
        model = Forecaster(horizon=split.horizon, seed=PROTOCOL.seed, **options).fit(history)
        frame = model.predict()
        seconds += time.perf_counter() - start
        frames.append(frame)
    frame = pd.concat(frames)
    arrays = {
        column: np.stack([frame[frame[SERIES] == sid][column].to_numpy(float) for sid in split.ids])
        for column in ("forecast", "lo_80", "hi_80")
    }
    return arrays, seconds


def choose(out: Path) -> dict:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    found: dict[str, dict] = {}
    for row in rows:
        found.setdefault(row["candidate"], {})[row["data"]] = row
    splits = {d: sample(d) for d in DATA}

    def pooled(candidate: str) -> dict[str, np.ndarray]:
        """Per-series MASE, sMAPE and coverage of ``candidate``, over the four samples."""
        parts = []
        for d in DATA:
            arrays = np.load(out / f"{d}_{candidate}.npz")
            parts.append(
                score(
                    splits[d], arrays["forecast"], candidate, 0.0, arrays["lo_80"], arrays["hi_80"]
                )
            )
        return {m: np.concatenate([getattr(p, m) for p in parts]) for m in METRICS}

    reference = pooled("defaults")
    report = {}
    for candidate in CANDIDATES:
        if set(found.get(candidate, {})) != set(DATA):
            continue
        mine = pooled(candidate)
        row = {
            "mase": float(mine["mase"].mean()),
            "smape": float(mine["smape"].mean()),
            "coverage_80": float(mine["coverage"].mean()),
            "fit_seconds": round(sum(r["seconds"] for r in found[candidate].values()), 1),
        }
        if candidate != "defaults":
            for metric in ("mase", "smape"):
                row[f"{metric}_vs_defaults"] = paired_bootstrap(
                    mine[metric], reference[metric], seed=PROTOCOL.seed
                ).to_dict()
            row["admissible"] = bool(
                row["mase_vs_defaults"]["high"] <= 0.01 * reference["mase"].mean()
                and row["smape_vs_defaults"]["high"] <= 0.01 * reference["smape"].mean()
                and row["coverage_80"] >= reference["coverage"].mean() - 0.05
            )
        report[candidate] = row
    admissible = [c for c, r in report.items() if r.get("admissible")]
    chosen = min(admissible, key=lambda c: report[c]["fit_seconds"]) if admissible else "defaults"
    return {"rule": RULE, "chosen": chosen, "candidates": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=["defaults"], choices=CANDIDATES)
    parser.add_argument("--data", nargs="+", default=DATA, choices=DATA)
    parser.add_argument("--out", default="results/forecast-single")
    parser.add_argument("--choose", action="store_true", help="apply RULE to the saved runs")
    args = parser.parse_args()
    out = Path(args.out)
    if args.choose:
        print(json.dumps(choose(out), indent=1))
        return
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    for candidate in args.candidates:
        for name in args.data:
            split = sample(name)
            arrays, seconds = fit_one_at_a_time(split, CANDIDATES[candidate])
            np.savez(out / f"{name}_{candidate}.npz", **arrays)
            row = {
                "candidate": candidate,
                "data": name,
                "series": len(split.ids),
                "seconds": round(seconds, 1),
            }
            print(json.dumps(row), flush=True)
            with open(out / "results.jsonl", "a") as log:
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
