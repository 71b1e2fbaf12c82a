"""CIFAR-10 and CIFAR-100, read through torchvision from its on-disk layout; nothing is ever downloaded."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .raw import CACHE_ROOT, Raw, check_labels

__all__ = ["CIFAR", "read_cifar"]

#: ``name -> (torchvision class, title, archive URL)`` of the CIFAR data sets.
CIFAR = {
    "cifar10": ("CIFAR10", "CIFAR-10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("CIFAR100", "CIFAR-100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def read_cifar(name: str, data_dir: str | os.PathLike[str] | None) -> Raw:
    """Both splits of ``name`` (a key of :data:`CIFAR`) as uint8 ``(N, 3, 32, 32)`` images (scale 255) and
    int64 labels, from ``data_dir`` (default ``~/.cache/mixkit/cifar``) or the extracted folder itself."""
    try:
        import torchvision.datasets as tv_datasets
    except ImportError as exc:
        raise ImportError(
            f"the '{name}' dataset is read through torchvision: pip install torchvision"
        ) from exc
    class_name, title, url = CIFAR[name]
    dataset_cls = getattr(tv_datasets, class_name)
    root = Path(data_dir) if data_dir is not None else CACHE_ROOT / "cifar"
    if root.name == dataset_cls.base_folder:  # accept the extracted folder itself
        root = root.parent
    folder = root / dataset_cls.base_folder
    expected = [f for f, _ in dataset_cls.train_list + dataset_cls.test_list] + [dataset_cls.meta["filename"]]
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{title} files not found: expected {folder} holding {', '.join(expected)}, missing "
            f"{', '.join(missing)}. mixkit never downloads (this machine may be offline): extract "
            f"{url.rsplit('/', 1)[1]} (from {url}) so that the folder {dataset_cls.base_folder} lies in "
            f"the directory given as --data-dir (data_dir=), default {CACHE_ROOT / 'cifar'}."
        )
    splits = []
    for train in (True, False):
        try:
            ds = dataset_cls(root=str(root), train=train, download=False)
        except RuntimeError as exc:
            raise DatasetError(
                f"{title} files in {folder} failed torchvision's md5 check: expected the files of "
                f"{url.rsplit('/', 1)[1]}, found corrupt or different files ({exc})"
            ) from None
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"{title} files in {folder} could not be read: expected torchvision's pickled batches, "
                f"found {type(exc).__name__}: {exc}"
            ) from None
        data, targets = np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)
        split = "train" if train else "test"
        if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or len(data) != len(targets):
            raise DatasetError(
                f"{title} {split} split in {folder}: expected uint8 images (N, 32, 32, 3) "
                f"with N labels, found {data.dtype} {data.shape} with {len(targets)} labels"
            )
        classes = [str(c) for c in ds.classes]
        check_labels(targets, len(classes), f"{title} {split} labels in {folder}")
        splits.append((data.transpose(0, 3, 1, 2), targets))
    (train_x, train_y), (test_x, test_y) = splits
    return Raw(train_x, train_y, test_x, test_y, classes, "image", 255.0)
