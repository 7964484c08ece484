"""PNG plots of a scored series: values with flagged points, and the score with its threshold."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rnnkit.files import atomic_path  # noqa: E402


def plot_detection(
    path: str | os.PathLike,
    values: np.ndarray,
    smoothed: np.ndarray,
    flags: np.ndarray,
    threshold: float,
    labels: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Two panels: the series with flagged points (red) and true anomalies (shaded), and the
    smoothed score with the threshold."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True)
    x = np.arange(len(values))
    top.plot(x, values, color="black", lw=0.7)
    if labels is not None:
        _shade(top, labels, "tab:orange", "true anomaly")
    top.scatter(x[flags], values[flags], color="tab:red", s=6, zorder=3, label="flagged")
    top.set_title(title, fontsize=9)
    top.legend(loc="upper left", fontsize=7)
    bottom.plot(x, smoothed, color="tab:blue", lw=0.8, label="smoothed score")
    if np.isfinite(threshold):
        bottom.axhline(threshold, color="tab:red", ls="--", lw=1, label="threshold")
    bottom.set_xlabel("point", fontsize=8)
    bottom.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)


def _shade(axis, labels: np.ndarray, color: str, label: str) -> None:
    edges = np.diff(np.concatenate([[0], np.asarray(labels, int), [0]]))
    for i, (start, end) in enumerate(
        zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    ):
        axis.axvspan(
            start - 0.5, end - 0.5, color=color, alpha=0.3, label=label if i == 0 else None
        )
