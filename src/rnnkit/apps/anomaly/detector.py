"""`AnomalyDetector`: score each point by how surprising it is to an rnnkit forecaster.

The detector trains a `Forecaster` (Student-t likelihood, ``horizon`` steps ahead) on a
stretch of the series known or assumed to be normal. A point's surprise under a predicted
distribution is ``-log10`` of the two-sided tail probability of its residual; its score is
the mean surprise under the forecasts made for it from the ``horizon`` origins before it.
Scores are then smoothed and thresholded without labels (`thresholds.flag`, Hundman et al. 2018).

Example:
    >>> rng = np.random.default_rng(0)
    >>> values = np.sin(np.arange(1000) * 2 * np.pi / 24) + 0.1 * rng.normal(size=1000)
    >>> train_values, test_values = values[:600], values[600:].copy()
    >>> test_values[200] += 2  # a spike
    >>> detector = AnomalyDetector(context_length=24, epochs=2, batches_per_epoch=10)
    >>> result = detector.fit(train_values).detect(test_values)
    >>> list(result.frame.columns)
    ['time', 'value', 'score', 'smoothed', 'anomaly']
    >>> int(result.frame["score"].idxmax()), len(result.windows)  # windows: [(start, end), ...]
    (200, 1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rnnkit.apps.anomaly.thresholds import flag
from rnnkit.apps.forecast.config import EARLIER_DEFAULTS
from rnnkit.apps.forecast.forecaster import Forecaster, ForecasterConfig
from rnnkit.data.timeseries import SERIES, SeriesFrame, build_frame, series_from_dataframe
from rnnkit.errors import UserError

# The fewest points the detector trains on (the command line's --train-points checks the
# same): fewer cannot show what normal looks like, and detection needs more than a context.
MIN_TRAIN_POINTS = 100


@dataclass
class Detection:
    """What `AnomalyDetector.detect` found in one series."""

    frame: pd.DataFrame  # time, value, score, smoothed, anomaly
    threshold: float
    windows: list[tuple[int, int]]  # [start, end) positions of anomalous windows

    def window_table(self) -> pd.DataFrame:
        """One row per anomalous window: start and end times, length, peak score."""
        rows = []
        for start, end in self.windows:
            part = self.frame.iloc[start:end]
            rows.append(
                {
                    "start": part["time"].iloc[0],
                    "end": part["time"].iloc[-1],
                    "points": end - start,
                    "peak_score": float(part["score"].max()),
                }
            )
        return pd.DataFrame(rows, columns=["start", "end", "points", "peak_score"])

    def last(self, count: int) -> Detection:
        """The detection of the last ``count`` points only: what a scan preceded by a lead-in
        (the end of the training data, so that its first points have a context) reports."""
        start = len(self.frame) - count
        windows = [(max(a, start) - start, b - start) for a, b in self.windows if b > start]
        return Detection(self.frame.iloc[start:].reset_index(drop=True), self.threshold, windows)


class AnomalyDetector:
    """Forecast-residual anomaly detection with an unsupervised threshold.

    Args:
        context_length: past points the forecaster reads for each prediction.
        horizon: steps predicted from each origin; a point's score averages its surprise
            under the forecasts of the ``horizon`` origins before it. 1: one-step residuals;
            a longer horizon keeps a level shift surprising beyond its first points. The
            evaluation trains both 1 and 8 and chooses on validation stretches.
        span: smoothing of the scores before thresholding (EWMA span, points).
        calendar: use calendar features (off for series without real timestamps).
        **options: other `ForecasterConfig` fields (hidden_size, epochs, lr, seed, device...).
    """

    def __init__(
        self,
        context_length: int = 64,
        horizon: int = 1,
        span: int = 8,
        calendar: bool = False,
        **options,
    ):
        options.setdefault("epochs", 15)
        options.setdefault("hidden_size", 32)
        options.setdefault("num_layers", 1)
        options.setdefault("batches_per_epoch", 30)
        options.setdefault("validation_windows", 0)
        for name, value in EARLIER_DEFAULTS.items():  # the forecaster it was tuned with
            options.setdefault(name, value)
        self.span = span
        self.forecaster = Forecaster(
            ForecasterConfig(
                horizon=horizon,
                context_length=context_length,
                likelihood="student_t",
                calendar=calendar,
                **options,
            )
        )

    @property
    def context_length(self) -> int:
        return int(self.forecaster.config.context_length)

    def fit(self, data: SeriesFrame | pd.DataFrame | pd.Series | np.ndarray) -> AnomalyDetector:
        """Train on (mostly) normal data: an array, a DataFrame, a pd.Series indexed by time
        or a `SeriesFrame`; at least `MIN_TRAIN_POINTS` points."""
        frame = as_frame(data)
        points = int(frame.groups()[0][1][frame.target].count())
        if points < MIN_TRAIN_POINTS:
            raise UserError(
                f"the training series has {points} values; the detector needs at least "
                f"{MIN_TRAIN_POINTS} (normal data to learn from)"
            )
        self.forecaster.fit(frame)
        return self

    def score(self, data: SeriesFrame | pd.DataFrame | np.ndarray) -> np.ndarray:
        """Surprise of every point of the (first) series; NaN for the first context points.

        The forecaster predicts ``horizon`` steps from every origin, so each point is
        predicted from up to ``horizon`` origins before it; its score is the mean surprise
        over them. A one-step score alone sees a level shift only at its edges (the next
        context already contains the new level); the longer look keeps it surprising.
        """
        frame = as_frame(data)
        windows = self.forecaster._windows(frame)
        length = int(windows.lengths[0])
        if length <= self.context_length:
            raise UserError(
                f"the series has {length} points; the detector needs more than "
                f"{self.context_length} (its context)"
            )
        origins = np.arange(self.context_length, length)
        pairs = np.stack([np.zeros_like(origins), origins], axis=1)
        params = self.forecaster.distribution_at(windows, pairs)  # (B, H) each
        horizon = params["loc"].shape[1]
        targets = origins[:, None] + np.arange(horizon)[None, :]
        inside = targets < length
        values = windows.target[np.minimum(targets, length - 1)]
        residual = np.abs(values - params["loc"]) / params["scale"]
        tail = 2 * stats.t.sf(residual, params["df"])
        surprise = -np.log10(np.maximum(tail, 1e-300))
        keep = inside & np.isfinite(surprise)
        total, count = np.zeros(length), np.zeros(length)
        np.add.at(total, targets[keep], surprise[keep])
        np.add.at(count, targets[keep], 1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def detect(self, data: SeriesFrame | pd.DataFrame | pd.Series | np.ndarray) -> Detection:
        """Score, threshold and report the anomalous points and windows of a series."""
        frame = as_frame(data)
        scores = self.score(frame)
        flagged = flag(scores, span=self.span, merge_gap=self.span)
        windows = with_their_peaks(scores, flagged.windows, self.span)
        flags = np.zeros(len(scores), dtype=bool)
        for start, end in windows:
            flags[start:end] = True
        first = frame.groups()[0][1]
        table = pd.DataFrame(
            {
                "time": first["time"].to_numpy(),
                "value": first[frame.target].to_numpy(float),
                "score": scores,
                "smoothed": flagged.smoothed,
                "anomaly": flags,
            }
        )
        return Detection(table, flagged.threshold, windows)

    def save(self, directory: str | os.PathLike) -> None:
        self.forecaster.columns = {**self.forecaster.columns, "kind": "anomaly"}
        self.forecaster.save(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> AnomalyDetector:
        forecaster = Forecaster.load(directory, device=device)
        if forecaster.columns.get("kind") != "anomaly":
            raise UserError(f"{directory}: a forecasting model, not an anomaly detector")
        detector = cls.__new__(cls)
        detector.span = 8
        detector.forecaster = forecaster
        return detector


def with_their_peaks(
    scores: np.ndarray, windows: list[tuple[int, int]], lag: int
) -> list[tuple[int, int]]:
    """Each window widened back to the highest raw score in the ``lag`` points before it.

    The smoothed score crosses the threshold only after the surprise has built up for a
    point or more, so a window found on it starts after the anomalous point itself; the
    raw score peaks on that point.
    """
    values = np.nan_to_num(np.asarray(scores, float), nan=-np.inf)
    widened: list[tuple[int, int]] = []
    for start, end in windows:
        low = max(start - lag, widened[-1][1] if widened else 0)  # not into the last one
        before = values[low:start]
        if len(before) and before.max() > values[start:end].max():
            start = low + int(np.argmax(before))
        widened.append((start, end))
    return widened


def as_frame(
    data: SeriesFrame | pd.DataFrame | pd.Series | np.ndarray, name: str = "series"
) -> SeriesFrame:
    """A `SeriesFrame` from a plain array (an hourly index is made up), a DataFrame with a
    ``time`` column (or a DatetimeIndex) and a numeric column (the first is the value), a
    pd.Series indexed by time, or a `SeriesFrame` as it is."""
    if isinstance(data, SeriesFrame):
        return data
    if isinstance(data, pd.Series) and isinstance(data.index, pd.DatetimeIndex):
        data = data.rename(data.name if data.name is not None else "value").to_frame()
    if isinstance(data, pd.DataFrame):
        return _frame_of_dataframe(data, name)
    values = np.asarray(data, float)
    if values.ndim != 1:
        raise UserError(f"expected a 1-D series of values, got shape {values.shape}")
    times = pd.date_range("2000-01-01", periods=len(values), freq="h")
    return build_frame(
        pd.DataFrame({"time": times, "value": values}),
        target="value",
        freq="h",
        season_length=1,
        name=name,
    )


def _frame_of_dataframe(data: pd.DataFrame, name: str) -> SeriesFrame:
    if "time" not in data.columns and isinstance(data.index, pd.DatetimeIndex):
        data = data.rename_axis("time").reset_index()
    if "time" not in data.columns:
        raise UserError(
            f"the DataFrame has no column 'time' (its columns: "
            f"{', '.join(map(str, data.columns))}); name the time column 'time' or make it "
            "the index"
        )
    numeric = [
        c
        for c in data.columns
        if c not in ("time", SERIES)
        and pd.api.types.is_numeric_dtype(data[c])
        and not pd.api.types.is_datetime64_any_dtype(data[c])
    ]
    if not numeric:
        raise UserError(
            f"the DataFrame has no numeric column besides 'time' (its columns: "
            f"{', '.join(map(str, data.columns))})"
        )
    return series_from_dataframe(data[["time", numeric[0]]], target=numeric[0], where=name)
