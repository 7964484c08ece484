"""Uncertainty for every comparison rnnkit publishes: the paired bootstrap over test items.

Two systems are scored on the same test items (sentences, series, utterances, pieces). Resampling
the items with replacement, and scoring both systems on each resample, gives the spread of their
difference that comes from which items happened to be in the test set (Koehn 2004, Efron &
Tibshirani 1993). A table says "beats" only where the interval of the difference excludes zero.

Example:
    >>> import numpy as np
    >>> from rnnkit.stats import paired_bootstrap
    >>> correct_rnn = np.array([1, 0, 1, 1, 1, 0, 1, 1])  # per-sentence accuracy
    >>> correct_lr = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    >>> diff = paired_bootstrap(correct_rnn, correct_lr)  # mean(a) - mean(b), 95% interval
    >>> print(diff)
    +0.25 [+0, +0.5]
    >>> diff.verdict(higher_is_better=True)  # "beats", "ties" or "loses": 8 items are few
    'ties'

Corpus-level metrics (WER = errors / words, summed over utterances) pass rows per item and a
statistic over the rows: ``paired_bootstrap(np.c_[errors_a, words], np.c_[errors_b, words],
statistic=lambda rows: rows[:, 0].sum() / rows[:, 1].sum())``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], float]


def _mean(rows: np.ndarray) -> float:
    return float(np.mean(rows))


@dataclass(frozen=True)
class Interval:
    """A statistic with a percentile-bootstrap interval (``low`` to ``high``)."""

    estimate: float
    low: float
    high: float
    confidence: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def verdict(self, higher_is_better: bool) -> str:
        """For a difference a - b: "beats"/"loses" where the interval excludes zero, else "ties"."""
        if not self.excludes_zero():
            return "ties"
        a_is_larger = self.low > 0
        return "beats" if a_is_larger == higher_is_better else "loses"

    def to_dict(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
        }

    def __str__(self) -> str:
        return f"{self.estimate:+.4g} [{self.low:+.4g}, {self.high:+.4g}]"


def _percentile_interval(
    n_items: int,
    value: Callable[[np.ndarray], float],
    resamples: int,
    confidence: float,
    seed: int,
) -> Interval:
    """``value`` of all items, with the percentile interval of ``value`` over resampled item
    indices (the same indices for every system ``value`` compares)."""
    if n_items < 2:
        raise ValueError(f"a bootstrap needs at least 2 items, got {n_items}")
    indices = np.random.default_rng(seed).integers(0, n_items, size=(resamples, n_items))
    draws = np.array([value(idx) for idx in indices])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(value(np.arange(n_items))), float(low), float(high), confidence)


def bootstrap(
    scores: np.ndarray,
    *,
    statistic: Statistic = _mean,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The interval of one system's statistic over resampled items.

    Args:
        scores: shape (items,) or (items, k): one row per test item.
        statistic: maps rows (resampled items) to a number; the mean by default.
        resamples, confidence, seed: the bootstrap's settings (fixed seed: same interval every run).
    """
    scores = np.asarray(scores, dtype=float)
    return _percentile_interval(
        len(scores), lambda idx: statistic(scores[idx]), resamples, confidence, seed
    )


def paired_bootstrap(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    statistic: Statistic = _mean,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The interval of ``statistic(a) - statistic(b)``, resampling the same items for both.

    Args:
        scores_a, scores_b: shape (items,) or (items, k), row i of both scoring test item i.
        statistic: maps rows to a number (mean by default; a ratio of sums for corpus metrics).
        resamples, confidence, seed: the bootstrap's settings.

    Returns:
        An `Interval` of the difference; ``verdict(higher_is_better)`` reads it as
        beats / ties / loses for system a.
    """
    scores_a = np.asarray(scores_a, dtype=float)
    scores_b = np.asarray(scores_b, dtype=float)
    if scores_a.shape[0] != scores_b.shape[0]:
        raise ValueError(
            f"paired scores need the same items: {scores_a.shape[0]} vs {scores_b.shape[0]}"
        )
    return _percentile_interval(
        len(scores_a),
        lambda idx: statistic(scores_a[idx]) - statistic(scores_b[idx]),
        resamples,
        confidence,
        seed,
    )
