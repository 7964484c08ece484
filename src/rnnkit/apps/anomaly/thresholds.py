"""Choosing a threshold on anomaly scores without labels, and turning flags into windows.

`dynamic_threshold` is the nonparametric dynamic thresholding of Hundman et al. (2018,
"Detecting spacecraft anomalies using LSTMs and nonparametric dynamic thresholding"):
smooth the scores with an exponentially weighted moving average, then pick the threshold
``mean + z * std`` (z from 2 to 10) whose removal of the points above it lowers the mean and
the spread of the rest the most, per flagged point and (squared) per flagged run:

    z* = argmax  (dmean / mean + dstd / std) / (n_flagged + n_runs ** 2)

Here it is applied to the whole scored series at once (the paper slides it over windows of a
telemetry stream), and without the paper's pruning step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def smooth(scores: np.ndarray, span: int = 8) -> np.ndarray:
    """Exponentially weighted moving average (NaNs, e.g. the unscored start, stay NaN)."""
    series = pd.Series(np.asarray(scores, float))
    return series.ewm(span=span, ignore_na=True).mean().where(series.notna()).to_numpy()


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of True in ``flags``."""
    flags = np.asarray(flags, bool)
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def dynamic_threshold(smoothed: np.ndarray, z_values: np.ndarray | None = None) -> float:
    """The threshold of Hundman et al. (2018) for already smoothed scores (see module doc).

    Returns +inf when no z in the range flags anything worth flagging.

    Example:
        >>> scores = np.r_[np.random.default_rng(0).normal(size=500), 12.0]
        >>> dynamic_threshold(scores) < 12.0
        True
    """
    values = np.asarray(smoothed, float)
    values = values[~np.isnan(values)]
    if len(values) < 3:
        return float("inf")
    z_values = np.arange(2.0, 10.5, 0.5) if z_values is None else z_values
    mean, std = values.mean(), values.std()
    if std == 0:
        return float("inf")
    best, best_threshold = 0.0, float("inf")
    for z in z_values:
        threshold = mean + z * std
        above = values > threshold
        if not above.any() or above.all():
            continue
        below = values[~above]
        delta_mean = (mean - below.mean()) / mean if mean != 0 else 0.0
        delta_std = (std - below.std()) / std
        n_runs = len(runs(np.asarray(smoothed, float) > threshold))
        objective = (delta_mean + delta_std) / (above.sum() + n_runs**2)
        if objective > best:
            best, best_threshold = objective, threshold
    return float(best_threshold)


@dataclass
class Flagged:
    """Anomalous points and windows of one scored series."""

    threshold: float
    smoothed: np.ndarray  # (T,)
    flags: np.ndarray  # (T,) bool
    windows: list[tuple[int, int]]  # [start, end) of each anomalous window


def flag(scores: np.ndarray, span: int = 8, merge_gap: int = 0) -> Flagged:
    """Smooth ``scores``, pick the dynamic threshold and flag the points above it.

    Args:
        span: EWMA span of the smoothing.
        merge_gap: runs closer than this many points become one window.
    """
    smoothed = smooth(scores, span)
    threshold = dynamic_threshold(smoothed)
    flags = np.nan_to_num(smoothed, nan=-np.inf) > threshold
    windows = runs(flags)
    if merge_gap and windows:
        merged = [windows[0]]
        for start, end in windows[1:]:
            if start - merged[-1][1] <= merge_gap:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        windows = merged
    return Flagged(threshold, smoothed, flags, windows)
