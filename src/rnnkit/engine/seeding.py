"""Seeds, and the random-number-generator states that a checkpoint saves as plain JSON.

A resumed run must draw exactly the random numbers the uninterrupted run would have drawn
(dropout masks, shuffling), so a checkpoint stores the state of every generator in use:
Python's ``random``, NumPy's global generator, torch's CPU generator and each CUDA device's.
"""

from __future__ import annotations

import base64
import random

import numpy as np
import torch

#: Process ``r`` of a distributed run draws its random numbers (dropout masks, noise) from
#: ``seed + RANK_SEED_STRIDE * r``: apart from the other processes' and, for any realistic
#: number of epochs, from its own other epochs' (which use ``seed + epoch``).
RANK_SEED_STRIDE = 1_000_000


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank`` for a run (or epoch) seeded with ``seed``.

    Example:
        >>> process_seed(7, 0), process_seed(7, 1)
        (7, 1000007)
    """
    return seed + RANK_SEED_STRIDE * rank


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_rng_state() -> dict:
    """The state of every global random generator, as JSON-compatible values.

    Example:
        >>> state = get_rng_state()
        >>> a = torch.rand(1); set_rng_state(state); b = torch.rand(1)
        >>> bool(a == b)
        True
    """
    version, python_state, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": [version, list(python_state), gauss_next],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
        "torch": _to_base64(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_to_base64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore generator states captured by `get_rng_state`."""
    version, python_state, gauss_next = state["python"]
    random.setstate((version, tuple(python_state), gauss_next))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    keys = np.asarray(keys, dtype=np.uint32)
    np.random.set_state((name, keys, position, has_gauss, cached_gaussian))
    torch.set_rng_state(_from_base64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_from_base64(s) for s in state["cuda"]])


def _to_base64(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _from_base64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
