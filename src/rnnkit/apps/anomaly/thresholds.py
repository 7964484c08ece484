"""Choosing a threshold on anomaly scores without labels, and turning flags into windows.

`dynamic_threshold` is the nonparametric dynamic thresholding of Hundman et al. (2018,
"Detecting spacecraft anomalies using LSTMs and nonparametric dynamic thresholding"):
smooth the scores with an exponentially weighted moving average, then pick the threshold
``mean + z * std`` (z from 2 to 10) whose removal of the points above it lowers the mean and
the spread of the rest the most, per flagged point and (squared) per flagged run:

    z* = argmax  (dmean / mean + dstd / std) / (n_flagged + n_runs ** 2)

Here it is applied to the whole scored series at once (the paper slides it over windows of a
telemetry stream). The paper's pruning step (`prune`, ``min_decrease`` in `flag`) drops the
flagged runs whose peak is not clearly above the next lower peak; its error buffer and limit
of 5 sequences are options (``buffer``, ``max_sequences``), and ``run_penalty`` softens the
objective's preference for few runs. All are off by default (the paper's rule as above);
which ones each score uses in rnnkit's evaluation is chosen on validation stretches, in code
(`rnnkit.apps.anomaly.evaluate.choose_threshold_settings`).
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


def dynamic_threshold(
    smoothed: np.ndarray,
    z_values: np.ndarray | None = None,
    buffer: int = 0,
    max_sequences: int | None = None,
    run_penalty: float = 2.0,
) -> float:
    """The threshold of Hundman et al. (2018) for already smoothed scores (see module doc).

    Args:
        z_values: the candidate thresholds, in standard deviations above the mean
            (default 2 to 10 by 0.5).
        buffer: as the paper's ``error_buffer``: every point above a candidate threshold
            counts with its ``buffer`` neighbours on each side, so the objective weighs
            sequences rather than single points. 0: points as they are.
        max_sequences: candidates flagging more sequences than this are skipped (the
            paper's implementation allows 5 per window).
        run_penalty: the exponent of the number of flagged runs in the objective's
            denominator (the paper's 2 favours one or two runs; 1 lets a series with many
            anomalies have many windows).

    Returns +inf when no z in the range flags anything worth flagging.

    Example:
        >>> scores = np.r_[np.abs(np.random.default_rng(0).normal(size=500)), 12.0]
        >>> dynamic_threshold(scores) < 12.0
        True
    """
    all_values = np.asarray(smoothed, float)
    values = all_values[~np.isnan(all_values)]
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
        flagged = np.nan_to_num(all_values, nan=-np.inf) > threshold
        if buffer:
            # widen every flagged point by `buffer` on both sides (a dilation)
            flagged = np.convolve(flagged, np.ones(2 * buffer + 1), mode="same") > 0
        n_runs = len(runs(flagged))
        if max_sequences is not None and n_runs > max_sequences:
            continue
        if flagged.sum() >= len(values) / 2:
            continue
        objective = (delta_mean + delta_std) / (flagged.sum() + n_runs**run_penalty)
        if objective > best:
            best, best_threshold = objective, threshold
    return float(best_threshold)


def prune(
    smoothed: np.ndarray, windows: list[tuple[int, int]], min_decrease: float = 0.13
) -> list[tuple[int, int]]:
    """The pruning step of Hundman et al. (2018): keep only the runs that stand out.

    The peak of every flagged run and the highest unflagged score are sorted from high to
    low; walking down, a step that falls by less than ``min_decrease`` (a fraction of the
    higher peak) is not a clear drop. Runs below the last clear drop are reclassified as
    nominal: they look like the noise that stays unflagged.

    Args:
        smoothed: (T,) smoothed scores (NaN: unscored).
        windows: ``[start, end)`` of each flagged run.
        min_decrease: the paper's ``p`` (0.13 in its experiments).

    Returns:
        the kept windows, in time order.

    Example:
        >>> scores = np.r_[np.zeros(10), 10.0, np.zeros(10), 9.5, np.zeros(10)]
        >>> prune(scores, [(10, 11)])   # 10 is within 13% of the unflagged 9.5: dropped
        []
        >>> prune(scores, [(10, 11), (21, 22)])   # both clearly above the rest: kept
        [(10, 11), (21, 22)]
    """
    if not windows:
        return []
    values = np.nan_to_num(np.asarray(smoothed, float), nan=-np.inf)
    peaks = np.array([values[start:end].max() for start, end in windows])
    unflagged = np.ones(len(values), bool)
    for start, end in windows:
        unflagged[start:end] = False
    floor = values[unflagged].max() if unflagged.any() else 0.0
    order = np.argsort(-peaks, kind="stable")
    ranked = np.append(peaks[order], max(floor, 0.0))
    # the rank of the last clear drop: every run ranked above it is kept
    keep = 0
    for rank in range(len(order)):
        higher, lower = ranked[rank], ranked[rank + 1]
        if higher > 0 and (higher - lower) / higher >= min_decrease:
            keep = rank + 1
    kept = set(order[:keep].tolist())
    return [window for i, window in enumerate(windows) if i in kept]


@dataclass
class Flagged:
    """Anomalous points and windows of one scored series."""

    threshold: float
    smoothed: np.ndarray  # (T,)
    flags: np.ndarray  # (T,) bool
    windows: list[tuple[int, int]]  # [start, end) of each anomalous window


def flag(
    scores: np.ndarray,
    span: int = 8,
    merge_gap: int = 0,
    buffer: int = 0,
    max_sequences: int | None = None,
    min_decrease: float | None = None,
    run_penalty: float = 2.0,
) -> Flagged:
    """Smooth ``scores``, pick the dynamic threshold and flag the points above it.

    Args:
        span: EWMA span of the smoothing.
        merge_gap: runs closer than this many points become one window.
        buffer, max_sequences, run_penalty: see `dynamic_threshold`.
        min_decrease: prune the windows as the paper does (see `prune`); None: keep all.
    """
    smoothed = smooth(scores, span)
    threshold = dynamic_threshold(
        smoothed, buffer=buffer, max_sequences=max_sequences, run_penalty=run_penalty
    )
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
    if min_decrease is not None:
        windows = prune(smoothed, windows, min_decrease)
        flags = np.zeros_like(flags)
        for start, end in windows:
            flags[start:end] = True
    return Flagged(threshold, smoothed, flags, windows)
