"""Zeros and flat windows (2026-12-01, night): the check that decides whether the fix stays.

An audit on real series rnnkit had never seen found two defects of the defaults on series
that reach zero (solar power at night, counts of prescriptions): such a series got no
seasonal indices at all (multiplicative indices need positive values), so Theta and the
damped trend, two thirds of the median, forecast a flat line under a daily cycle; and a
window of zeros got a scale of a millionth, so its 80% interval was a millionth wide. The
fix: additive seasonal indices for a series that reaches zero (as for one that goes below,
`series.seasonal_components`), and a flat window scaled by its series' spread
(`windows.location_scale`, ``flat_scale``).

Of the ten competition data sets only Tourism's monthly (61 series) and quarterly (12) have
zeros; nothing else moves (Tourism yearly is rerun to show that). `RULE`, written before the
runs below: the fix stays unless, on the validation splits of Tourism monthly and quarterly
pooled (the test parts are not read here), rnnkit's MASE or sMAPE with the fix is worse
than without it beyond the paired 95% interval over series (its lower end above zero).

    for data in tourism-monthly tourism-quarterly tourism-yearly; do
        OMP_NUM_THREADS=1 python benchmarks/forecast_defaults.py --data $data \\
            --candidates defaults --out results/zeros-fix; done
    python benchmarks/forecast_zeros.py --fixed results/zeros-fix \\
        --before results/forecast-sweep --before-name all_three

``--before`` holds the same runs made before the fix (the MASE sweep's ``all_three``, which
became the defaults: `benchmarks/forecast_defaults.py --candidates sweep`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rnnkit.apps.forecast.competition import PROTOCOL, competition_split, score
from rnnkit.stats import paired_bootstrap

DATA = ("tourism-monthly", "tourism-quarterly")
UNCHANGED = ("tourism-yearly",)  # no zeros: the same forecasts to the last digit
RULE = (
    "the fix stays unless, pooled over the validation splits of Tourism monthly and "
    "quarterly, its MASE or sMAPE minus the one before it has a paired 95% interval over "
    "series whose lower end is above zero"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", required=True, help="forecast_defaults.py --out of the fix")
    parser.add_argument("--before", required=True, help="the same runs before the fix")
    parser.add_argument("--before-name", default="defaults", help="candidate name in --before")
    args = parser.parse_args()
    report = {"rule": RULE}
    pooled = {"fixed": {"mase": [], "smape": []}, "before": {"mase": [], "smape": []}}
    for data in DATA + UNCHANGED:
        split = competition_split(data, "validation")
        runs = {
            "fixed": np.load(Path(args.fixed) / f"{data}_defaults.npy"),
            "before": np.load(Path(args.before) / f"{data}_{args.before_name}.npy"),
        }
        scores = {name: score(split, forecast, name) for name, forecast in runs.items()}
        zeros = np.array([bool((history <= 0).any()) for history in split.histories()])
        report[data] = {
            "series": len(zeros),
            "series_with_zeros": int(zeros.sum()),
            "identical_forecasts": bool(np.array_equal(runs["fixed"], runs["before"])),
            **{
                f"{metric}_{name}": round(float(getattr(found, metric).mean()), 4)
                for name, found in scores.items()
                for metric in ("mase", "smape")
            },
            "mase_with_zeros": {
                name: round(float(found.mase[zeros].mean()), 4) if zeros.any() else None
                for name, found in scores.items()
            },
        }
        if data in DATA:
            for name, found in scores.items():
                for metric in ("mase", "smape"):
                    pooled[name][metric].append(getattr(found, metric))
    verdicts = {}
    for metric in ("mase", "smape"):
        fixed = np.concatenate(pooled["fixed"][metric])
        before = np.concatenate(pooled["before"][metric])
        interval = paired_bootstrap(fixed, before, seed=PROTOCOL.seed).to_dict()
        report[f"pooled_{metric}_fixed_minus_before"] = interval
        verdicts[metric] = interval["low"] > 0
    report["fix_stays"] = not any(verdicts.values())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
