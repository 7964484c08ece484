"""Arrays -> windows: (series, origin) pairs and the scaled tensors the network reads.

A window is a context of ``context`` steps before an origin and the ``horizon`` steps from
it. Every window is scaled by its own location and scale (`location_scale`), so one global
network serves series of any level. A series shorter than the context is padded at its
start with steps marked "not observed" (the mask input is 0 there), never refused.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.apps.forecast.series import SeriesArrays
from rnnkit.errors import UserError

SCALINGS = ("last", "level")
# The smallest one-step change a window's ``step`` reports (scaled units: 0.1% of the level
# under ``level`` scaling), so that a flat context cannot weigh without bound in a loss.
STEP_FLOOR = 1e-3
# How a window's ``step`` (the yardstick the ``mase_nll`` loss divides its errors by) is
# measured: ``context``, its context's mean one-step change; ``series``, its series' mean
# one-step change over the whole history (MASE's own denominator is the series'); ``capped``,
# the context's, but at least a tenth of the batch's median (so that one near-flat window
# cannot outweigh the rest of its batch).
STEP_YARDSTICKS = ("context", "series", "capped")


def first_origin(length: int, context: int, min_history: int, needed_after: int) -> int:
    """The earliest origin of a series: a full context when the series has room for it
    (and ``needed_after`` more steps), else its first ``min_history`` steps (padded)."""
    return context if length >= context + needed_after else min(min_history, context)


def split_origins(
    arrays: SeriesArrays, context: int, horizon: int, validation_windows: int, min_history: int
) -> tuple[np.ndarray, np.ndarray]:
    """(series, origin) pairs for training and for validation.

    Each series holds out its last ``validation_windows`` horizons for validation (fewer,
    down to none, when it is too short to keep a training window before them).

    Returns:
        (train (P, 2), validation (V, 2)) int64 arrays; validation pairs are ``horizon``
        apart and in order of origin within each series.
    """
    train, val = [], []
    for s, length in enumerate(int(n) for n in arrays.lengths):
        full = first_origin(length, context, min_history, (validation_windows + 1) * horizon)
        held = validation_windows
        while held > 0 and length - held * horizon < full + horizon:
            held -= 1
        start = first_origin(length, context, min_history, (held + 1) * horizon)
        last_train_origin = length - held * horizon - horizon
        train += [(s, origin) for origin in range(start, last_train_origin + 1)]
        val += [(s, o) for o in range(length - held * horizon, length - horizon + 1, horizon)]
    if not train:
        longest = int(arrays.lengths.max())
        raise UserError(
            f"every series is shorter than the model needs: {min_history + horizon} points "
            f"(history {min_history} + horizon {horizon}), the longest has {longest}; use a "
            f"shorter horizon, or a shorter season_length / context_length (the history is one "
            f"season, at most the context)"
        )
    return np.array(train, dtype=np.int64), np.array(val, dtype=np.int64).reshape(-1, 2)


def calibration_origins(val_origins: np.ndarray, horizon: int) -> np.ndarray:
    """Origins every ``horizon // 6`` steps across the validation windows (whose origins are
    ``horizon`` apart), for the interval calibration.

    Overlapping windows see the same held-out points at other lead times: six times the
    scores for the same data, which steadies the quantile of each step (the points of one
    window are correlated, so more distinct origins help more than more steps of one).
    """
    stride = max(1, horizon // 6)
    dense = [
        (series, origin + shift)
        for series, origin in val_origins
        for shift in range(0, horizon, stride)
    ]
    # the last window's shifted copies would reach past the end of the series: drop them
    last = {series: origin for series, origin in val_origins}
    dense = [(s, o) for s, o in dense if o <= last[s]]
    return np.array(dense, dtype=np.int64).reshape(-1, 2)


def location_scale(
    filled: np.ndarray,
    observed: np.ndarray,
    scaling: str = "last",
    season: int = 1,
    flat_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window location and scale, vectorised `features.window_location_scale`.

    Args:
        filled: (B, C) contexts with gaps filled (the last column is the last observed
            value of each window).
        observed: (B, C) 1 where observed.
        scaling: ``last``: the last value and the std of the observed points (a random
            walk's "no change" is the network's zero); ``level``: the mean of the last
            season's observed points and, for positive windows, that level itself, so the
            network predicts relative changes (what sMAPE and MASE on series of very
            different sizes reward); the std where the window is not positive.
        season: steps in a season (the span of the ``level``).
        flat_scale: (B,) the scale of a window whose values do not vary (a run of zeros):
            its series' spread (`SeriesArrays.spread`). Without it such a window's scale was
            a millionth, and so was the width of its interval.

    Returns:
        (location (B,), scale (B,)) float64.
    """
    count = np.maximum(observed.sum(axis=1), 1)
    mean = (filled * observed).sum(axis=1) / count
    variance = (((filled - mean[:, None]) ** 2) * observed).sum(axis=1) / count
    floor = 1e-3 * np.maximum(np.abs(mean), 1e-3)
    spread = np.sqrt(variance)
    if flat_scale is not None:
        spread = np.where(spread < floor, np.maximum(flat_scale, floor), spread)
    spread = np.maximum(spread, floor)
    if scaling == "last":
        return filled[:, -1].astype(float), spread
    recent, seen = filled[:, -season:], observed[:, -season:]
    level = (recent * seen).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
    positive = ((filled > 0) | (observed == 0)).all(axis=1) & (level > 0)
    return level.astype(float), np.where(positive, np.abs(level), spread)


