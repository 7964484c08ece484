"""`torch_threads`: run a block of code with a given number of CPU threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` CPU threads inside the block and restore the previous count after it.

    Small recurrent models (a state of a few dozen units) often run faster on one thread: a
    second one costs more in synchronization than it gains, much more on a busy machine.

    Args:
        count: intra-op threads for torch inside the block; 0 leaves torch's setting alone.

    Example:
        >>> model, x = torch.nn.GRU(8, 16), torch.randn(20, 1, 8)
        >>> with torch_threads(1):
        ...     out, h = model(x)
        >>> out.shape
        torch.Size([20, 1, 16])
    """
    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
