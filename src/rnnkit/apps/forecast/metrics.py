"""Forecast accuracy: point errors, scaled errors, quantile loss and interval coverage.

All functions take NumPy arrays of the same shape and ignore positions where the truth is
NaN (a missing observation cannot be scored).

Example:
    >>> y, f = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0])
    >>> mae(y, f)
    0.5
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)  # the 80% interval and the median, for every method


def _valid(y: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    keep = ~np.isnan(y)
    return [np.asarray(a, float)[keep] for a in (y, *others)]


def mae(y: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error."""
    y, forecast = _valid(y, forecast)
    return float(np.mean(np.abs(y - forecast)))


def rmse(y: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error."""
    y, forecast = _valid(y, forecast)
    return float(np.sqrt(np.mean((y - forecast) ** 2)))


def smape(y: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric mean absolute percentage error in percent (0-200, M4 competition form)."""
    y, forecast = _valid(y, forecast)
    denominator = np.abs(y) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(y - forecast), denominator, out=np.zeros_like(y), where=denominator > 0
    )
    return float(100 * np.mean(ratio))


def naive_scale(history: np.ndarray, season_length: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast: the denominator of MASE.

    Args:
        history: (T,) the training part of the series (NaNs are skipped).
        season_length: m; the forecast of ``y[t]`` is ``y[t - m]``.
    """
    history = np.asarray(history, float)
    m = season_length if len(history) > season_length else 1
    differences = np.abs(history[m:] - history[:-m])
    differences = differences[~np.isnan(differences)]
    scale = float(np.mean(differences)) if len(differences) else float("nan")
    return scale if scale > 0 else 1.0  # a constant history: fall back to plain MAE


def mase(y: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    """Mean absolute scaled error: MAE divided by `naive_scale` of the history."""
    return mae(y, forecast) / scale


def smape_per_series(truth: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """The M3 competition's sMAPE of each series, in percent: the mean over the horizon of
    ``200 |y - f| / (|y| + |f|)`` (a step with ``y = f = 0`` scores 0; NaN truth is skipped).

    Args:
        truth, forecast: (S, H).

    Returns:
        (S,); the competition's figure is the mean over series.
    """
    truth, forecast = np.asarray(truth, float), np.asarray(forecast, float)
    denominator = np.abs(truth) + np.abs(forecast)
    ratio = np.divide(
        200 * np.abs(truth - forecast),
        denominator,
        out=np.zeros_like(truth),
        where=denominator > 0,
    )
    ratio[np.isnan(truth)] = np.nan
    return np.nanmean(ratio, axis=1)


def mase_per_series(truth: np.ndarray, forecast: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """MASE of each series: its MAE over the horizon divided by its `naive_scale`.

    Args:
        truth, forecast: (S, H); scales: (S,) the in-sample seasonal naive MAE of each series.

    Returns:
        (S,).
    """
    error = np.abs(np.asarray(truth, float) - np.asarray(forecast, float))
    return np.nanmean(error, axis=1) / np.asarray(scales, float)


def coverage_per_series(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Share of each series' horizon inside ``[lower, upper]``. All (S, H); returns (S,)."""
    truth = np.asarray(truth, float)
    inside = ((truth >= lower) & (truth <= upper)).astype(float)
    inside[np.isnan(truth)] = np.nan
    return np.nanmean(inside, axis=1)


def pinball_loss(y: np.ndarray, quantile_forecast: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of the ``q``-quantile forecast."""
    y, quantile_forecast = _valid(y, quantile_forecast)
    difference = y - quantile_forecast
    return float(np.mean(np.maximum(q * difference, (q - 1) * difference)))


def quantile_loss(y: np.ndarray, quantiles: dict[float, np.ndarray]) -> float:
    """Twice the mean pinball loss over the given quantile levels.

    With many evenly spread levels this approaches the CRPS; with (0.1, 0.5, 0.9) it is the
    usual "mean weighted quantile loss" of forecasting papers (before scaling).
    """
    return float(np.mean([2 * pinball_loss(y, f, q) for q, f in quantiles.items()]))


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Fraction of the truth inside ``[lower, upper]``."""
    y, lower, upper = _valid(y, lower, upper)
    return float(np.mean((y >= lower) & (y <= upper)))


def crps_gaussian(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean CRPS of Gaussian forecasts, in closed form (Gneiting & Raftery 2007)."""
    from scipy.stats import norm

    y, mean, std = _valid(y, mean, std)
    z = (y - mean) / std
    crps = std * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    return float(np.mean(crps))
