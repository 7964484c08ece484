"""Fill the cache of a slow competition baseline without training rnnkit.

    OMP_NUM_THREADS=1 python benchmarks/forecast_baselines.py --data m3 --baselines arima

Forecasts every series of each data set with the named baselines (`competition.score_baseline`)
and caches them under ``~/.cache/rnnkit/forecast-competition`` with the wall time, so that a
later ``rnnkit forecast evaluate --data m3 --cached-baselines arima`` reads them in seconds. The
cache key is the one the evaluation uses (data, split, series, protocol, baseline code and
package versions), so nothing computed here can be mistaken for another run's forecasts.
Prints each baseline's sMAPE and MASE on the split.
"""

from __future__ import annotations

import argparse

from rnnkit.apps.forecast.competition import competition_split, expand, score_baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="m3", help="data sets or collections (m3, m3-monthly)")
    parser.add_argument("--baselines", default="arima", help="comma-separated baselines")
    parser.add_argument("--part", choices=["test", "validation"], default="test")
    parser.add_argument("--workers", type=int, default=1, help="processes fitting the series")
    parser.add_argument("--limit", type=int, default=None, help="series per data set (timing)")
    args = parser.parse_args()
    for name in expand(args.data.split(",")):
        split = competition_split(name, args.part, limit=args.limit)
        for method in args.baselines.split(","):
            scores = score_baseline(method, split, workers=args.workers)
            print(f"{name} {args.part} {method}: {scores.summary()}", flush=True)


if __name__ == "__main__":
    main()
