"""Distribution -> combined distribution: the network's median pulled towards Theta's.

The Theta method (Assimakopoulos & Nikolopoulos 2000; the M3 competition's best) is simple
exponential smoothing with half the slope of a linear trend as drift. Averaging a learned
forecast with a statistical one is the oldest trick of the M competitions, and it works when
their errors differ. `Forecaster.fit` chooses the network's weight on its validation windows
(`choose_weight`; weight 1 keeps the network alone), and every forecast moves all its
quantiles by the same amount, so the spread stays the network's (calibrated afterwards).

Theta runs here on every window at once (numpy over a batch of right-aligned histories, SES
smoothing constants from a grid), on the same deseasonalised values the network reads.
"""

from __future__ import annotations

import numpy as np

from rnnkit.apps.forecast.series import SeriesArrays

COMBINATIONS = ("none", "theta")
# The network weights `choose_weight` tries (1: the network alone, 0: Theta alone).
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# SES smoothing constants tried for each window (the one-step squared error picks one).
ALPHAS = np.linspace(0.02, 1.0, 50)
# Theta reads at most this many steps before each origin (M3 monthly histories: 48-126).
THETA_HISTORY = 240


def theta_forecast(history: np.ndarray, observed: np.ndarray, horizon: int) -> np.ndarray:
    """(B, H) Theta-method forecasts (theta = 2) of B right-aligned histories.

    Args:
        history: (B, T) values, gap-filled; steps before a series begins are padding.
        observed: (B, T) 1 where a value was observed (0 at padding and gaps).
        horizon: steps to forecast.

    Per window: the OLS slope ``b`` of the observed values on time; SES with the constant
    alpha of `ALPHAS` that minimises the one-step squared error; forecast
    ``level + b / 2 * (h - 1 + 1 / alpha - (1 - alpha)^n / alpha)`` (the drift of the
    theta = 0 line halved, as statsmodels' `ThetaModel` and Hyndman & Billah 2003 write it).

    Example:
        >>> y = np.arange(1.0, 11.0)[None]
        >>> theta_forecast(y, np.ones_like(y), 2).shape
        (1, 2)
    """
    history = np.asarray(history, float)
    batch, length = history.shape
    seen = np.asarray(observed, float) > 0
    count = np.maximum(seen.sum(axis=1), 1)
    time = np.broadcast_to(np.arange(length, dtype=float), history.shape)
    t_mean = (time * seen).sum(axis=1) / count
    y_mean = (history * seen).sum(axis=1) / count
    dt = (time - t_mean[:, None]) * seen
    slope = (dt * (history - y_mean[:, None])).sum(axis=1) / np.maximum((dt**2).sum(axis=1), 1e-12)
    # SES for every alpha at once: level (B, A); padding before the first observation
    # carries the first value (the level starts there, with no error counted).
    first = np.argmax(seen, axis=1)
    start_value = history[np.arange(batch), first]
    level = np.repeat(start_value[:, None], len(ALPHAS), axis=1)
    sse = np.zeros_like(level)
    for t in range(length):
        value = history[:, t : t + 1]
        counts = (seen[:, t] & (t > first))[:, None]
        error = value - level
        sse += np.where(counts, error**2, 0.0)
        level = np.where(seen[:, t : t + 1] & (t >= first[:, None]), level + ALPHAS * error, level)
    best = np.argmin(sse, axis=1)
    alpha = ALPHAS[best]
    final = level[np.arange(batch), best]
    n = count.astype(float)
    steps = np.arange(1, horizon + 1)[None, :]
    drift = (
        0.5
        * slope[:, None]
        * (steps - 1 + 1 / alpha[:, None] - (1 - alpha[:, None]) ** n[:, None] / alpha[:, None])
    )
    return final[:, None] + drift


def choose_weight(
    truth: np.ndarray, network: np.ndarray, theta: np.ndarray, scale: np.ndarray
) -> tuple[float, dict[float, float]]:
    """The network weight of `WEIGHTS` whose combination has the lowest scaled error.

    Args:
        truth, network, theta: (B, H) the validation windows' values and both forecasts.
        scale: (B,) each window's error scale (its series' mean absolute one-step change),
            so that every series counts alike whatever its size (MASE).

    Returns:
        (weight, {weight: mean scaled absolute error}).
    """
    errors = {}
    for weight in WEIGHTS:
        combined = weight * network + (1 - weight) * theta
        scaled = np.abs(truth - combined) / np.maximum(scale, 1e-12)[:, None]
        errors[weight] = float(np.nanmean(scaled)) if np.isfinite(scaled).any() else np.inf
    best = min(errors, key=lambda w: (errors[w], -w))  # ties: the larger network weight
    return best, errors


def shift(quantiles: dict[float, np.ndarray], target_median: np.ndarray) -> dict:
    """Every quantile moved by the same amount so that the median becomes ``target_median``."""
    move = target_median - quantiles[0.5]
    return {q: values + move for q, values in quantiles.items()}


def theta_at(arrays: SeriesArrays, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """(B, H) Theta forecasts (data units) at ``(series, origin)`` pairs, from the
    deseasonalised history before each origin (at most `THETA_HISTORY` steps),
    reseasonalised with the indices the network's windows use."""
    span = int(min(THETA_HISTORY, max(int(pairs[:, 1].max()), 1)))
    start = arrays.offsets[pairs[:, 0]]
    index = start[:, None] + pairs[:, 1:2] + np.arange(-span, 0)[None, :]
    padded = index < start[:, None]
    index = np.maximum(index, start[:, None])
    history = arrays.filled[index] / arrays.seasonal[index]
    observed = np.where(padded, 0.0, arrays.observed[index])
    seasonal = arrays.seasonal_ahead(pairs[:, 0], pairs[:, 1], horizon)
    return theta_forecast(history, observed, horizon) * seasonal


def error_scale(arrays: SeriesArrays) -> np.ndarray:
    """(S,) the mean absolute one-step change of each series: what `choose_weight` divides
    errors by, so that every series counts alike whatever its size."""
    scales = []
    for offset, length in zip(arrays.offsets, arrays.lengths, strict=True):
        steps = np.abs(np.diff(arrays.target[offset : offset + length]))
        scales.append(np.nanmean(steps) if np.isfinite(steps).any() else 1.0)
    return np.array(scales)
