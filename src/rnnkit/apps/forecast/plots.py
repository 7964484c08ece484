"""PNG plots of history, forecast and 80% interval (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rnnkit.files import atomic_path  # noqa: E402


def plot_forecast(
    path: str | os.PathLike,
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    target: str,
    title: str = "",
    history_points: int = 200,
) -> None:
    """One panel per series (at most 4): the last ``history_points`` of history, the median
    forecast and its interval band.

    Args:
        history: columns time, series, ``target``.
        forecast: `Forecaster.predict` output (series, time, forecast, lo_L, hi_L).
    """
    series = list(dict.fromkeys(forecast["series"]))[:4]
    figure, axes = plt.subplots(len(series), 1, figsize=(10, 2.6 * len(series)), squeeze=False)
    level = next((c[3:] for c in forecast.columns if c.startswith("lo_")), None)
    for axis, sid in zip(axes[:, 0], series, strict=True):
        past = history[history["series"] == sid].tail(history_points)
        future = forecast[forecast["series"] == sid]
        axis.plot(past["time"], past[target], color="black", lw=1, label="history")
        axis.plot(future["time"], future["forecast"], color="tab:blue", lw=1.5, label="forecast")
        if level:
            axis.fill_between(
                future["time"],
                future[f"lo_{level}"],
                future[f"hi_{level}"],
                color="tab:blue",
                alpha=0.25,
                label=f"{level}% interval",
            )
        axis.set_title(f"{title} {sid}".strip(), fontsize=9)
        axis.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    _save(figure, path)


def plot_backtest(path: str | os.PathLike, results: list) -> None:
    """For each backtested data set, the last test window of its first series: history,
    truth, rnnkit's median and 80% band, and the ETS and seasonal naive forecasts."""
    figure, axes = plt.subplots(len(results), 1, figsize=(10, 2.8 * len(results)), squeeze=False)
    for axis, result in zip(axes[:, 0], results, strict=True):
        first = result.windows[0].series
        window = [w for w in result.windows if w.series == first][-1]
        horizon = len(window.truth)
        past = window.history[-3 * horizon :]
        x_past = np.arange(-len(past), 0)
        x_future = np.arange(horizon)
        axis.plot(x_past, past, color="black", lw=1, label="history")
        axis.plot(x_future, window.truth, color="black", lw=1, ls="--", label="truth")
        styles = {
            "rnnkit": ("tab:blue", "-"),
            "ets": ("tab:orange", ":"),
            "seasonal_naive": ("tab:green", ":"),
            "arima": ("tab:red", ":"),
        }
        for name, (color, style) in styles.items():
            if name in window.forecasts:
                axis.plot(
                    x_future, window.forecasts[name][0.5], color=color, ls=style, lw=1.5, label=name
                )
        if "rnnkit" in window.forecasts:
            quantiles = window.forecasts["rnnkit"]
            axis.fill_between(
                x_future,
                quantiles[0.1],
                quantiles[0.9],
                color="tab:blue",
                alpha=0.2,
                label="rnnkit 80%",
            )
        axis.set_title(f"{result.name}, series {first}: last test window", fontsize=9)
        axis.set_xlabel("steps from the forecast origin", fontsize=8)
        axis.legend(loc="upper left", fontsize=7, ncol=3)
    figure.tight_layout()
    _save(figure, path)


def _save(figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)