def make_batch(
    arrays: SeriesArrays,
    pairs: np.ndarray,
    context: int,
    horizon: int,
    future_known: np.ndarray | None = None,
    scaling: str = "last",
    season: int = 1,
    seasonal_lag: bool = False,
    step_yardstick: str = "context",
) -> dict[str, torch.Tensor]:
    """Tensors for the windows whose forecast starts at ``(series, origin)`` pairs.

    Args:
        arrays: the series.
        pairs: (B, 2) series number and origin (the first forecast step).
        context, horizon: steps read and forecast.
        future_known: (B, H, K) replaces the known features of the horizon when the
            horizon lies beyond the data (a forecast of the real future).
        scaling, season: see `location_scale`.
        seasonal_lag: add the value one (or two) seasons before each future step.
        step_yardstick: how ``step`` is measured (`STEP_YARDSTICKS`).

    Returns:
        ``encoder`` (B, C, 2 + K + P), ``decoder`` (B, H, K + 1 [+ 1]), ``target`` and
        ``mask`` (B, H) in scaled units, ``location`` and ``scale`` (B,) float64, ``step``
        (B,) the mean absolute one-step change in scaled units that ``step_yardstick``
        names (at least `STEP_FLOOR`).
    """
    series_start = arrays.offsets[pairs[:, 0]]
    start = series_start + pairs[:, 1]
    past_index = start[:, None] + np.arange(-context, 0)[None, :]
    # Steps before the start of a series: padding, marked as not observed.
    padded = past_index < series_start[:, None]
    past_index = np.maximum(past_index, series_start[:, None])
    filled = arrays.deseasonalised(arrays.filled[past_index], past_index)
    # float32 like the mask it reads (float64 here would move every later bit of training)
    observed = np.where(padded, np.float32(0.0), arrays.observed[past_index])
    location, scale = location_scale(
        filled, observed, scaling, season, flat_scale=arrays.spread[pairs[:, 0]]
    )
    scaled = (filled - location[:, None]) / scale[:, None]
    encoder = np.concatenate(
        [
            scaled[..., None],
            observed[..., None],
            arrays.known[past_index],
            arrays.past[past_index],
        ],
        axis=2,
    )
    if future_known is None:
        # Steps past the end of a series (origins near the end, when scoring) repeat its
        # last row and get no target.
        steps = pairs[:, 1:2] + np.arange(horizon)[None, :]
        last = arrays.lengths[pairs[:, 0]][:, None] - 1
        future_index = series_start[:, None] + np.minimum(steps, last)
        future_known = arrays.known[future_index]
        deseasonalized = arrays.deseasonalised(arrays.target[future_index], future_index)
        target = (deseasonalized - location[:, None]) / scale[:, None]
        target = np.where(steps <= last, target, np.nan)
    else:
        target = np.full((len(pairs), horizon), np.nan)
    position = np.broadcast_to(
        (np.arange(1, horizon + 1) / horizon)[None, :, None], (len(pairs), horizon, 1)
    )
    parts = [future_known, position]
    if seasonal_lag:
        lagged = seasonal_lag_values(arrays, pairs, season, horizon)
        parts.append(((lagged - location[:, None]) / scale[:, None])[..., None])
    decoder = np.concatenate(parts, axis=2)
    mask = ~np.isnan(target)
    # The context's mean absolute one-step change (scaled units): MASE's yardstick for the
    # window, which the ``mase_nll`` loss divides its errors by.
    steps_seen = observed[:, 1:] * observed[:, :-1]
    step = (np.abs(np.diff(scaled, axis=1)) * steps_seen).sum(axis=1) / np.maximum(
        steps_seen.sum(axis=1), 1
    )
    if step_yardstick == "series":
        step = arrays.mean_step[pairs[:, 0]] / scale
    elif step_yardstick == "capped":
        step = np.maximum(step, 0.1 * np.median(step))
    return {
        "encoder": torch.from_numpy(encoder.astype(np.float32)),
        "decoder": torch.from_numpy(decoder.astype(np.float32)),
        "target": torch.from_numpy(np.nan_to_num(target).astype(np.float32)),
        "mask": torch.from_numpy(mask.astype(np.float32)),
        "location": torch.from_numpy(location),
        "scale": torch.from_numpy(scale),
        "step": torch.from_numpy(np.maximum(step, STEP_FLOOR).astype(np.float32)),
    }


