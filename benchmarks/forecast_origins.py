"""rnnkit against ETS at earlier origins of the training parts (a diagnostic; no test data).

The test table shows rnnkit losing to ETS in MASE on M3 `other` while the validation split
(the last horizon of each training part) shows a tie. Would more validation origins have shown
the loss? This fits the defaults and ETS at the validation origin and at the one or two
horizons before it, each time on the history before that origin only, and prints MASE with
the paired 95% interval over series. It chooses nothing.

    OMP_NUM_THREADS=1 python benchmarks/forecast_origins.py --data m3-other --origins 3
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from rnnkit.apps.forecast import Forecaster
from rnnkit.apps.forecast.baselines import COMPETITION_BASELINES
from rnnkit.apps.forecast.competition import PROTOCOL, SERIES
from rnnkit.apps.forecast.metrics import naive_scale
from rnnkit.data.timeseries import load_competition
from rnnkit.stats import paired_bootstrap


def by_series(frame, column: str) -> list[np.ndarray]:
    return [g[column].to_numpy(float) for _, g in frame.groupby(SERIES, sort=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="m3-other")
    parser.add_argument("--origins", type=int, default=3, help="the validation origin and before")
    args = parser.parse_args()
    torch.set_num_threads(1)
    horizon = PROTOCOL.horizon(args.data)
    data = load_competition(args.data)
    for back in range(1, args.origins + 1):  # back = 1: the validation split itself
        history = data.drop_last(back * horizon)
        following = data.drop_last((back - 1) * horizon) if back > 1 else data
        truth = np.stack(by_series(following.tail_of_each(horizon).frame, "value"))
        model = Forecaster(horizon=horizon, seed=PROTOCOL.seed).fit(history)
        rnnkit = np.stack(by_series(model.predict(data=history), "forecast"))
        histories = by_series(history.frame, "value")
        season = data.season_length
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ets = np.stack([COMPETITION_BASELINES["ets"](h, horizon, season) for h in histories])
        scale = np.array([naive_scale(h, season) for h in histories])[:, None]
        ours, theirs = (np.mean(np.abs(truth - f) / scale, axis=1) for f in (rnnkit, ets))
        difference = paired_bootstrap(ours, theirs, seed=PROTOCOL.seed)
        print(
            f"{args.data} origin {back * horizon} steps before the training part's end: MASE "
            f"rnnkit {ours.mean():.4f}, ETS {theirs.mean():.4f}, rnnkit minus ETS {difference} "
            f"({difference.verdict(higher_is_better=False)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
