"""Evaluation of anomaly detection against a rolling z-score and an isolation forest.

rnnkit scores two ways: ``rnnkit`` (the forecaster's surprise, `AnomalyDetector`) and
``lstm_autoencoder`` (reconstruction error, `AutoencoderScorer`). Two tests, every method in
the same run on the same series:

* UCR InternalBleeding16 (shipped in aeon): train on its 1,200 normal points, score the
  7,501 test points; the usual UCR score is whether the top-scored point lies within 100
  points of the labelled anomaly (4187-4198).
* injected anomalies (`inject.inject_anomalies`) in six real series, under `PROTOCOL`
  (fixed on 2026-12-01 before any result under it): each series is cut into three
  consecutive stretches, train | validation | test. The models train on the clean first
  stretch; 20 anomalies of 4 kinds are injected into each of the other two (other seeds).
  Every method's threshold settings (`THRESHOLD_GRID`: pruning, error buffer) are chosen on
  the validation stretches by pooled event F1, so the baselines get the same tuning as
  rnnkit; the test stretches are scored once, with those settings.

Event-wise counts: an injected event is found when a flagged window overlaps it, give or take
``tolerance`` points; a flagged window is right when it overlaps an injected event the same
way. For the intervals each test stretch is cut into blocks, one injected event each (cuts
halfway between events), and the blocks are resampled (`rnnkit.stats.paired_bootstrap`):
120 blocks, so a difference of a few events is visible as noise. The point-wise average
precision of each raw score (``point_AP``, threshold-free, computed with the labels) tells
how much of a miss is the score's fault and how much the threshold's.

The first protocol (until 2026-11-30: two series, 8 events each, the threshold settings
chosen by hand on a validation injection without code) gave event F1 0.22 for both rnnkit
scores and 0 for both baselines: one found event out of 8 per series, too few to tell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from rnnkit.apps.anomaly.autoencoder import AutoencoderScorer
from rnnkit.apps.anomaly.baselines import isolation_forest, rolling_zscore
from rnnkit.apps.anomaly.detector import AnomalyDetector
from rnnkit.apps.anomaly.inject import inject_anomalies
from rnnkit.apps.anomaly.thresholds import Flagged, flag
from rnnkit.data.timeseries import load_series, load_ucr_internal_bleeding
from rnnkit.stats import paired_bootstrap

METHODS = ("rnnkit", "lstm_autoencoder", "rolling_zscore", "isolation_forest")
# The forecaster's horizon for rnnkit's score (see `AnomalyDetector`): each is trained and
# the validation stretches choose, with the threshold settings.
DETECTOR_HORIZONS = (1, 8)


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
    """One scored stretch: its values, labels, events and each method's scores and flags."""

    name: str
    values: np.ndarray
    labels: np.ndarray
    events: list[tuple[int, int]] = field(default_factory=list)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    flagged: dict[str, Flagged] = field(default_factory=dict)


@dataclass(frozen=True)
class InjectionProtocol:
    """Where anomalies are injected and how flags are counted; fixed before any result."""

    # name: (bundled data set, series id or None for the first series)
    series: tuple[tuple[str, str, str | None], ...] = (
        ("elecdemand", "elecdemand", None),
        ("nyc-temp-EWR", "nyc-weather", "EWR"),
        ("nyc-temp-JFK", "nyc-weather", "JFK"),
        ("nyc-temp-LGA", "nyc-weather", "LGA"),
        ("sp500-close", "sp500", None),
        ("msft-close", "msft", None),
    )
    stretch: int = 2016  # points of each of train | validation | test
    per_kind: int = 5  # 4 kinds x 5 = 20 events per stretch
    tolerance: int = 12
    context: int = 64
    validation_seed: int = 1000  # added to the run's seed: other positions than the test's


PROTOCOL = InjectionProtocol()
QUICK_PROTOCOL = InjectionProtocol(series=PROTOCOL.series[:1], stretch=600, per_kind=1)
# `rnnkit tour`: two of the series, a minute or two; the published table is `PROTOCOL`'s.
TOUR_PROTOCOL = InjectionProtocol(series=PROTOCOL.series[:2], per_kind=3)

# Threshold settings each method may get, chosen on validation (see `flag`): the paper's
# pruning (min_decrease) and error buffer, and a milder penalty on the number of flagged
# runs, in order of preference on ties (the paper's rule first).
THRESHOLD_GRID: tuple[dict, ...] = (
    {"merge_gap": 8},
    {"merge_gap": 8, "min_decrease": 0.05},
    {"merge_gap": 8, "min_decrease": 0.13},
    {"merge_gap": 8, "buffer": 12},
    {"merge_gap": 8, "buffer": 12, "min_decrease": 0.13},
    {"merge_gap": 8, "run_penalty": 1.0},
    {"merge_gap": 8, "run_penalty": 1.0, "buffer": 12},
)


