"""A dataset wrapper that yields each sample twice: as it is and augmented.

SynerMix (Xu et al. 2024, arXiv 2403.14137) computes its intra-class term on the features of the
*unaugmented* images and its inter-class term on augmented ones, so every step needs both views
of the same samples. ``PairedViews`` wraps any map-style dataset of ``(x, label)`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from .reprs import init_repr

__all__ = ["PairedViews"]


class PairedViews(Dataset):
    """``(original, augmented, label)`` from a dataset of ``(x, label)``.

    ``original = base(x)`` (``x`` itself when ``base`` is None), ``augmented = augment(x)``; both
    transforms receive the same raw ``x`` (e.g. a PIL image: then ``base`` should at least turn
    it into a tensor, e.g. ToTensor + Normalize, and ``augment`` should end the same way). The
    transforms' randomness is theirs: torchvision's random transforms draw from torch's global
    generator, which ``DataLoader`` seeds per worker. ``targets`` is the wrapped dataset's
    ``targets`` (or ``labels``) when it has one, so a ``BalancedBatchSampler`` can be built from
    it without loading any image.

    Example:

    ```python
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from mixkit.paired import PairedViews
    >>> data = TensorDataset(torch.rand(10, 1, 8, 8), torch.arange(10) % 2)
    >>> pairs = PairedViews(data, augment=lambda x: x.flip(-1))
    >>> original, augmented, label = pairs[3]
    >>> bool(torch.equal(augmented, original.flip(-1)))
    True

    ```
    """

    def __init__(self, dataset, augment: Callable[[Any], Any], base: Callable[[Any], Any] | None = None):
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"dataset: expected a map-style dataset (__getitem__ and __len__), "
                            f"got {type(dataset).__name__}")
        if not callable(augment):
            raise TypeError(f"augment: expected a callable transform, got {type(augment).__name__}")
        if base is not None and not callable(base):
            raise TypeError(f"base: expected None or a callable transform, got {type(base).__name__}")
        self.dataset = dataset
        self.augment = augment
        self.base = base

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            got = f"{len(item)} values" if isinstance(item, (tuple, list)) else type(item).__name__
            raise ValueError(f"dataset: expected items (x, label), got {got} at index {index}")
        x, label = item
        original = x if self.base is None else self.base(x)
        return original, self.augment(x), label

    @property
    def targets(self):
        """The wrapped dataset's labels (``targets`` or ``labels`` attribute), for samplers."""
        for name in ("targets", "labels"):
            found = getattr(self.dataset, name, None)
            if found is not None:
                return found
        if isinstance(self.dataset, torch.utils.data.TensorDataset) and len(self.dataset.tensors) == 2:
            return self.dataset.tensors[1]
        raise AttributeError(f"targets: expected the wrapped {type(self.dataset).__name__} to have "
                             "'targets' or 'labels', got neither")

    def __repr__(self) -> str:
        return init_repr(self)
