"""The anomaly detector on a user's data: windows around the anomalous point, one series,
the training minimum, DataFrames and Series (found by an audit of user files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnkit.apps.anomaly import AnomalyDetector
from rnnkit.apps.anomaly.detector import MIN_TRAIN_POINTS, as_frame, with_their_peaks
from rnnkit.cli import main
from rnnkit.errors import UserError

HOURS = pd.date_range("2024-01-01", periods=400, freq="h")


def sine(length: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 20 + 3 * np.sin(2 * np.pi * np.arange(length) / 24) + rng.normal(0, 0.3, length)


def test_windows_reach_back_to_the_peak_of_the_raw_score():
    scores = np.r_[np.zeros(10), 9.0, 7.0, 1.0, np.zeros(10)]
    # the smoothed score crossed the threshold at 11, one step after the spike at 10
    assert with_their_peaks(scores, [(11, 13)], lag=8) == [(10, 13)]
    assert with_their_peaks(scores, [(2, 4), (11, 13)], lag=8) == [(2, 4), (10, 13)]
    assert with_their_peaks(scores, [(10, 13)], lag=8) == [(10, 13)]  # already in


def test_detect_flags_the_spike_and_reports_its_raw_score_as_the_peak():
    detector = AnomalyDetector(context_length=48, epochs=3, batches_per_epoch=20, lr=1e-2)
    detector.fit(sine())
    values = sine(300, seed=1)
    values[200] += 8
    detection = detector.detect(values)
    table = detection.window_table()
    assert detection.frame["anomaly"].iloc[200]
    (start, end), *_ = [w for w in detection.windows if w[0] <= 200 < w[1]]
    row = table.iloc[detection.windows.index((start, end))]
    assert row["peak_score"] == detection.frame["score"].iloc[start:end].max()


def test_training_on_fewer_points_than_the_minimum_is_a_user_error():
    with pytest.raises(
        UserError, match=f"5 values; the detector needs at least {MIN_TRAIN_POINTS}"
    ):
        AnomalyDetector(epochs=1).fit(sine()[:5])


def test_dataframes_with_a_time_index_and_series_are_read():
    values = sine()
    by_index = as_frame(pd.DataFrame({"value": values}, index=HOURS))
    by_series = as_frame(pd.Series(values, index=HOURS))
    for frame in (by_index, by_series):
        assert frame.freq == "h" and list(frame.frame["time"]) == list(HOURS)
    with pytest.raises(UserError, match="no column 'time' \\(its columns: date, value\\)"):
        as_frame(pd.DataFrame({"date": HOURS, "value": values}))


def detect_file(model, path, out) -> pd.DataFrame:
    """``anomaly detect`` on a file (the columns as train read them): anomalies.csv."""
    command = ["anomaly", "detect", "--model", str(model), "--file", str(path)]
    assert main([*command, "--out", str(out)]) == 0
    return pd.read_csv(out / "anomalies.csv")


def test_cli_asks_for_one_series_of_a_file_with_several(tmp_path, capsys):
    rows = [
        pd.DataFrame({"id": sid, "ts": HOURS, "value": sine(seed=i)}) for i, sid in enumerate("ab")
    ]
    path = tmp_path / "sensors.csv"
    pd.concat(rows).to_csv(path, index=False)
    out = tmp_path / "model"
    common = ["anomaly", "train", "--file", str(path), "--time", "ts", "--target", "value"]
    assert main([*common, "--out", str(out)]) == 2
    assert "anomaly detection takes one series" in capsys.readouterr().err
    assert not out.exists()
    assert main([*common, "--id", "id", "--out", str(out)]) == 2
    assert "pick it with --series NAME" in capsys.readouterr().err
    picked = [*common, "--id", "id", "--series", "b", "--train-points", "300", "--quick"]
    assert main([*picked, "--out", str(out)]) == 0
    # detect reads the file as train did: the columns, the series and the split are kept
    scanned = detect_file(out, path, tmp_path / "flagged")
    assert len(scanned) == 100  # series b's 400 hours after its first 300
    np.testing.assert_allclose(scanned["value"], sine(seed=1)[300:], rtol=1e-6)


def test_a_series_shorter_than_the_default_split_trains_on_its_first_half(tmp_path, capsys):
    path = tmp_path / "sensor.csv"
    pd.DataFrame({"time": HOURS, "value": sine()}).to_csv(path, index=False)
    model = tmp_path / "model"
    assert main(["anomaly", "train", "--file", str(path), "--quick", "--out", str(model)]) == 0
    scanned = detect_file(model, path, tmp_path / "flagged")
    assert len(scanned) == 200  # the last 200 of 400 hours
    # the end of the training part leads in: the first scanned points are scored too
    assert scanned["score"].notna().all()
    too_short = tmp_path / "short.csv"
    pd.DataFrame({"time": HOURS[:150], "value": sine(150)}).to_csv(too_short, index=False)
    assert main(["anomaly", "train", "--file", str(too_short), "--out", str(model / "x")]) == 2
    error = capsys.readouterr().err
    assert "short.csv: the series has 150 points; expected at least" in error
    assert "--train-points" not in error  # an option the user did not give is not blamed
