"""The integer checks of the streaming path (stream, cutout, loader): one wording for a bad count."""

from __future__ import annotations

import numbers

__all__ = ["check_size", "is_int"]


def is_int(value: object) -> bool:
    """True for an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_size(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int``; ValueError ``"{name}: expected an integer >= {minimum}, got {value!r}"``
    unless it is an integer of at least ``minimum``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)
