"""Distribution -> calibrated intervals: split-conformal factors per horizon step.

Networks trained by likelihood are often over-confident away from their training windows,
and by different amounts at different lead times. The forecaster's windows that were held out
of training (the validation windows, or later its own elapsed forecasts, see
`Forecaster.update`) give, at every step, how far out the truth lay in units of the
uncalibrated half-interval (`scores`); the level's quantile of those is the factor that
widens or narrows that step's interval (`interval_factors`).
"""

from __future__ import annotations

import numpy as np

# Fewer finite scores than this say nothing about a quantile: keep the factors as they are.
MIN_SCORES = 20


def scores(truth, median, lower, upper) -> np.ndarray:
    """|truth - median| over the half-interval on the truth's side (NaN where no truth)."""
    above = truth >= median
    half_width = np.where(above, upper - median, median - lower)
    return np.abs(truth - median) / np.maximum(half_width, 1e-12)


def interval_factors(scores: np.ndarray, level: float, largest: float = 3.0) -> list[float]:
    """Per-step factors on the half-intervals that make ``level`` percent of ``scores``
    (B, H; see `Forecaster.conformal_scores`) fall inside: the split-conformal quantile.

    A step's factor is the level's quantile of the scores of that step and its two
    neighbours on each side (pooled, because a few dozen windows per step give a noisy
    quantile), clipped to 0.5-``largest``. Too few scores (under 20): no change (factors
    of 1).

    Example:
        >>> interval_factors(np.full((10, 4), 2.0), 80)
        [2.0, 2.0, 2.0, 2.0]
    """
    horizon = scores.shape[1]
    if np.isfinite(scores).sum() < MIN_SCORES:  # too few points to say anything
        return [1.0] * horizon
    factors = []
    for step in range(horizon):
        near = scores[:, max(0, step - 2) : step + 3]
        near = near[np.isfinite(near)]
        factor = np.quantile(near, level / 100) if len(near) else 1.0
        factors.append(float(np.clip(factor, 0.5, largest)))
    return factors
