"""Inputs of the forecasting network, built from a series and its timestamps.

Calendar features are sines and cosines of the time of day, the day of the week and the day
of the year, so that 23:00 is next to 00:00 and December next to January. Features that are
constant for a data set (time of day in daily data) cost nothing and are kept, so that every
model sees the same six columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALENDAR_FEATURES = 6


def calendar_features(times: pd.DatetimeIndex) -> np.ndarray:
    """(T, 6) float32: sin/cos of time of day, day of week and day of year.

    Example:
        >>> calendar_features(pd.date_range("2024-01-01", periods=3, freq="h")).shape
        (3, 6)
    """
    times = pd.DatetimeIndex(times)
    day_fraction = (times.hour * 3600 + times.minute * 60 + times.second) / 86400.0
    week_fraction = (times.dayofweek + day_fraction) / 7.0
    year_fraction = (times.dayofyear - 1 + day_fraction) / 365.25
    angles = 2 * np.pi * np.stack([day_fraction, week_fraction, year_fraction], axis=1)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


class CalendarCache:
    """`calendar_features` computed once per distinct time axis.

    Thousands of series usually share a few time axes (M3 monthly: every series on its own
    dates, but 100,000 synthetic series on one), and building the features with pandas costs
    more than everything else a series needs in `predict`.
    """

    def __init__(self) -> None:
        self._found: dict[tuple, np.ndarray] = {}

    def __call__(self, times: pd.DatetimeIndex) -> np.ndarray:
        times = pd.DatetimeIndex(times)
        key = (times.unit, str(times.tz), times.asi8.tobytes())  # the same instants, any zone
        if key not in self._found:
            self._found[key] = calendar_features(times)
        return self._found[key]


def fill_missing(values: np.ndarray) -> np.ndarray:
    """Carry the last observed value forward (the first one backward at the start).

    Only the network's inputs are filled, never its loss, and only with the past: a value
    before a forecast origin never depends on what comes after it.
    """
    values = np.asarray(values, float)
    observed = ~np.isnan(values)
    if not observed.any():
        return np.zeros(len(values))
    last_seen = np.maximum.accumulate(np.where(observed, np.arange(len(values)), 0))
    filled = values[last_seen]
    first = int(np.argmax(observed))
    filled[:first] = values[first]  # before the first observation: the first one
    return filled


def window_location_scale(context: np.ndarray, observed: np.ndarray) -> tuple[float, float]:
    """The location (last observed value) and scale (std of the observed points) of a window.

    Every window is standardised by its own location and scale before it enters the network
    (and the forecast is mapped back), so that one global model serves series of any level:
    a stock at 20 or at 2,000, a city at 10 C or 30 C. Centring on the last value makes
    "no change" the network's zero output, the right default for random-walk-like series.
    The floor on the scale keeps a flat context from dividing by zero.
    """
    values = context[observed > 0]
    if len(values) == 0:
        return 0.0, 1.0
    location = float(values[-1])
    scale = float(values.std())
    return location, max(scale, 1e-3 * max(abs(float(values.mean())), 1e-3))
