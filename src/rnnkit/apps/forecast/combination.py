"""Distribution -> combined distribution: the network's median pulled towards statistical ones.

The Theta method (Assimakopoulos & Nikolopoulos 2000; the M3 competition's best) is simple
exponential smoothing with half the slope of a linear trend as drift; the damped trend
(Gardner & McKenzie 1985) is Holt's linear trend whose slope dies away. Averaging a learned
forecast with statistical ones is the oldest trick of the M competitions, and it works when
their errors differ. The ways of ``ForecasterConfig.combine``:

- ``mean``: the equal-weight mean of the network, Theta and the damped trend (weights fixed,
  not estimated: estimated combination weights are noisy and usually do worse than equal
  ones; `Forecaster.fit` records the validation errors of `MEAN_WEIGHTS` but keeps 1/3).
- ``mean_holt``: the same with Holt's undamped linear trend as a fourth member (each 1/4):
  smooth trending series (M3 `other`) keep their trend, where the damped one bends it away.
- ``auto``: ``mean`` or ``mean_holt``, whichever has the lower scaled error on the fit's own
  validation windows (`choose_members`; one choice for all series of a fit).
- ``by_season``: ``mean_holt`` for data without seasons (a season of one step: yearly data,
  M3 `other`), ``mean`` for seasonal data.
- ``theta``: the network and Theta, the network's weight chosen from `WEIGHTS` on the
  validation windows (`choose_weight`; weight 1 keeps the network alone).

Every forecast moves all its quantiles by the same amount, so the spread stays the
network's (calibrated afterwards). The statistical forecasts run here on every window at
once (numpy over a batch of right-aligned histories, smoothing parameters from a grid
chosen by the one-step squared error), on the same deseasonalised values the network reads.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnkit.apps.forecast.series import SeriesArrays

COMBINATIONS = ("none", "theta", "mean", "mean_holt", "auto", "by_season")
# The equal-weight means: their statistical members (the network is one more member).
MEAN_MEMBERS = {"mean": ("theta", "damped"), "mean_holt": ("theta", "damped", "holt")}
# The network weights `choose_weight` tries (1: the network alone, 0: Theta alone).
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# ``mean``: the network's weights against the mean of Theta and the damped trend whose
# validation errors `Forecaster.fit` records: none, one third (the equal mean of the three,
# the one it keeps), a half, all.
MEAN_WEIGHTS = (0.0, 1 / 3, 0.5, 1.0)
# SES smoothing constants tried for each window (the one-step squared error picks one).
ALPHAS = np.linspace(0.02, 1.0, 50)
# The damped trend's grid: level and slope smoothing (the slope's as a share of the level's,
# ``beta = alpha * share``) and damping factors (phi = 1: Holt's undamped trend, added by the
# MASE sweep of `benchmarks/forecast_defaults.py`).
DAMPED_ALPHAS = np.linspace(0.05, 1.0, 20)
DAMPED_SHARES = np.array([0.01, 0.05, 0.1, 0.2, 0.3])
DAMPED_PHIS = np.array([0.8, 0.85, 0.9, 0.95, 0.98, 1.0])
# Holt's linear trend: the same grid of smoothing constants, no damping.
HOLT_PHIS = np.array([1.0])
# Windows per numpy pass of Theta and the damped trend (each holds a (chunk, grid) state):
# a state that outgrows the CPU caches makes every step slower, so that one pass over 100,000
# windows took 28 times as long as one over 10,000.
CHUNK = 2048
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
    if len(history) > CHUNK:
        return _in_chunks(theta_forecast, history, observed, horizon)
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


def damped_forecast(
    history: np.ndarray,
    observed: np.ndarray,
    horizon: int,
    season: int = 1,
    phis: np.ndarray | None = None,
) -> np.ndarray:
    """(B, H) damped-trend forecasts (additive damped Holt) of B right-aligned histories.

    Args:
        history: (B, T) values, gap-filled; steps before a series begins are padding.
        observed: (B, T) 1 where a value was observed (0 at padding and gaps).
        horizon: steps to forecast.
        season: steps per season: the initial slope is the mean change over the first
            season (at least 4 steps; one step's change is too noisy a start).
        phis: the damping factors of the grid (None: `DAMPED_PHIS`; `HOLT_PHIS`: Holt).

    Per window, every (alpha, share, phi) of the grid runs at once: level
    ``l = l + phi b + alpha e``, slope ``b = phi b + alpha share e`` after each one-step
    error ``e``; unobserved steps carry the prediction on. The grid point with the lowest
    one-step squared error forecasts ``l + (phi + ... + phi^h) b``.

    Example (a straight line: the grid's phi = 1, Holt's undamped trend, fits it best):
        >>> y = np.arange(1.0, 21.0)[None]
        >>> damped_forecast(y, np.ones_like(y), 3).round(1)
        array([[21., 22., 23.]])
    """
    history = np.asarray(history, float)
    if len(history) > CHUNK:
        return _in_chunks(damped_forecast, history, observed, horizon, season, phis)
    phis = DAMPED_PHIS if phis is None else np.asarray(phis, float)
    batch, length = history.shape
    seen = np.asarray(observed, float) > 0
    rows = np.arange(batch)
    first = np.argmax(seen, axis=1)
    ahead = np.minimum(first + max(season, 4), length - 1)
    level = history[rows, first]
    slope = (history[rows, ahead] - level) / np.maximum(ahead - first, 1)
    alpha, share, phi = (
        g.ravel()[None] for g in np.meshgrid(DAMPED_ALPHAS, DAMPED_SHARES, phis, indexing="ij")
    )
    level = np.repeat(level[:, None], alpha.shape[1], axis=1)
    slope = np.repeat(slope[:, None], alpha.shape[1], axis=1)
    sse = np.zeros_like(level)
    for t in range(length):
        started = (t > first)[:, None]
        counts = seen[:, t : t + 1] & started
        predicted = level + phi * slope
        error = np.where(counts, history[:, t : t + 1] - predicted, 0.0)
        sse += error**2
        level = np.where(started, predicted + alpha * error, level)
        slope = np.where(started, phi * slope + alpha * share * error, slope)
    best = np.argmin(sse, axis=1)
    damping = np.cumsum(phi[0, best][:, None] ** np.arange(1, horizon + 1)[None, :], axis=1)
    return level[rows, best][:, None] + damping * slope[rows, best][:, None]


def _in_chunks(
    method: Callable[..., np.ndarray], history: np.ndarray, observed: np.ndarray, *args
) -> np.ndarray:
    """``method`` (a batched forecast) on `CHUNK` windows at a time, concatenated."""
    return np.concatenate(
        [
            method(history[i : i + CHUNK], observed[i : i + CHUNK], *args)
            for i in range(0, len(history), CHUNK)
        ]
    )


def choose_weight(
    truth: np.ndarray,
    network: np.ndarray,
    other: np.ndarray,
    scale: np.ndarray,
    weights: tuple[float, ...] = WEIGHTS,
) -> tuple[float, dict[float, float]]:
    """The network weight of ``weights`` whose combination has the lowest scaled error.

    Args:
        truth, network, other: (B, H) the validation windows' values, the network's and the
            statistical forecast (Theta, or the mean of Theta and the damped trend).
        scale: (B,) each window's error scale (its series' mean absolute one-step change),
            so that every series counts alike whatever its size (MASE).
        weights: the network weights tried (`WEIGHTS`, `MEAN_WEIGHTS`).

    Returns:
        (weight, {weight: mean scaled absolute error}).
    """
    errors = {}
    for weight in weights:
        combined = weight * network + (1 - weight) * other
        scaled = np.abs(truth - combined) / np.maximum(scale, 1e-12)[:, None]
        errors[weight] = float(np.nanmean(scaled)) if np.isfinite(scaled).any() else np.inf
    best = min(errors, key=lambda w: (errors[w], -w))  # ties: the larger network weight
    return best, errors


def choose_members(
    truth: np.ndarray,
    network: np.ndarray,
    statistical: dict[str, np.ndarray],
    scale: np.ndarray,
) -> tuple[str, dict[str, float]]:
    """The equal-weight mean (``combine="auto"``) with the lowest scaled error.

    Args:
        truth, network: (B, H) the validation windows' values and the network's median.
        statistical: `MEAN_MEMBERS` name -> (B, H) its statistical side (`statistical_at`).
        scale: (B,) each window's error scale (`error_scale`).

    Returns:
        (name, {name: mean scaled absolute error}); ties keep ``mean``, the fewer members.
    """
    errors = {}
    for name, other in statistical.items():
        weight = network_weight(name)
        _, found = choose_weight(truth, network, other, scale, (weight,))
        errors[name] = found[weight]
    best = min(errors, key=lambda name: (errors[name], len(MEAN_MEMBERS[name])))
    return best, errors


def shift(quantiles: dict[float, np.ndarray], target_median: np.ndarray) -> dict:
    """Every quantile moved by the same amount so that the median becomes ``target_median``."""
    move = target_median - quantiles[0.5]
    return {q: values + move for q, values in quantiles.items()}


def _adjusted_history(arrays: SeriesArrays, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(history, observed), each (B, T): the deseasonalised values before each origin of
    ``pairs`` (at most `THETA_HISTORY` steps), right-aligned, padding marked unobserved."""
    span = int(min(THETA_HISTORY, max(int(pairs[:, 1].max()), 1)))
    start = arrays.offsets[pairs[:, 0]]
    index = start[:, None] + pairs[:, 1:2] + np.arange(-span, 0)[None, :]
    padded = index < start[:, None]
    index = np.maximum(index, start[:, None])
    history = arrays.deseasonalised(arrays.filled[index], index)
    return history, np.where(padded, 0.0, arrays.observed[index])


