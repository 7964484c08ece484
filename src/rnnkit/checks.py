"""Checks of a config dataclass's fields, for its ``__post_init__``.

A bad value fails where it is given, with one line naming the config and the field
(``LMConfig num_layers: expected a positive integer, got 0``), not as a division by zero or
a shape error deep in torch; or, worse, as a model that trains and means nothing.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Config:
    ...     hidden_size: int = 8
    ...     def __post_init__(self):
    ...         check_fields(self, positive_ints=("hidden_size",))
    >>> Config(hidden_size=0)
    Traceback (most recent call last):
    ValueError: Config hidden_size: expected a positive integer, got 0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def check_fields(
    config: object,
    *,
    choices: Mapping[str, Iterable[str]] | None = None,
    positive_ints: Iterable[str] = (),
    optional_positive_ints: Iterable[str] = (),
    fractions: Iterable[str] = (),
    positive_numbers: Iterable[str] = (),
) -> None:
    """Raise a ValueError naming the first field of ``config`` whose value is out of range.

    Args:
        choices: field -> the values it may take.
        positive_ints: fields that are integers of at least 1 (not bools).
        optional_positive_ints: the same, or None (not set).
        fractions: fields in [0, 1) (dropout rates).
        positive_numbers: fields above 0 (learning rates).
    """
    owner = type(config).__name__

    def fail(name: str, expected: str) -> None:
        raise ValueError(f"{owner} {name}: expected {expected}, got {getattr(config, name)!r}")

    for name, allowed in (choices or {}).items():
        allowed = tuple(allowed)
        if getattr(config, name) not in allowed:
            fail(name, f"one of {', '.join(allowed)}")
    optional = tuple(optional_positive_ints)
    for name in (*positive_ints, *optional):
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            fail(name, "a positive integer")
    for name in fractions:
        if not 0 <= getattr(config, name) < 1:
            fail(name, "a number in [0, 1)")
    for name in positive_numbers:
        if not getattr(config, name) > 0:
            fail(name, "a positive number")
