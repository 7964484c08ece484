"""Pictures of what a captioner did: attention per word, captioned galleries, video strips.

All functions write a PNG with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from rnnkit.files import atomic_path  # noqa: E402


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def upsample_attention(alpha: np.ndarray, size: int) -> np.ndarray:
    """An attention vector over a square grid (e.g. 64 = 8x8) as a smooth size x size map."""
    grid = int(round(np.sqrt(alpha.size)))
    scaled = (alpha.reshape(grid, grid) / max(alpha.max(), 1e-12) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(scaled).resize((size, size), Image.BILINEAR)) / 255.0


def attention_grid(
    image: np.ndarray, caption: str, alphas: np.ndarray, path: str | os.PathLike, columns: int = 6
) -> Path:
    """The image, then one panel per word with the attention that produced it (bright = looked).

    Args:
        image: [H, W, 3] uint8.
        caption: the words, space-separated.
        alphas: [words + 1, L] from `Captioner.attention_maps` (the last row, for the end token,
            is drawn as "<end>").
    """
    words = [*caption.split(), "<end>"][: len(alphas)]
    panels = len(words) + 1
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=8)
    for ax, word, alpha in zip(axes[1:], words, alphas, strict=False):
        ax.imshow(image)
        ax.imshow(
            upsample_attention(alpha, image.shape[0]), cmap="magma", alpha=0.65, vmin=0, vmax=1
        )
        ax.set_title(word, fontsize=9)
    figure.suptitle(textwrap.fill(caption, 90), fontsize=9)
    return _save(figure, path)


def caption_gallery(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | os.PathLike,
    references: Sequence[str] | None = None,
    columns: int = 4,
) -> Path:
    """Images with their generated captions (and a reference, in grey, when given)."""
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.6 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for i, (ax, image, caption) in enumerate(zip(axes, images, captions, strict=False)):
        ax.imshow(image)
        text = textwrap.fill(caption, 34)
        if references is not None:
            text += "\n" + textwrap.fill(f"(ref: {references[i]})", 34)
        ax.set_title(text, fontsize=7, loc="left")
    return _save(figure, path)


def video_strip(
    frames: np.ndarray,
    caption: str,
    path: str | os.PathLike,
    alphas: np.ndarray | None = None,
    reference: str | None = None,
) -> Path:
    """The frames of a clip in a row, the caption above, and with ``alphas`` what each word
    looked at.

    ``alphas`` [words + 1, L]: over the 8x8 grid cells of a space-time encoder (L = 64), a
    row of panels, one per word, with the attention over the clip's trajectories (the
    brightest pixel of every frame); over frames (L = T), a heat map of words x frames.
    """
    t = len(frames)
    words = [*caption.split(), "<end>"][: len(alphas)] if alphas is not None else []
    spatial = alphas is not None and alphas.shape[1] != t
    columns = max(t, len(words)) if spatial else t
    rows = 1 if alphas is None else 2
    width = max(1.3 * columns, 6)
    figure = plt.figure(figsize=(width, 1.8 * rows + (0.6 if rows == 2 and not spatial else 0)))
    grid = figure.add_gridspec(rows, columns)
    for i, frame in enumerate(frames):
        ax = figure.add_subplot(grid[0, i])
        ax.imshow(frame)
        ax.axis("off")
        ax.set_title(f"frame {i}", fontsize=7)
    title = textwrap.fill(caption, 110)
    if reference is not None:
        title += "\n" + textwrap.fill(f"(ref: {reference})", 110)
    figure.suptitle(title, fontsize=9)
    if alphas is not None and spatial:
        trajectories = frames.max(axis=0)  # every frame at once: where each item went
        for i, (word, alpha) in enumerate(zip(words, alphas, strict=False)):
            ax = figure.add_subplot(grid[1, i])
            ax.imshow(trajectories)
            ax.imshow(
                upsample_attention(alpha, frames.shape[1]),
                cmap="magma",
                alpha=0.65,
                vmin=0,
                vmax=1,
            )
            ax.axis("off")
            ax.set_title(word, fontsize=8)
    elif alphas is not None:
        ax = figure.add_subplot(grid[1, :])
        ax.imshow(alphas.T, aspect="auto", cmap="magma", vmin=0)
        ax.set_xticks(range(len(words)), words, fontsize=7, rotation=60, ha="right")
        ax.set_yticks(range(t), [str(i) for i in range(t)], fontsize=6)
        ax.set_ylabel("frame", fontsize=7)
    return _save(figure, path)
