"""How the `Forecaster`'s defaults were chosen: candidates on the M3 validation split only.

Each candidate is a set of `ForecasterConfig` options over the defaults; it is fitted on
every series' training part without its last horizon and scored on that horizon (the
protocol of `rnnkit.apps.forecast.competition`; the test part is never read here). The
figures this printed are recorded beside `DEFAULTS_DECISIONS` in `apps/forecast/config.py`.

    OMP_NUM_THREADS=1 python benchmarks/forecast_defaults.py --data m3-monthly \
        --candidates defaults legacy --out results/forecast-defaults
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rnnkit.apps.forecast import Forecaster
from rnnkit.apps.forecast.competition import (
    PROTOCOL,
    compare,
    competition_split,
    score_baseline,
    score_forecaster,
)

# name -> options over the defaults
CANDIDATES: dict[str, dict] = {
    "defaults": {},
    # the defaults before issue 12: last-value/std scaling, likelihood loss, as it was
    "legacy": dict(
        scaling="last", deseasonalize=False, loss="nll", combine="none", context_length=None
    ),
    "no_deseasonalize": dict(deseasonalize=False),
    "candidate": dict(
        deseasonalize=True, scaling="level", loss="mae_nll", context_length=36, combine="theta"
    ),
    "scaling_last": dict(scaling="last"),
    "loss_nll": dict(loss="nll"),
    "no_combine": dict(combine="none"),
    # the default before the equal-weight mean: Theta alone, its weight chosen per fit
    "combine_theta": dict(combine="theta"),
    "more_training": dict(
        deseasonalize=True,
        scaling="level",
        loss="mae_nll",
        context_length=36,
        combine="theta",
        batch_size=256,
        batches_per_epoch=100,
        epochs=15,
        schedule="plateau",
    ),
    "context_24": dict(context_length=24),
    "context_60": dict(context_length=60),
    "ensemble_3": dict(ensemble=3),
    "hidden_32": dict(hidden_size=32),
    "layers_1": dict(num_layers=1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="m3-monthly")
    parser.add_argument("--candidates", nargs="+", default=["defaults"])
    parser.add_argument("--limit", type=int, default=None, help="series (smoke runs)")
    parser.add_argument("--baselines", default="theta", help="comma-separated, cached")
    parser.add_argument("--out", default="results/forecast-defaults")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = competition_split(args.data, "validation", limit=args.limit)
    baselines = {b: score_baseline(b, split) for b in args.baselines.split(",")}
    for name in args.candidates:
        base, _, extra = name.partition("+")  # "more_training+num_layers=1"
        options = {**CANDIDATES[base], "seed": PROTOCOL.seed}
        for setting in filter(None, extra.split(",")):
            key, value = setting.split("=")
            options[key] = json.loads(value) if value[0] in "0123456789-[{tfn" else value
        start = time.perf_counter()
        model = Forecaster(horizon=split.horizon, **options).fit(split.history)
        minutes = (time.perf_counter() - start) / 60
        runs = {name: model.predict(data=split.history)}
        weight = model.meta.get("combine_weight", 1.0)
        if weight < 1.0:  # the network alone, for the record
            model._meta["combine_weight"] = 1.0
            runs[f"{name}/network"] = model.predict(data=split.history)
        for label, frame in runs.items():
            scores = score_forecaster(lambda history, h, f=frame: f, split, label)
            row = {
                "data": args.data,
                **scores.summary(),
                "fit_minutes": round(minutes, 1),
                "weight": weight,
                "combine_errors": model.meta.get("combine_errors"),
                "best_epoch": model.meta.get("best_epoch"),
                "interval_scale": [round(f, 2) for f in model.meta["interval_scale"]],
                "vs": {b: compare(scores, s)["smape"] for b, s in baselines.items()},
                "baselines": {b: s.summary()["smape"] for b, s in baselines.items()},
            }
            np.save(out / f"{args.data}_{label.replace('/', '_')}.npy", scores.forecast)
            print(json.dumps(row), flush=True)
            with open(out / "results.jsonl", "a") as log:
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
