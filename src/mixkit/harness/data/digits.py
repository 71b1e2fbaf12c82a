"""scikit-learn's 8x8 handwritten digits, split 75/25 per class with a fixed seed of its own."""

from __future__ import annotations

import numpy as np

from .raw import Raw

__all__ = ["read_digits"]

_DIGITS_SPLIT_SEED = 20240611  # fixed: the digits train/test split never depends on the caller's seed
_DIGITS_TEST_FRACTION = 0.25


def read_digits() -> Raw:
    """Both splits as float32 ``(N, 1, 8, 8)`` grey levels 0..16 (scale 16) and int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the 'digits' dataset comes from scikit-learn: pip install scikit-learn") from exc
    digits = load_digits()
    x = np.asarray(digits.images, dtype=np.float32)[:, None]  # (N, 1, 8, 8), grey levels 0..16
    y = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(_DIGITS_SPLIT_SEED)
    test_parts = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y == c))
        test_parts.append(members[: round(len(members) * _DIGITS_TEST_FRACTION)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test_parts)] = True
    classes = [str(c) for c in range(10)]
    return Raw(x[~is_test], y[~is_test], x[is_test], y[is_test], classes, "image", 16.0)
