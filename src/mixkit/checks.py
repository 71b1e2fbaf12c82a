"""Hyperparameter checks shared by every constructor: one rule, one wording.

Each checker takes the argument's name and value, returns the normalised value, and raises a
``TypeError`` (wrong kind) or ``ValueError`` (wrong value) that names the argument, what was
expected and what came.
"""

from __future__ import annotations

import math

from .functional import sampling

__all__ = ["positive", "probabilities", "probability", "num_classes", "pairing", "smoothing", "flag", "mode",
           "span", "bounds", "within", "optional_int", "choice"]


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


# the smallest positive float32 that is not subnormal: below it, parameters that reach float32
# draws (Beta's alpha) become 0 and the draws NaN
_TINY = 1.1754943508222875e-38


def positive(name: str, value) -> float:
    """A finite number > 0, at least float32's smallest normal number (~1.2e-38)."""
    if not _is_number(value):
        raise TypeError(f"{name}: expected a number > 0, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number > 0, got {value}")
    if value < _TINY:
        raise ValueError(f"{name}: expected a number >= {_TINY:.3g} (float32's smallest normal number; "
                         f"smaller ones become 0 in the draws), got {value}")
    return float(value)


def probabilities(name: str, value, count: int) -> list[float]:
    """``count`` finite non-negative numbers summing to 1 (to 1e-6)."""
    if isinstance(value, (str, bytes)) or not (hasattr(value, "__len__") and hasattr(value, "__iter__")):
        raise TypeError(f"{name}: expected a sequence of {count} probabilities, got {type(value).__name__}")
    items = list(value)
    if len(items) != count or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in items) \
            or abs(sum(items) - 1.0) > 1e-6:
        raise ValueError(f"{name}: expected {count} non-negative probabilities summing to 1, got {items!r}")
    return [float(v) for v in items]


def probability(value, name: str = "p") -> float:
    """A number in [0, 1]."""
    if not _is_number(value):
        raise TypeError(f"{name}: expected a probability in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value}")
    return float(value)


def num_classes(value) -> int | None:
    """None or an integer >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"num_classes: expected None or an integer >= 1, got {value!r}")
    return value


def optional_int(name: str, value, low: int) -> int | None:
    """None or an integer >= ``low``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise ValueError(f"{name}: expected None or an integer >= {low}, got {value!r}")
    return value


def pairing(value) -> str:
    """One of ``mixkit.functional.sampling.PAIRINGS``."""
    if value not in sampling.PAIRINGS:
        raise ValueError(f"pairing: expected one of {', '.join(repr(k) for k in sampling.PAIRINGS)}, "
                         f"got {value!r}")
    return value


def smoothing(value) -> float:
    """A label-smoothing eps in [0, 1)."""
    if not _is_number(value):
        raise TypeError(f"label_smoothing: expected a number in [0, 1), got {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1), got {value}")
    return float(value)


def flag(name: str, value) -> bool:
    """A bool (not a string, not a number)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def mode(value) -> str:
    """``"batch"`` or ``"elem"``."""
    if value not in ("batch", "elem"):
        raise ValueError(f"mode: expected 'batch' or 'elem', got {value!r}")
    return value


def choice(name: str, value, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected {' or '.join(repr(o) for o in options)}, got {value!r}")
    return value


def span(name: str, value, low: float, high: float | None, integer: bool = False):
    """A number or a ``(low, high)`` range in ``(low, high]`` (``[low, high]`` of ints when
    ``integer``), checked; a range comes back as a tuple, a number as a number."""
    one, kind = ("an integer", "integers") if integer else ("a number", "numbers")
    bound = f">= {low}" if integer else f"> {low}"
    if high is not None:
        bound += f" and <= {high}"

    def ok(v):
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return False
        return (v >= low if integer else v > low) and (high is None or v <= high) and math.isfinite(v)

    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(ok(v) for v in pair) or pair[0] > pair[1]:
        raise ValueError(f"{name}: expected {one} or a (low, high) range of {kind} {bound}, got {value!r}")
    cast = int if integer else float
    return (cast(pair[0]), cast(pair[1])) if isinstance(value, (tuple, list)) else cast(value)


def bounds(value) -> tuple:
    """A number or a range as ``(low, high)``."""
    return tuple(value) if isinstance(value, tuple) else (value, value)


def within(value, u):
    """``u`` in [0, 1) mapped onto ``value`` (a number or a range)."""
    lo, hi = bounds(value)
    return lo + (hi - lo) * u