class Scorers:
    """Every method, trained on one clean stretch; ``score`` reads ``context`` points first.

    Scores are keyed by method, and by variant where a method has several (rnnkit's
    forecaster horizons: ``rnnkit[horizon=8]``); `score_key` names them.
    """

    def __init__(
        self,
        train: np.ndarray,
        options: dict,
        seed: int,
        context: int,
        horizons: tuple[int, ...] = (1,),
    ):
        self.train, self.seed, self.context = train, seed, context
        self.detectors = {
            horizon: AnomalyDetector(
                context_length=context, horizon=horizon, seed=seed, **options
            ).fit(train)
            for horizon in horizons
        }
        # the autoencoder's window is the forecaster's context; same training budget
        self.autoencoder = AutoencoderScorer(window=context, seed=seed, **options).fit(train)

    def score(self, values: np.ndarray, before: np.ndarray | None) -> dict[str, np.ndarray]:
        """Scores of ``values``; ``before`` (the clean points just before them) is context.

        Without ``before`` the first ``context`` points stay unscored (NaN), since a jump
        from the end of one recording to the start of another is no anomaly.
        """
        joined = values if before is None else np.concatenate([before[-self.context :], values])
        skip = 0 if before is None else self.context
        detectors = {
            score_key("rnnkit", horizon): detector.score(joined)[skip:]
            for horizon, detector in self.detectors.items()
        }
        return {
            **detectors,
            "lstm_autoencoder": self.autoencoder.score(joined)[skip:],
            "rolling_zscore": rolling_zscore(joined, window=self.context)[skip:],
            "isolation_forest": isolation_forest(self.train, joined, seed=self.seed)[skip:],
        }


def score_key(method: str, horizon: int | None = None) -> str:
    """The key of a method's score: rnnkit's carries its horizon unless it is the default 1."""
    return method if horizon in (None, 1) else f"{method}[horizon={horizon}]"


def variants(method: str, scored: Scored) -> list[str]:
    """The score keys of ``method`` present in ``scored``."""
    return [key for key in scored.scores if key == method or key.startswith(f"{method}[")]


def ucr_test(seed: int, options: dict) -> tuple[list[dict], Scored]:
    data = load_ucr_internal_bleeding()
    scored = Scored(data.name, data.test, data.labels)
    scored.scores = Scorers(data.train, options, seed, context=64).score(data.test, None)
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


