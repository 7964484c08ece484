"""What the piano-roll and the token models share: batch order, saved folders, the output key.

Both models save a ``kind`` tag in config.json so that loading a folder with the wrong model
class is a one-line error rather than a shape mismatch deep inside ``load_state_dict``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Self

import torch

from rnnkit.apps.common import app_of_folder
from rnnkit.data.music import Piece, shift_to_common_key
from rnnkit.engine import load_model_state, save_model
from rnnkit.errors import UserError


def batch_indices(count: int, batch_size: int, shuffle: bool) -> Iterator[list[int]]:
    """Indices of ``count`` examples in batches of ``batch_size``, in a random order if
    ``shuffle``.

    The order comes from torch's global generator, which the `Trainer` seeds at the start of
    every epoch: an epoch's batches depend only on the seed and the epoch.

    >>> list(batch_indices(5, 2, shuffle=False))
    [[0, 1], [2, 3], [4]]
    """
    order = torch.randperm(count).tolist() if shuffle else list(range(count))
    for first in range(0, count, batch_size):
        yield order[first : first + batch_size]


class TaggedModel:
    """Base of the music estimators: ``save`` / ``load`` of a folder tagged with ``KIND``.

    A subclass sets ``KIND`` (the tag), ``CONFIG`` (its config dataclass) and ``WHAT`` (how an
    error names it), and keeps its network in ``self.net`` and its config in ``self.config``;
    ``cls(config)`` must build an untrained network of the right shape.
    """

    KIND: str
    CONFIG: type
    WHAT: str
    net: torch.nn.Module
    config: Any

    def __init__(self, config: Any = None):
        self.config = config or self.CONFIG()
        self.net = self._build()
        self.history: list[dict] = []

    def _build(self) -> torch.nn.Module:
        """The untrained network that ``self.config`` describes."""
        raise NotImplementedError

    def save(self, directory: str | os.PathLike, extra: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` (with ``extra`` facts, e.g. data)."""
        save_model(directory, self.net, {"kind": self.KIND, **asdict(self.config), **(extra or {})})

    @classmethod
    def load(cls, directory: str | os.PathLike) -> tuple[Self, dict]:
        """Rebuild a saved model; returns it and its whole config.json."""
        state, config = load_model_state(directory)
        if config.get("kind") != cls.KIND:
            raise UserError(f"{directory}: {what_folder_holds(directory, config)}, not {cls.WHAT}")
        known = {f.name for f in fields(cls.CONFIG)}
        model = cls(cls.CONFIG(**{k: v for k, v in config.items() if k in known}))
        model.net.load_state_dict(state)
        model.net.eval()
        return model, config


def in_key(piece: Piece, primer: Piece | None, key_sharps: int | None, common_key: bool) -> Piece:
    """A generated ``piece`` moved to ``key_sharps`` (default: the primer's key, else C major).

    A model trained in the common key generates in C major / A minor; without ``common_key``
    the piece is already in the key it was primed with and is returned unchanged.
    """
    if not common_key:
        return piece
    if key_sharps is None:
        key_sharps = primer.key_sharps if primer is not None else 0
    return piece.transpose(-shift_to_common_key(key_sharps))


def what_folder_holds(directory: str | os.PathLike, config: dict) -> str:
    """What a model folder that is not the expected app's holds, from its config.json:
    "it holds a speech model", or that no rnnkit application wrote it."""
    app = app_of_folder(Path(directory), config)
    if app is None:
        return "config.json names no rnnkit application (not written by 'rnnkit ... train')"
    return f"it holds {'an' if app[0] in 'aeiou' else 'a'} {app} model"
