"""Anomaly scores a data scientist would try first: a rolling z-score, an isolation forest.

Both give one score per point (higher = more anomalous) and go through the same unsupervised
threshold as rnnkit's score, so that a comparison measures the scores, not the thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rolling_zscore(values: np.ndarray, window: int = 64) -> np.ndarray:
    """|y_t - mean| / std of the ``window`` points before t (NaN until a window exists)."""
    series = pd.Series(np.asarray(values, float))
    past = series.shift(1).rolling(window, min_periods=window)
    std = past.std().replace(0.0, np.nan)
    return ((series - past.mean()).abs() / std).to_numpy()


def isolation_forest(
    train: np.ndarray, values: np.ndarray, window: int = 16, seed: int = 0
) -> np.ndarray:
    """scikit-learn's IsolationForest on sliding windows of ``window`` points.

    The forest is fitted on the windows of ``train`` (normal data); each window of
    ``values`` is scored and its score given to its last point.
    """
    from sklearn.ensemble import IsolationForest

    train_windows = _sliding(np.asarray(train, float), window)
    test_windows = _sliding(np.asarray(values, float), window)
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(train_windows)
    scores = np.full(len(values), np.nan)
    scores[window - 1 :] = -forest.score_samples(test_windows)
    return scores


def _sliding(values: np.ndarray, window: int) -> np.ndarray:
    filled = pd.Series(values).ffill().bfill().to_numpy()
    return np.lib.stride_tricks.sliding_window_view(filled, window)
