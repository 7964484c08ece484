"""Helpers several apps share, and the one rule that tells which app wrote a model folder.

`app_of_folder` reads a folder written by ``rnnkit <app> train`` and names its application;
`rnnkit serve` and `rnnkit export` both use it.

`LengthBucketedBatches` is the batching of the sequence-to-sequence apps (speech, translate):
examples of similar length go in one batch, so little of each batch is padding, and the order
is reshuffled every epoch from ``seed + epoch``, so a resumed run replays the epoch it continues.

>>> class Pairs(LengthBucketedBatches):
...     def __init__(self, rows):
...         super().__init__([len(r) for r in rows], batch_size=2, shuffle=False)
...         self.rows = rows
...     def _collate(self, indices):
...         return [self.rows[i] for i in indices]
>>> list(Pairs([[1, 2, 3], [4], [5, 6]]))
[[[4], [5, 6]], [[1, 2, 3]]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

APPS = ("forecast", "anomaly", "sentiment", "lm", "translate", "speech", "caption", "music")


def app_of_folder(folder: Path, config: dict) -> str | None:
    """The application that wrote ``folder`` (its ``config.json`` already read as ``config``),
    or None when no rnnkit application did."""
    kind = str(config.get("kind", ""))
    if config.get("app") in APPS:
        return config["app"]
    if kind == "rnnkit.forecast":
        return "anomaly" if config.get("columns", {}).get("kind") == "anomaly" else "forecast"
    if kind.startswith("rnnkit.music"):
        return "music"
    if "sentiment" in config:
        return "sentiment"
    if "lm" in config:
        return "lm"
    # translate and speech write no "app" into config.json: known by their files.
    if (folder / "source_tokenizer.json").exists():
        return "translate"
    if "n_mels" in config:
        return "speech"
    return None


class LengthBucketedBatches:
    """Batches of examples of similar length, reshuffled every epoch (reproducibly).

    A subclass stores its examples and defines ``_collate(indices) -> batch``, which pads the
    examples at ``indices`` (a 1-D array into the example list) into one batch.

    Args:
        lengths: length of each example (frames, subwords...), what the batches are sorted by.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: sort by length plus uniform noise in [0, ``length_noise``) and shuffle the
            order of the batches; without it, batches come in length order.
        seed: the shuffle of epoch ``e`` (0-based) is drawn from ``seed + e``.
        length_noise: how far (in length units) examples may move out of length order.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        length_noise: float = 2.0,
    ):
        self.lengths = np.asarray(lengths, dtype=float)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.length_noise = length_noise

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next pass as epoch ``epoch`` (0-based); the `Trainer` calls this, so a
        resumed run replays the order of the epoch it continues."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        for indices in self._batch_indices():
            yield self._collate(indices)

    def _batch_indices(self) -> list[np.ndarray]:
        """The example indices of each batch of the next epoch, in the order they are served."""
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        # Sorting by length (plus noise when shuffling) keeps padding small.
        noise = rng.uniform(0, self.length_noise, len(self.lengths)) if self.shuffle else 0
        order = np.argsort(self.lengths + noise, kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _collate(self, indices: np.ndarray) -> Any:
        raise NotImplementedError("a subclass pads the examples at `indices` into one batch")
