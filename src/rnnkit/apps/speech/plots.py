"""Pictures for reports: a spectrogram and what the CTC model hears in it."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from rnnkit.apps.speech.model import ALPHABET  # noqa: E402


def plot_ctc_posteriors(
    features: torch.Tensor, log_probs: torch.Tensor, title: str, path: str | os.PathLike
) -> None:
    """Log-mel features (n_mels, T) above per-frame character probabilities (T', V).

    The blank (id 0) is drawn as the row labelled ``_``; CTC's characters show up as short
    spikes between long stretches of blank.
    """
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), dpi=110, gridspec_kw={"height_ratios": [1, 1.4]}
    )
    top.imshow(features.numpy(), origin="lower", aspect="auto", cmap="magma")
    top.set_ylabel("mel band")
    top.set_title(title, fontsize=9)
    labels = ["_"] + [c if c != " " else "space" for c in ALPHABET]
    bottom.imshow(
        log_probs.exp().T.numpy(),
        origin="lower",
        aspect="auto",
        cmap="Greys",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    bottom.set_yticks(range(len(labels)), labels, fontsize=6)
    bottom.set_xlabel("output frame (40 ms)")
    bottom.set_ylabel("character")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
