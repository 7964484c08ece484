"""Anomalies of known kind and position injected into a real series, for evaluation.

Four kinds, each scaled by the series' own spread so that they are neither trivial nor
invisible: a one-point spike, a level shift, a flattened season (the cycle disappears) and
a burst of noise. Positions are drawn with a seeded generator, apart from each other.

Example:
    >>> values = np.sin(np.arange(1000) * 2 * np.pi / 24)  # a daily cycle, hourly
    >>> injected = inject_anomalies(values, seed=0)
    >>> injected.values.shape, int(injected.labels.sum())  # labels: 1 inside an anomaly
    ((1000,), 146)
    >>> injected.events[:3]  # (start, end, kind)
    [(104, 128, 'level_shift'), (269, 293, 'flat_season'), (381, 405, 'level_shift')]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("spike", "level_shift", "flat_season", "noise_burst")


@dataclass
class Injected:
    values: np.ndarray  # (T,) the series with anomalies
    labels: np.ndarray  # (T,) 1 inside an injected anomaly
    events: list[tuple[int, int, str]]  # [start, end) and kind of each anomaly


def inject_anomalies(
    values: np.ndarray,
    per_kind: int = 2,
    length: int = 24,
    margin: int = 64,
    seed: int = 0,
) -> Injected:
    """Inject ``per_kind`` anomalies of each kind in `KINDS` into a copy of ``values``.

    Args:
        length: points of the level shift, flat season and noise burst.
        margin: minimum gap between anomalies, and from the start of the series (the
            detectors need a context before they score).
    """
    values = np.asarray(values, float).copy()
    rng = np.random.default_rng(seed)
    spread = np.nanstd(values)
    step_spread = np.nanstd(np.diff(values))
    kinds = [kind for kind in KINDS for _ in range(per_kind)]
    rng.shuffle(kinds)
    starts = _spaced_positions(len(values), len(kinds), length + margin, margin, rng)
    labels = np.zeros(len(values), dtype=int)
    events = []
    for kind, start in zip(kinds, starts, strict=True):
        end = start + (1 if kind == "spike" else length)
        segment = values[start:end]
        if kind == "spike":
            segment += rng.choice([-1, 1]) * max(4 * spread, 8 * step_spread)
        elif kind == "level_shift":
            segment += rng.choice([-1, 1]) * 1.5 * spread
        elif kind == "flat_season":
            segment[:] = segment.mean() + 0.1 * (segment - segment.mean())
        else:  # noise burst
            segment += rng.normal(0, max(0.5 * spread, 4 * step_spread), len(segment))
        labels[start:end] = 1
        events.append((int(start), int(end), kind))
    return Injected(values, labels, sorted(events))


def _spaced_positions(total: int, count: int, gap: int, start: int, rng) -> list[int]:
    """``count`` positions in [start, total - gap) at least ``gap`` apart."""
    room = total - start - count * gap
    if room < 0:
        raise ValueError(f"a series of {total} points cannot hold {count} anomalies")
    offsets = np.sort(rng.integers(0, room + 1, size=count))
    return [int(start + offset + i * gap) for i, offset in enumerate(offsets)]
