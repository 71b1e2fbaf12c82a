"""What every per-source reader (fashion, digits, mnist1d, cifar, imagefolder) hands to
:func:`~mixkit.harness.data.datasets.load_dataset`, and the label check they share."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DatasetError

__all__ = ["CACHE_ROOT", "Raw", "check_labels"]

#: Where generated (mnist1d) and user-provided (cifar) data live by default.
CACHE_ROOT = Path.home() / ".cache" / "mixkit"


class Raw(NamedTuple):
    """What a reader hands to ``load_dataset``: channel-first arrays before scaling and normalisation,
    labels in ``[0, len(classes))``."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    kind: str
    scale: float  # divide the raw values by this to get [0, 1] (1.0 when already real-valued)


def check_labels(labels: np.ndarray, num_classes: int, where: object) -> None:
    """DatasetError naming ``where`` unless every label lies in ``[0, num_classes)``."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"{where}: expected labels in [0, {num_classes}), found values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
