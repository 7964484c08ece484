"""Reading a user's time series file: date formats, separators, grids and seasons.

Found by an audit of user files (day-first dates misread, integer dates taken for
nanoseconds, irregular timestamps silently dropped, seasons longer than the data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnkit.cli import main
from rnnkit.data.timeseries import (
    guess_season_length,
    parse_times,
    read_series_file,
    series_from_dataframe,
)
from rnnkit.errors import UserError

DAYS = pd.date_range("2023-01-01", periods=40, freq="D")
VALUES = np.arange(40.0) % 7 + 10


def write(tmp_path, frame: pd.DataFrame, name: str = "data.csv", **options) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False, **options)
    return str(path)


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%d.%m.%Y", "%m/%d/%Y", "%b %d, %Y"])
def test_dates_are_read_in_one_format_for_the_whole_column(tmp_path, fmt):
    path = write(tmp_path, pd.DataFrame({"date": DAYS.strftime(fmt), "value": VALUES}))
    data = read_series_file(path, time="date")
    assert data.freq == "D" and list(data.frame["time"]) == list(DAYS)


def test_dates_that_read_either_way_need_the_format():
    # the first of 12 months, or 12 days of January: both regular and increasing
    months = pd.Series(pd.date_range("2023-01-01", periods=12, freq="MS").strftime("%m/%d/%Y"))
    with pytest.raises(UserError, match="time_format= in Python or --time-format"):
        parse_times(months)
    assert parse_times(months, time_format="%m/%d/%Y").dt.month.tolist() == list(range(1, 13))
    # day-first is the only reading under which the times increase: it wins
    shuffled = pd.Series(["03/01/2023", "01/02/2023", "02/03/2023"])  # 3 Jan, 1 Feb, 2 Mar
    assert parse_times(shuffled).dt.month.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("spelled", "freq"),
    [
        (["1970 Q1", "1970 Q2", "1970 Q3", "1970 Q4", "1971 Q1"], "QS-OCT"),
        (["1970Q1", "1970-Q2", "1970 q3", "Q4 1970", "Q1 1971"], "QS-OCT"),
        (["1991 Jul", "1991 Aug", "1991 Sep", "1991 Oct", "1991 Nov"], "MS"),
        (["Jul-91", "Aug-91", "Sep-91", "Oct-91", "Nov-91"], "MS"),
        (["July 1991", "August 1991", "September 1991", "October 1991", "November 1991"], "MS"),
    ],
)
def test_quarters_and_month_names_are_read_without_a_format(spelled, freq):
    times = parse_times(pd.Series(spelled))
    assert times.iloc[0].month in (1, 7) and times.is_monotonic_increasing
    data = series_from_dataframe(pd.DataFrame({"time": spelled, "value": VALUES[:5]}))
    assert pd.tseries.frequencies.to_offset(data.freq) == pd.tseries.frequencies.to_offset(freq)


def test_two_columns_of_one_name_are_a_one_line_error():
    frame = pd.DataFrame([[DAYS[0], 1.0, 2.0]], columns=["time", "value", "value"])
    with pytest.raises(UserError, match="two columns are named 'value'; rename one"):
        series_from_dataframe(frame, target="value")


def test_a_value_outside_the_time_format_names_its_line(tmp_path):
    path = write(tmp_path, pd.DataFrame({"date": DAYS.strftime("%d/%m/%Y"), "value": VALUES}))
    with pytest.raises(UserError, match=r"line 14, column 'date': expected a date in the format"):
        read_series_file(path, time="date", time_format="%m/%d/%Y")


def test_integer_dates_are_yyyymmdd_or_yyyymm_and_others_an_error(tmp_path):
    compact = pd.DataFrame({"date": DAYS.strftime("%Y%m%d").astype(int), "value": VALUES})
    assert list(read_series_file(write(tmp_path, compact), time="date").frame["time"]) == list(DAYS)
    months = pd.date_range("2020-01-01", periods=30, freq="MS")
    monthly = pd.DataFrame({"date": months.strftime("%Y%m").astype(int), "value": VALUES[:30]})
    assert read_series_file(write(tmp_path, monthly), time="date").freq == "MS"
    seconds = pd.DataFrame({"date": np.arange(40) * 1000 + 1_700_000_000, "value": VALUES})
    with pytest.raises(UserError, match="integers are read as YYYYMMDD") as error:
        read_series_file(write(tmp_path, seconds), time="date")
    assert "\n" not in str(error.value)
    years = pd.DataFrame({"year": np.arange(1990, 2020), "value": VALUES[:30]})
    data = read_series_file(write(tmp_path, years), time="year", time_format="%Y")
    assert data.frame["time"].iloc[0] == pd.Timestamp("1990-01-01")


def test_irregular_timestamps_are_an_error_unless_a_frequency_aggregates_them(tmp_path):
    steps = np.random.default_rng(0).integers(50, 70, 300)
    times = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.cumsum(steps), unit="min")
    path = write(tmp_path, pd.DataFrame({"time": times, "value": np.arange(300.0)}))
    with pytest.raises(UserError, match=r"\d+ of 300 timestamps are not on the grid.*--freq"):
        read_series_file(path)
    data = read_series_file(path, freq="h")
    values = data.frame["value"]
    assert data.freq == "h" and values.notna().sum() > 250  # nothing is dropped, averaged
    assert values.sum() == pytest.approx(
        pd.Series(np.arange(300.0), index=times).resample("h", origin="start").mean().sum()
    )


def sensor_times(count: int, rate_hz: float = 64.0, start: str = "2023-01-01") -> pd.Series:
    """Readings at a fixed rate, stamped to the millisecond (15 or 16 ms apart at 64 Hz)."""
    exact = pd.Timestamp(start) + pd.to_timedelta(np.arange(count) / rate_hz, unit="s")
    return pd.Series(exact).dt.round("ms")


def test_readings_at_a_fixed_rate_with_jittered_stamps_are_put_on_their_grid(tmp_path, capsys):
    stamped = pd.DataFrame(
        {
            "time": pd.concat([sensor_times(500), sensor_times(400, start="2023-01-02")]),
            "sensor": ["a"] * 500 + ["b"] * 400,
            "value": np.sin(np.arange(900) / 5.0),
        }
    )
    path = write(tmp_path, stamped)
    with pytest.warns(UserWarning, match=r"jitter around a regular step of 15\.625 ms"):
        data = read_series_file(path, series_id="sensor")
    assert pd.Timedelta(data.freq) == pd.Timedelta("15.625ms")
    first = data.frame[data.frame["series"] == "a"]
    assert first["time"].diff().dropna().eq(pd.Timedelta("15.625ms")).all()
    # nothing averaged, nothing dropped
    np.testing.assert_allclose(first["value"], stamped["value"].iloc[:500], rtol=1e-12)
    # The CLI says it in one line, as it says its errors.
    out = tmp_path / "model"
    command = ["anomaly", "train", "--file", path, "--id", "sensor", "--series", "a"]
    assert main([*command, "--epochs", "1", "--out", str(out)]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "jitter" in line]
    assert warning and warning[0].startswith("rnnkit: warning: data.csv: the timestamps jitter")


def test_a_missing_reading_in_jittered_stamps_stays_an_error(tmp_path):
    times = sensor_times(500).drop(index=[200, 201]).reset_index(drop=True)
    path = write(tmp_path, pd.DataFrame({"time": times, "value": np.arange(498.0)}))
    with pytest.raises(UserError, match="timestamps are not on the grid"):
        read_series_file(path)


def test_a_regular_series_with_gaps_keeps_its_timestamps_with_a_frequency(tmp_path):
    times = pd.date_range("2023-01-01 00:30", periods=50, freq="h").delete([10, 11, 30])
    path = write(tmp_path, pd.DataFrame({"time": times, "value": np.arange(47.0)}))
    data = read_series_file(path, freq="h")
    assert data.frame["time"].iloc[0] == times[0] and len(data.frame) == 50
    assert data.frame["value"].isna().sum() == 3


def test_an_unknown_frequency_is_a_one_line_error(tmp_path):
    path = write(tmp_path, pd.DataFrame({"time": DAYS, "value": VALUES}))
    with pytest.raises(UserError, match="freq 'xyz': not a frequency"):
        read_series_file(path, freq="xyz")
    out = tmp_path / "model"
    assert main(["forecast", "train", "--file", path, "--freq", "xyz", "--out", str(out)]) == 2
    assert not out.exists()


def test_the_season_never_asks_for_more_history_than_the_data_has():
    assert guess_season_length("min") == 1440 and guess_season_length("min", 600) == 60
    assert guess_season_length("s", 600) == 60 and guess_season_length("s", 10_000) == 3600
    assert guess_season_length("h", 48) == 24 and guess_season_length("h", 47) == 1
    assert guess_season_length("MS", 30) == 12 and guess_season_length("MS", 20) == 1
    minutes = pd.date_range("2023-01-01", periods=600, freq="min")
    data = series_from_dataframe(pd.DataFrame({"time": minutes, "value": np.arange(600.0)}))
    assert data.season_length == 60


def test_semicolon_files_with_decimal_commas_or_points(tmp_path):
    frame = pd.DataFrame({"date": DAYS, "value": VALUES + 0.25})
    for name, options in (("points.csv", {}), ("commas.csv", {"decimal": ","})):
        path = write(tmp_path, frame, name, sep=";", **options)
        data = read_series_file(path, time="date")
        assert data.frame["value"].tolist() == pytest.approx((VALUES + 0.25).tolist())


@pytest.mark.parametrize(
    ("separator", "spelled"),
    [
        (",", ["1,000.25", "12,345.5", "7.75", "-1,234"]),  # US spreadsheets, quoted
        (";", ["1.000,25", "12.345,5", "7,75", "-1.234"]),  # German
        (";", ["1 000,25", "12\u202f345,5", "7,75", "-1\u00a0234"]),  # French
    ],
)
def test_numbers_with_thousands_separators(tmp_path, separator, spelled):
    frame = pd.DataFrame({"date": DAYS[:4], "units": spelled})
    data = read_series_file(write(tmp_path, frame, sep=separator), time="date")  # target found
    assert data.frame["units"].tolist() == [1000.25, 12345.5, 7.75, -1234.0]
    frame["units"] = [*spelled[:3], "12,3,4"]
    with pytest.raises(UserError, match=r"line 5, column 'units': expected a number, got '12,3,4'"):
        read_series_file(write(tmp_path, frame, sep=separator), time="date", target="units")


def test_a_missing_time_column_is_named_and_dates_are_no_target_candidates():
    frame = pd.DataFrame({"date": DAYS, "value": VALUES})
    with pytest.raises(UserError, match="no column 'time'; the columns are date, value"):
        series_from_dataframe(frame)
    data = series_from_dataframe(frame.assign(other=DAYS), time="date")
    assert data.target == "value"  # a second date column is not a number


def test_a_time_index_or_a_series_is_read_as_the_time_column():
    frame = pd.DataFrame({"value": VALUES}, index=DAYS)
    assert list(series_from_dataframe(frame).frame["time"]) == list(DAYS)
    series = pd.Series(VALUES, index=DAYS, name="sales")
    data = series_from_dataframe(series)
    assert data.target == "sales" and data.frame["sales"].tolist() == VALUES.tolist()
    with pytest.raises(UserError, match="needs a DatetimeIndex"):
        series_from_dataframe(pd.Series(VALUES))


def test_counts_of_zero_are_refused_when_parsing(tmp_path, refused_at_parsing):
    path = write(tmp_path, pd.DataFrame({"time": DAYS, "value": VALUES}))
    for flag in ("--horizon", "--context", "--ensemble", "--hidden-size"):
        error = refused_at_parsing(["forecast", "train", "--file", path, flag, "0"])
        assert "expected a positive integer, got 0" in error


def test_a_season_longer_than_the_data_is_named_in_the_error(tmp_path, capsys):
    minutes = pd.date_range("2023-01-01", periods=300, freq="min")
    path = write(tmp_path, pd.DataFrame({"time": minutes, "value": np.arange(300.0)}))
    out = tmp_path / "model"
    args = ["forecast", "train", "--file", path, "--season-length", "290", "--horizon", "20"]
    assert main([*args, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "a shorter --context or --season-length" in error and not out.exists()


@pytest.mark.parametrize("app", ["forecast", "anomaly"])
def test_file_flags_with_a_bundled_data_set_are_an_error_not_ignored(tmp_path, capsys, app):
    out = tmp_path / "model"
    assert main([app, "train", "--data", "nyc-weather", "--freq", "D", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "--freq: for --file only; the bundled --data nyc-weather has its own" in error
    assert not out.exists()


def test_several_target_columns_are_series_named_by_their_columns(tmp_path):
    wide = pd.DataFrame({"date": DAYS, "north": VALUES, "south": VALUES + 1})
    data = read_series_file(write(tmp_path, wide), time="date", target=["north", "south"])
    assert sorted(data.frame["series"].unique()) == ["north", "south"]
    long = pd.concat([wide.assign(shop=name) for name in ("a", "b")])
    data = read_series_file(
        write(tmp_path, long, "long.csv"), time="date", target=["north", "south"], series_id="shop"
    )
    assert sorted(data.frame["series"].unique()) == ["a/north", "a/south", "b/north", "b/south"]
