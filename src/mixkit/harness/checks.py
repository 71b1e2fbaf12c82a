"""Argument checks shared by the harness's parts (data, models, train, analysis, bench).

One wording for one rule, so that every part reports a bad count the same way.
"""

from __future__ import annotations

import numbers

__all__ = ["is_positive_int", "positive_int"]


def is_positive_int(value: object) -> bool:
    """True for an integer (Python or NumPy, not a bool) that is at least 1."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def positive_int(name: str, value: object) -> int:
    """``value`` as an ``int``; ValueError ``"{name}: expected an integer >= 1, got {value!r}"`` otherwise."""
    if not is_positive_int(value):
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)
