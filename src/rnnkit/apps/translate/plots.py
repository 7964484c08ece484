"""Pictures for reports: where the decoder attends while it translates."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_attention(
    source: list[str], target: list[str], weights: torch.Tensor, path: str | os.PathLike
) -> None:
    """Save a heat map of attention weights (rows: output subwords, columns: source subwords)."""
    height = max(3.0, 0.28 * len(target) + 1.5)
    width = max(4.0, 0.28 * len(source) + 2.0)
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.imshow(weights.numpy(), cmap="Greys", vmin=0.0, aspect="auto")
    ax.set_xticks(
        range(len(source)), [s.replace("\u2581", "_") for s in source], rotation=90, fontsize=8
    )
    ax.set_yticks(range(len(target)), [t.replace("\u2581", "_") for t in target], fontsize=8)
    ax.set_xlabel("source subwords")
    ax.set_ylabel("translation, one subword per row")
    ax.set_title("attention weights (darker = more weight)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
