"""A newcomer's own series: `Forecaster(horizon=h)` with its defaults on single real series.

Issue 12 began with a user who fitted the defaults on one real monthly series at a time and
lost to Holt-Winters. This reruns that experience on real public series that ship inside
installed packages (statsmodels' and pmdarima's example data), none of them bundled with
rnnkit or looked at when its defaults were chosen. The protocol is fixed here before any of
its results (2026-12-01):

- `SERIES`: 14 series, yearly to half-hourly, with the horizon of their frequency (yearly 6,
  quarterly 8, monthly 12 as in the issue, weekly 13, half-hourly 48).
- Each series is forecast from 3 origins: the starts of its last 3 non-overlapping horizons.
  At each origin every method sees the history before it only; rnnkit is refitted there,
  `Forecaster(horizon=h, seed=0)` and nothing else (the season comes from the time index).
- Methods: rnnkit, seasonal naive, Theta and ETS chosen by AICc (the M3 benchmark's own
  baselines, `apps/forecast/baselines.py`; ETS is what the issue's Holt-Winters grew into).
- Scores per series (mean over its 3 origins): MASE (each origin's errors over the history's
  in-sample seasonal naive MAE), sMAPE, and the share of the truth inside rnnkit's 80%
  interval. Differences (rnnkit minus a baseline) with a paired 95% bootstrap over the series.

    OMP_NUM_THREADS=1 python benchmarks/forecast_newcomer.py --out results/newcomer
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnkit.apps.forecast import Forecaster
from rnnkit.apps.forecast.baselines import COMPETITION_BASELINES
from rnnkit.apps.forecast.metrics import naive_scale
from rnnkit.apps.forecast.series import fill_missing
from rnnkit.stats import paired_bootstrap

ORIGINS = 3
HORIZONS = {"YS": 6, "QS": 8, "MS": 12, "W-SAT": 13, "30min": 48}
BASELINES = ("seasonal_naive", "theta", "ets")


def _pmdarima(name: str, start: str, freq: str) -> pd.Series:
    import pmdarima.datasets as datasets

    values = np.asarray(getattr(datasets, f"load_{name}")(), float)
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq))


def _statsmodels(name: str) -> pd.DataFrame:
    import statsmodels.api as sm

    return getattr(sm.datasets, name).load_pandas().data


def _elnino() -> pd.Series:
    years = _statsmodels("elnino").drop(columns="YEAR").to_numpy(float).ravel()
    return pd.Series(years, index=pd.date_range("1950-01-01", periods=len(years), freq="MS"))


def _macro(column: str) -> pd.Series:
    data = _statsmodels("macrodata")
    return pd.Series(
        data[column].to_numpy(float),
        index=pd.date_range("1959-01-01", periods=len(data), freq="QS"),
    )


def _yearly(name: str, column: str, first: int) -> pd.Series:
    values = _statsmodels(name)[column].to_numpy(float)
    return pd.Series(values, index=pd.date_range(f"{first}-01-01", periods=len(values), freq="YS"))


def _co2() -> pd.Series:
    weekly = _statsmodels("co2")["co2"]
    return weekly.asfreq("W-SAT")  # missing weeks stay NaN: "not observed"


# name -> (loader, frequency); fixed before any result
SERIES: dict[str, tuple[Callable[[], pd.Series], str]] = {
    "airpassengers": (lambda: _pmdarima("airpassengers", "1949-01-01", "MS"), "MS"),
    "wineind": (lambda: _pmdarima("wineind", "1980-01-01", "MS"), "MS"),
    "sunspots-monthly": (lambda: _pmdarima("sunspots", "1749-01-01", "MS"), "MS"),
    "elnino": (_elnino, "MS"),
    "ausbeer": (lambda: _pmdarima("ausbeer", "1956-01-01", "QS"), "QS"),
    "austres": (lambda: _pmdarima("austres", "1971-04-01", "QS"), "QS"),
    "woolyrnq": (lambda: _pmdarima("woolyrnq", "1965-01-01", "QS"), "QS"),
    "us-realgdp": (lambda: _macro("realgdp"), "QS"),
    "us-unemployment": (lambda: _macro("unemp"), "QS"),
    "lynx": (lambda: _pmdarima("lynx", "1821-01-01", "YS"), "YS"),
    "nile": (lambda: _yearly("nile", "volume", 1871), "YS"),
    "sunspots-yearly": (lambda: _yearly("sunspots", "SUNACTIVITY", 1700), "YS"),
    "co2-weekly": (_co2, "W-SAT"),
    "taylor": (lambda: _pmdarima("taylor", "2000-06-05", "30min"), "30min"),
}


def evaluate_series(name: str, series: pd.Series, freq: str) -> dict:
    """Every method at the series' `ORIGINS` origins: per-origin scores and rnnkit's time."""
    horizon = HORIZONS[freq]
    rows = {m: {"mase": [], "smape": []} for m in ("rnnkit", *BASELINES)}
    covered, seconds = [], 0.0
    for k in range(ORIGINS, 0, -1):
        origin = len(series) - k * horizon
        history, truth = series.iloc[:origin], series.iloc[origin : origin + horizon].to_numpy()
        frame = pd.DataFrame({"time": history.index, "value": history.to_numpy()})
        start = time.perf_counter()
        model = Forecaster(horizon=horizon, seed=0).fit(frame, time="time", target="value")
        forecast = model.predict()
        seconds += time.perf_counter() - start
        season = int(model.meta["season_length"])
        scale = naive_scale(history.to_numpy(), season)
        forecasts = {"rnnkit": forecast["forecast"].to_numpy()}
        values = fill_missing(history.to_numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method in BASELINES:
                forecasts[method] = COMPETITION_BASELINES[method](values, horizon, season)
        seen = ~np.isnan(truth)
        for method, predicted in forecasts.items():
            error = np.abs(truth - predicted)[seen]
            rows[method]["mase"].append(float(error.mean() / scale))
            denominator = (np.abs(truth) + np.abs(predicted))[seen]
            rows[method]["smape"].append(float(np.mean(200 * error / denominator)))
        inside = (truth >= forecast["lo_80"].to_numpy()) & (truth <= forecast["hi_80"].to_numpy())
        covered.append(float(inside[seen].mean()))
    summary = {m: {k: float(np.mean(v)) for k, v in scores.items()} for m, scores in rows.items()}
    return {
        "series": name,
        "freq": freq,
        "length": len(series),
        "horizon": horizon,
        "season": season,
        "scores": summary,
        "coverage_80": float(np.mean(covered)),
        "rnnkit_seconds": round(seconds, 1),
    }


def compare(results: list[dict]) -> dict:
    """rnnkit minus each baseline, paired over series (95% bootstrap), MASE and sMAPE."""
    out = {}
    for method in BASELINES:
        out[method] = {}
        for metric in ("mase", "smape"):
            ours = np.array([r["scores"]["rnnkit"][metric] for r in results])
            theirs = np.array([r["scores"][method][metric] for r in results])
            interval = paired_bootstrap(ours, theirs, seed=0)
            verdict = interval.verdict(higher_is_better=False)
            out[method][metric] = {**interval.to_dict(), "verdict": verdict}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/newcomer")
    parser.add_argument("--series", default=None, help="comma-separated names (a subset)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.series.split(",") if args.series else list(SERIES)
    results = []
    for name in names:
        loader, freq = SERIES[name]
        found = evaluate_series(name, loader(), freq)
        scores = found["scores"]
        print(
            f"{name:18s} {freq:6s} n={found['length']:5d} season={found['season']:3d} "
            + " ".join(f"{m} {scores[m]['mase']:.3f}" for m in scores)
            + f" coverage {found['coverage_80']:.2f} ({found['rnnkit_seconds']} s)",
            flush=True,
        )
        results.append(found)
    means = {
        m: {k: float(np.mean([r["scores"][m][k] for r in results])) for k in ("mase", "smape")}
        for m in ("rnnkit", *BASELINES)
    }
    report = {
        "protocol": __doc__,
        "series": results,
        "mean": means,
        "coverage_80": float(np.mean([r["coverage_80"] for r in results])),
        "rnnkit_minus": compare(results) if len(results) > 1 else {},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({"mean": means, "coverage_80": report["coverage_80"]}, indent=1))
    for method, metrics in report["rnnkit_minus"].items():
        for metric, interval in metrics.items():
            print(
                f"rnnkit - {method} {metric}: {interval['estimate']:+.3f} "
                f"[{interval['low']:+.3f}, {interval['high']:+.3f}] rnnkit {interval['verdict']}"
            )


if __name__ == "__main__":
    main()
