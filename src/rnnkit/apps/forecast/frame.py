"""Calibrated intervals -> forecast frame: the future's timestamps, known-future covariates
and the DataFrame `Forecaster.predict` returns."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from rnnkit.apps.forecast.distribution import level_quantiles
from rnnkit.data.timeseries import SERIES
from rnnkit.errors import UserError


def future_times(last: pd.Timestamp, horizon: int, freq: str) -> pd.DatetimeIndex:
    """The ``horizon`` timestamps after ``last`` on the data's grid."""
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]


def future_by_series(future: pd.DataFrame | None) -> Callable[[str], pd.DataFrame | None]:
    """``sid -> `` that series' rows of the user's known-future table (columns ``time``,
    ``series`` when there are several series, and the covariates), grouped once: selecting
    each series by comparison would read the whole table once per series."""
    if future is None or SERIES not in future.columns:
        return lambda sid: future
    groups = {str(sid): rows for sid, rows in future.groupby(future[SERIES].astype(str))}
    return lambda sid: groups.get(sid, future.iloc[:0])


def future_covariates(
    sid: str,
    times: pd.DatetimeIndex,
    rows: pd.DataFrame | None,
    names: list[str],
    mean: list[float],
    std: list[float],
) -> np.ndarray:
    """(H, len(names)) standardised known-future covariates of series ``sid`` at ``times``.

    Args:
        rows: the rows of the user's known-future table for this series
            (`future_by_series`): columns ``time`` and names.
        mean, std: the training statistics of these covariates.
    """
    if not names:
        return np.zeros((len(times), 0), np.float32)
    if rows is None:
        raise UserError(
            f"this model uses known-future covariates ({', '.join(names)}); pass their "
            f"values for the horizon (future=, or --future FILE with columns time, series, "
            f"{', '.join(names)})"
        )
    missing = [c for c in ["time", *names] if c not in rows.columns]
    if missing:
        raise UserError(f"future covariates: no column(s) {', '.join(missing)}")
    stamps = pd.to_datetime(rows["time"], errors="coerce")
    if stamps.isna().any():
        raise UserError(
            f"future covariates: unparseable time {rows['time'][stamps.isna()].iloc[0]!r}"
        )
    rows = rows.assign(time=stamps).drop_duplicates("time").set_index("time")
    values = rows.reindex(times)[names].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        raise UserError(
            f"future covariates of series '{sid}' are missing for some of {times[0]} .. {times[-1]}"
        )
    return (values.to_numpy(float) - np.array(mean)) / np.array(std)


def forecast_frame(
    ids: list[str],
    times: list[pd.DatetimeIndex],
    forecast: dict[float, np.ndarray],
    levels: tuple[int, ...],
    horizon: int,
) -> pd.DataFrame:
    """The long table of forecasts: series, time, forecast (the median), lo_<L>, hi_<L>.

    Args:
        ids, times: each series' id and its future timestamps (at least ``horizon``).
        forecast: quantile -> (S, >= horizon) values.
        levels: interval levels in percent.
    """
    # One array of every series' timestamps (as integers in the index's unit: building 100,000
    # small frames and concatenating them took longer than the forecast itself).
    unit, tz = (times[0].unit, times[0].tz) if len(times) else ("ns", None)
    integers = np.concatenate([t[:horizon].asi8 for t in times]) if len(times) else []
    stamps = pd.DatetimeIndex(np.asarray(integers, dtype=np.int64).view(f"datetime64[{unit}]"))
    columns = {
        SERIES: np.repeat(np.asarray(ids, dtype=object), horizon),
        "time": stamps.tz_localize("UTC").tz_convert(tz) if tz is not None else stamps,
        "forecast": forecast[0.5][:, :horizon].ravel(),
    }
    for level in levels:
        low, high = level_quantiles(level)
        columns[f"lo_{level:g}"] = forecast[low][:, :horizon].ravel()
        columns[f"hi_{level:g}"] = forecast[high][:, :horizon].ravel()
    return pd.DataFrame(columns)