def load_stretches(
    dataset: str, series_id: str | None, stretch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last ``3 * stretch`` points of a bundled series as (train, validation, test)."""
    data = load_series(dataset)
    group = dict(data.groups())[series_id] if series_id else data.groups()[0][1]
    values = group[data.target].to_numpy(float)
    values = pd.Series(values).ffill().bfill().to_numpy()  # the few missing hours
    if len(values) < 3 * stretch:
        raise ValueError(f"{dataset}: {len(values)} points, the protocol needs {3 * stretch}")
    values = values[-3 * stretch :]
    return values[:stretch], values[stretch : 2 * stretch], values[2 * stretch :]


def injected_series(
    name: str,
    dataset: str,
    series_id: str | None,
    protocol: InjectionProtocol,
    seed: int,
    options: dict,
) -> tuple[Scored, Scored]:
    """Train on the first stretch; score the injected validation and test stretches."""
    train, validation, test = load_stretches(dataset, series_id, protocol.stretch)
    scorers = Scorers(train, options, seed, protocol.context, DETECTOR_HORIZONS)
    stretches = []
    for clean, before, stretch_seed in (
        (validation, train, seed + protocol.validation_seed),
        (test, validation, seed),
    ):
        injected = inject_anomalies(clean, per_kind=protocol.per_kind, seed=stretch_seed)
        scored = Scored(name, injected.values, injected.labels)
        scored.events = [(start, end) for start, end, _ in injected.events]
        scored.scores = scorers.score(injected.values, before)
        stretches.append(scored)
    return stretches[0], stretches[1]


def event_blocks(
    events: list[tuple[int, int]], windows: list[tuple[int, int]], length: int, tolerance: int
) -> np.ndarray:
    """Counts per block of one stretch, one injected event per block.

    Returns:
        (events, 4): found (0/1), 1 (the event), flagged windows in the block (by their
        middle), and how many of those overlap an event; pooled sums give event P/R/F1.
    """
    cuts = [0] + [(a[1] + b[0]) // 2 for a, b in pairwise(events)] + [length]
    rows = []
    for event, low, high in zip(events, cuts[:-1], cuts[1:], strict=True):
        inside = [w for w in windows if low <= (w[0] + w[1] - 1) // 2 < high]
        counts = eventwise([event], windows, tolerance)
        right = eventwise(events, inside, tolerance)["precision"] * len(inside)
        rows.append([counts["recall"], 1, len(inside), round(right)])
    return np.array(rows, dtype=float).reshape(-1, 4)


def pooled_f1(blocks: np.ndarray) -> float:
    """Event F1 from summed block counts (see `event_blocks`)."""
    found, events, windows, right = blocks.sum(axis=0)
    return precision_recall_f1(int(right), int(windows), int(events))["f1"] if events else 0.0


def blocks_for(scored: list[Scored], settings: dict, tolerance: int) -> np.ndarray:
    """All blocks of the stretches in ``scored`` for the score ``settings["score"]`` flagged
    with the rest of ``settings``."""
    parts = []
    for one in scored:
        windows = _flag(one, settings).windows
        parts.append(event_blocks(one.events, windows, len(one.values), tolerance))
    return np.concatenate(parts)


def _flag(scored: Scored, settings: dict) -> Flagged:
    options = {key: value for key, value in settings.items() if key != "score"}
    return flag(scored.scores[settings["score"]], **options)


def choose_threshold_settings(
    validation: list[Scored], tolerance: int
) -> tuple[dict[str, dict], list[dict]]:
    """Each method's score variant and `THRESHOLD_GRID` entry with the best pooled event F1
    on the validation stretches; returns ``{method: {"score": key, **flag options}}``."""
    chosen, rows = {}, []
    for method in METHODS:
        candidates = [
            {"score": key, **settings}
            for key in variants(method, validation[0])
            for settings in THRESHOLD_GRID
        ]
        f1s = [pooled_f1(blocks_for(validation, c, tolerance)) for c in candidates]
        best = int(np.argmax(f1s))  # first of equals: the simplest
        chosen[method] = candidates[best]
        rows += [
            {
                "method": method,
                "settings": _describe(settings),
                "validation_event_F1": f1,
                "chosen": i == best,
            }
            for i, (settings, f1) in enumerate(zip(candidates, f1s, strict=True))
        ]
    return chosen, rows


def _describe(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def score_test_stretches(
    test: list[Scored], chosen: dict[str, dict], tolerance: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Per-series rows and pooled rows (with rnnkit's paired intervals) on the test stretches."""
    per_series = []
    for one in test:
        for method in METHODS:
            flagged = _flag(one, chosen[method])
            one.flagged[method] = flagged
            scores = one.scores[chosen[method]["score"]]
            point = pointwise(one.labels, flagged.flags)
            event = eventwise(one.events, flagged.windows, tolerance)
            valid = ~np.isnan(scores)
            per_series.append(
                {
                    "series": one.name,
                    "method": method,
                    "point_F1": point["f1"],
                    "event_P": event["precision"],
                    "event_R": event["recall"],
                    "event_F1": event["f1"],
                    "flagged_windows": len(flagged.windows),
                    # threshold-free quality of the score itself (uses the labels: diagnosis)
                    "point_AP": float(average_precision_score(one.labels[valid], scores[valid])),
                }
            )
    blocks = {m: blocks_for(test, chosen[m], tolerance) for m in METHODS}
    pooled = []
    for method in METHODS:
        found, events, windows, right = blocks[method].sum(axis=0)
        row = {
            "method": method,
            "settings": _describe(chosen[method]),
            "events_found": f"{int(found)}/{int(events)}",
            "event_P": right / windows if windows else 0.0,
            "event_R": found / events,
            "event_F1": pooled_f1(blocks[method]),
        }
        for rnnkit_method in ("rnnkit", "lstm_autoencoder"):
            if method not in ("rnnkit", "lstm_autoencoder"):
                diff = paired_bootstrap(
                    blocks[rnnkit_method], blocks[method], statistic=pooled_f1, seed=seed
                )
                row[f"{rnnkit_method}_minus_this_F1"] = str(diff)
                row[f"{rnnkit_method}_verdict"] = diff.verdict(higher_is_better=True)
        pooled.append(row)
    return per_series, pooled


def run_evaluation(
    quick: bool = False,
    seed: int = 0,
    epochs: int | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    protocol: InjectionProtocol | None = None,
) -> dict:
    """Both tests. Returns ``{"ucr", "threshold_choice", "injected", "injected_pooled",
    "scored"}``: row lists for the tables and the scored stretches for the plots."""
    protocol = protocol or (QUICK_PROTOCOL if quick else PROTOCOL)
    options = {"epochs": 2, "batches_per_epoch": 10} if quick else {}
    if epochs is not None:
        options["epochs"] = epochs
    options["device"] = device
    log("anomaly: UCR InternalBleeding16")
    ucr_rows, ucr_scored = ucr_test(seed, options)
    validation, test = [], []
    for name, dataset, series_id in protocol.series:
        log(f"anomaly: injected anomalies in {name}")
        val_one, test_one = injected_series(name, dataset, series_id, protocol, seed, options)
        validation.append(val_one)
        test.append(test_one)
    chosen, choice_rows = choose_threshold_settings(validation, protocol.tolerance)
    per_series, pooled = score_test_stretches(test, chosen, protocol.tolerance, seed)
    return {
        "ucr": ucr_rows,
        "threshold_choice": choice_rows,
        "injected": per_series,
        "injected_pooled": pooled,
        "scored": [ucr_scored, *test],
    }
