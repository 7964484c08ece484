"""How `Forecaster` fit and predict time and peak memory grow with the number of series.

Synthetic monthly series of M3-monthly length (126 points: level, trend, a yearly season,
multiplicative noise; seeded) are forecast 18 steps ahead by one global
``Forecaster(horizon=18)``. Each size runs in its own process, so that its peak resident
memory (``ru_maxrss``) is its own. The training length is fixed (``--epochs`` epochs of the
default batches): the cost that grows with the number of series is everything else: the
windows, the validation and calibration windows, and the forecast of every series.

Usage:
    python benchmarks/forecast_scale.py                        # 1k, 10k, 100k series
    python benchmarks/forecast_scale.py --sizes 1000,10000 --json scale.json
    python benchmarks/forecast_scale.py --quick                # 200 and 400 series, seconds

A size whose run would not fit is skipped by ``--max-seconds`` / ``--max-gib``: after each
size, the next one (10x as many series) is run only if a linear extrapolation of this one's
time and memory fits the bounds. Beyond one machine: the engine trains over
accelerate/torchrun (``accelerate launch``), which splits the batches, not the series.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

LENGTH = 126  # the longest M3 monthly training part
HORIZON = 18


def synthetic(n_series: int, seed: int = 0) -> pd.DataFrame:
    """``n_series`` monthly series of ``LENGTH`` points in the long format of `Forecaster`."""
    rng = np.random.default_rng(seed)
    steps = np.arange(LENGTH)
    level = rng.uniform(500, 5000, (n_series, 1))
    trend = rng.normal(0, 0.004, (n_series, 1))
    amplitude = rng.uniform(0, 0.3, (n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, (n_series, 1))
    season = 1 + amplitude * np.sin(2 * np.pi * steps / 12 + phase)
    noise = np.exp(rng.normal(0, 0.05, (n_series, LENGTH)))
    values = level * np.exp(trend * steps) * season * noise
    times = pd.date_range("1990-01-01", periods=LENGTH, freq="MS")
    return pd.DataFrame(
        {
            "time": np.tile(times.to_numpy(), n_series),
            "series": np.repeat([f"s{i}" for i in range(n_series)], LENGTH),
            "value": values.ravel(),
        }
    )


def measure(n_series: int, epochs: int) -> dict:
    """Fit and predict on ``n_series`` series in this process; time and peak memory."""
    import torch

    from rnnkit.apps.forecast import Forecaster

    torch.set_num_threads(1)
    start = time.perf_counter()
    frame = synthetic(n_series)
    built = time.perf_counter() - start
    model = Forecaster(horizon=HORIZON, epochs=epochs)
    start = time.perf_counter()
    model.fit(frame, time="time", target="value", series_id="series")
    fitted = time.perf_counter() - start
    start = time.perf_counter()
    forecast = model.predict()
    predicted = time.perf_counter() - start
    assert len(forecast) == n_series * HORIZON and np.isfinite(forecast["forecast"]).all()
    return {
        "series": n_series,
        "data_seconds": round(built, 2),
        "fit_seconds": round(fitted, 2),
        "predict_seconds": round(predicted, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "epochs": epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--epochs", type=int, default=2, help="fixed training length")
    parser.add_argument("--max-seconds", type=float, default=1800, help="per size")
    parser.add_argument("--max-gib", type=float, default=12.0, help="peak memory per size")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:  # the child process of one size
        print(json.dumps(measure(args.one, args.epochs)))
        return
    sizes = [200, 400] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows: list[dict] = []
    for n in sorted(sizes):
        if rows:  # skip a size whose linear extrapolation does not fit the bounds
            last = rows[-1]
            factor = n / last["series"]
            seconds = factor * (last["fit_seconds"] + last["predict_seconds"])
            gib = factor * last["peak_rss_gib"]
            if seconds > args.max_seconds or gib > args.max_gib:
                print(f"{n} series: skipped (linear growth: ~{seconds:.0f} s, ~{gib:.1f} GiB)")
                rows.append({"series": n, "skipped": True})
                break
        command = [sys.executable, __file__, "--one", str(n), "--epochs", str(args.epochs)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            print(done.stderr[-2000:])
            rows.append({"series": n, "failed": done.returncode})
            break
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
        if args.json:  # written after every size: a run cut short keeps what it finished
            from rnnkit.files import write_json

            write_json(args.json, {"rows": rows, "length": LENGTH, "horizon": HORIZON})
    measured = [r for r in rows if "fit_seconds" in r]
    for previous, row in zip(measured, measured[1:], strict=False):
        ratio = row["series"] / previous["series"]
        grow = (row["fit_seconds"] + row["predict_seconds"]) / (
            previous["fit_seconds"] + previous["predict_seconds"]
        )
        print(f"{previous['series']} -> {row['series']} series (x{ratio:g}): time x{grow:.2f}")


if __name__ == "__main__":
    main()