def seasonal_lag_values(
    arrays: SeriesArrays, pairs: np.ndarray, season: int, horizon: int
) -> np.ndarray:
    """(B, H) the filled (deseasonalised) value a whole number of seasons before each
    future step, always before the origin (so known when forecasting); clamped at the start
    of the series."""
    season = max(int(season), 1)
    steps = np.arange(horizon)
    back = season * ((steps // season) + 1)  # steps 0..m-1: one season, m..2m-1: two
    offset = np.maximum(pairs[:, 1:2] + steps[None, :] - back[None, :], 0)
    index = arrays.offsets[pairs[:, 0]][:, None] + offset
    return arrays.deseasonalised(arrays.filled[index], index)


def truth_at(arrays: SeriesArrays, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """(B, H) the observed values (data units) of the windows at ``pairs``; NaN where
    missing or beyond the end of the series."""
    index = arrays.offsets[pairs[:, 0]][:, None] + pairs[:, 1:2] + np.arange(horizon)
    ends = (arrays.offsets + arrays.lengths)[pairs[:, 0]][:, None]
    values = arrays.target[np.minimum(index, len(arrays.target) - 1)]
    return np.where(index < ends, values, np.nan)


class RandomBatches:
    """An epoch of ``batches`` batches of ``batch_size`` random windows at ``pairs``.

    Args:
        make: pairs (B, 2) -> batch dict (`make_batch` with the model's settings).
    """

    def __init__(self, make, pairs: np.ndarray, batches: int, batch_size: int, rng):
        self.make, self.pairs, self.rng = make, pairs, rng
        self.batches, self.batch_size = batches, batch_size

    def __iter__(self):
        for _ in range(self.batches):
            chosen = self.rng.integers(0, len(self.pairs), size=self.batch_size)
            yield self.make(self.pairs[chosen])

    def __len__(self) -> int:
        return self.batches