def theta_at(arrays: SeriesArrays, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """(B, H) Theta forecasts (data units) at ``(series, origin)`` pairs, from the
    deseasonalised history before each origin (at most `THETA_HISTORY` steps),
    reseasonalised with the indices the network's windows use."""
    history, observed = _adjusted_history(arrays, pairs)
    return arrays.reseasonalised(theta_forecast(history, observed, horizon), pairs)


def statistical_at(
    arrays: SeriesArrays, pairs: np.ndarray, horizon: int, combine: str
) -> np.ndarray:
    """(B, H) the statistical side of a combination at ``(series, origin)`` pairs (data
    units): Theta (``combine="theta"``) or the mean of the `MEAN_MEMBERS` of ``combine``
    (``"mean"``: Theta and the damped trend), all on the deseasonalised history,
    reseasonalised."""
    if combine == "theta":
        return theta_at(arrays, pairs, horizon)
    return statistical_means(arrays, pairs, horizon, (combine,))[combine]


def statistical_means(
    arrays: SeriesArrays,
    pairs: np.ndarray,
    horizon: int,
    names: tuple[str, ...] = tuple(MEAN_MEMBERS),
) -> dict[str, np.ndarray]:
    """{name: (B, H)} the statistical side of each equal-weight mean of ``names``
    (`MEAN_MEMBERS`), each member method run once however many means share it."""
    history, observed = _adjusted_history(arrays, pairs)
    season = len(arrays.indices[0]) if arrays.indices else 1
    methods = {
        "theta": lambda: theta_forecast(history, observed, horizon),
        "damped": lambda: damped_forecast(history, observed, horizon, season),
        "holt": lambda: damped_forecast(history, observed, horizon, season, HOLT_PHIS),
    }
    needed = dict.fromkeys(member for name in names for member in MEAN_MEMBERS[name])
    forecasts = {member: methods[member]() for member in needed}
    return {
        name: arrays.reseasonalised(
            np.mean([forecasts[member] for member in MEAN_MEMBERS[name]], axis=0), pairs
        )
        for name in names
    }


def network_weight(members: str) -> float:
    """The network's share of an equal-weight mean (`MEAN_MEMBERS`): 1/3 or 1/4."""
    return 1 / (1 + len(MEAN_MEMBERS[members]))


def error_scale(arrays: SeriesArrays) -> np.ndarray:
    """(S,) the mean absolute one-step change of each series: what `choose_weight` divides
    errors by, so that every series counts alike whatever its size."""
    scales = []
    for offset, length in zip(arrays.offsets, arrays.lengths, strict=True):
        steps = np.abs(np.diff(arrays.target[offset : offset + length]))
        scales.append(np.nanmean(steps) if np.isfinite(steps).any() else 1.0)
    return np.array(scales)
