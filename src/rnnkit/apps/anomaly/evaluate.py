"""Evaluation of anomaly detection against a rolling z-score and an isolation forest.

rnnkit scores two ways: ``rnnkit`` (the forecaster's surprise, `AnomalyDetector`) and
``lstm_autoencoder`` (reconstruction error, `AutoencoderScorer`). Two tests, every method in
the same run on the same series:

* UCR InternalBleeding16 (shipped in aeon): train on its 1,200 normal points, score the
  7,501 test points; the usual UCR score is whether the top-scored point lies within 100
  points of the labelled anomaly (4187-4198).
* injected anomalies (`inject.inject_anomalies`) in real series (electricity demand, NYC
  temperature): train on the first part, inject 8 anomalies of 4 kinds into the next part,
  and count precision, recall and F1 point-wise and event-wise (an injected event is found
  when a flagged window overlaps it, give or take ``tolerance`` points; a flagged window is
  right when it overlaps an injected event the same way).

All the scores go through the same label-free threshold (`thresholds.flag`). The point-wise
average precision of each raw score (``point_AP``, threshold-free, computed with the labels)
tells how much of a miss is the score's fault and how much the threshold's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from rnnkit.apps.anomaly.autoencoder import AutoencoderScorer
from rnnkit.apps.anomaly.baselines import isolation_forest, rolling_zscore
from rnnkit.apps.anomaly.detector import AnomalyDetector
from rnnkit.apps.anomaly.inject import inject_anomalies
from rnnkit.apps.anomaly.thresholds import Flagged, flag
from rnnkit.data.timeseries import load_series, load_ucr_internal_bleeding

METHODS = ("rnnkit", "lstm_autoencoder", "rolling_zscore", "isolation_forest")


def precision_recall_f1(true_positive: int, predicted: int, actual: int) -> dict[str, float]:
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def pointwise(labels: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 over points."""
    labels, flags = np.asarray(labels, bool), np.asarray(flags, bool)
    return precision_recall_f1(int((labels & flags).sum()), int(flags.sum()), int(labels.sum()))


def eventwise(
    events: list[tuple[int, int]], windows: list[tuple[int, int]], tolerance: int = 0
) -> dict[str, float]:
    """Precision over flagged windows, recall over true events; overlap within ``tolerance``."""

    def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] < b[1] + tolerance and b[0] < a[1] + tolerance

    found = sum(any(overlaps(e, w) for w in windows) for e in events)
    right = sum(any(overlaps(w, e) for e in events) for w in windows)
    precision = right / len(windows) if windows else 0.0
    recall = found / len(events) if events else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@dataclass
class Scored:
    """One evaluated series: its values, labels and each method's scores and flags."""

    name: str
    values: np.ndarray
    labels: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    flagged: dict[str, Flagged] = field(default_factory=dict)


def score_all(
    train: np.ndarray,
    test: np.ndarray,
    detector_options: dict,
    seed: int,
    context: int,
    contiguous: bool,
) -> dict[str, np.ndarray]:
    """Every method's score of ``test`` after training on ``train``.

    When ``test`` continues ``train`` (``contiguous``), the end of ``train`` is the context
    of the first test points; otherwise those points stay unscored (NaN), since a jump from
    the end of one recording to the start of another is no anomaly.
    """
    detector = AnomalyDetector(context_length=context, seed=seed, **detector_options)
    detector.fit(train)
    # the autoencoder's window is the forecaster's context; same training budget
    autoencoder = AutoencoderScorer(window=context, seed=seed, **detector_options).fit(train)
    joined = np.concatenate([train[-context:], test]) if contiguous else test
    skip = context if contiguous else 0
    return {
        "rnnkit": detector.score(joined)[skip:],
        "lstm_autoencoder": autoencoder.score(joined)[skip:],
        "rolling_zscore": rolling_zscore(joined, window=context)[skip:],
        "isolation_forest": isolation_forest(train, joined, seed=seed)[skip:],
    }


def ucr_test(quick: bool, seed: int, options: dict) -> tuple[list[dict], Scored]:
    data = load_ucr_internal_bleeding()
    scored = Scored(data.name, data.test, data.labels)
    scored.scores = score_all(data.train, data.test, options, seed, context=64, contiguous=False)
    anomaly = np.flatnonzero(data.labels)
    rows = []
    for method, scores in scored.scores.items():
        scored.flagged[method] = flag(scores, merge_gap=8)
        top = int(np.nanargmax(scores))
        distance = int(max(anomaly[0] - top, top - anomaly[-1], 0))
        rows.append(
            {
                "method": method,
                "top_point": top,
                "distance": distance,
                "within_100": distance <= 100,
            }
        )
    return rows, scored


INJECTION_SERIES = {
    # name: (data set, series id or None, training points, test points)
    "elecdemand": ("elecdemand", None, 2016, 2016),
    "nyc-temp-EWR": ("nyc-weather", "EWR", 1500, 1500),
}


def injected_test(
    name: str, quick: bool, seed: int, options: dict, tolerance: int = 12
) -> tuple[list[dict], Scored]:
    dataset, series_id, train_length, test_length = INJECTION_SERIES[name]
    if quick:
        train_length, test_length = 600, 900
    data = load_series(dataset)
    group = dict(data.groups())[series_id] if series_id else data.groups()[0][1]
    values = group[data.target].to_numpy(float)
    values = pd.Series(values).ffill().bfill().to_numpy()  # the few missing hours
    train, clean = values[:train_length], values[train_length : train_length + test_length]
    injected = inject_anomalies(clean, per_kind=1 if quick else 2, seed=seed)
    scored = Scored(name, injected.values, injected.labels)
    scored.scores = score_all(train, injected.values, options, seed, context=64, contiguous=True)
    events = [(start, end) for start, end, _ in injected.events]
    rows = []
    for method, scores in scored.scores.items():
        flagged = flag(scores, merge_gap=8)
        scored.flagged[method] = flagged
        point = pointwise(injected.labels, flagged.flags)
        valid = ~np.isnan(scores)
        event = eventwise(events, flagged.windows, tolerance)
        rows.append(
            {
                "series": name,
                "method": method,
                "point_P": point["precision"],
                "point_R": point["recall"],
                "point_F1": point["f1"],
                "event_P": event["precision"],
                "event_R": event["recall"],
                "event_F1": event["f1"],
                "flagged_windows": len(flagged.windows),
                # threshold-free quality of the score itself (uses the labels, diagnosis only)
                "point_AP": float(average_precision_score(injected.labels[valid], scores[valid])),
            }
        )
    return rows, scored


def run_evaluation(quick: bool = False, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Both tests; returns ``{"ucr": rows, "injected": rows, "scored": [Scored, ...]}``."""
    options = {"epochs": 2, "batches_per_epoch": 10} if quick else {}
    log("anomaly: UCR InternalBleeding16")
    ucr_rows, ucr_scored = ucr_test(quick, seed, options)
    injected_rows, scored = [], [ucr_scored]
    for name in ["elecdemand"] if quick else list(INJECTION_SERIES):
        log(f"anomaly: injected anomalies in {name}")
        rows, one = injected_test(name, quick, seed, options)
        injected_rows += rows
        scored.append(one)
    return {"ucr": ucr_rows, "injected": injected_rows, "scored": scored}
