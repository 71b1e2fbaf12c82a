"""Fashion-MNIST from its four IDX files (raw or ``.gz``), validated by
:func:`~mixkit.harness.data.idx.read_idx`: :func:`read_fashion_mnist` for ``load_dataset`` and
:func:`load_fashion_mnist` (one split as pixels in [0, 1]) for the analyses and the benchmark."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError
from .idx import read_idx
from .raw import Raw, check_labels

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "load_fashion_mnist", "read_fashion_mnist"]

#: Where the Debian package ``dataset-fashion-mnist`` installs the gzipped IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: The ten Fashion-MNIST classes, in label order.
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _fashion_paths(data_dir: str | os.PathLike[str] | None, splits: tuple[str, ...]) -> dict[str, Path]:
    """The IDX files (``train_x``, ``train_y``, ...) of ``splits`` in ``data_dir`` (default
    :data:`FASHION_MNIST_DIR`) or in torchvision's layout below it; FileNotFoundError naming every missing
    file."""
    root = Path(data_dir) if data_dir is not None else Path(FASHION_MNIST_DIR)
    search = [root, root / "FashionMNIST" / "raw"]  # the second is torchvision's download layout
    found: dict[str, Path] = {}
    missing = []
    for key, base in _FASHION_FILES.items():
        if key.split("_")[0] not in splits:
            continue
        for directory in search:
            hits = [directory / n for n in (base, base + ".gz") if (directory / n).is_file()]
            if hits:
                found[key] = hits[0]  # prefer the uncompressed file when both exist
                break
        else:
            missing.append(base)
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found in {root}: missing {', '.join(missing)} (raw or .gz). "
            f"Install them with `apt-get install dataset-fashion-mnist` (which puts the .gz files in "
            f"{FASHION_MNIST_DIR}), or pass --data-dir (data_dir=) a directory holding the four IDX files "
            f"{', '.join(_FASHION_FILES.values())}."
        )
    return found


def _read_fashion_split(x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images ``(N, 28, 28)`` and labels ``(N,)`` of one split, validated."""
    images, labels = read_idx(x_path).numpy(), read_idx(y_path).numpy()
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"file {x_path} does not hold Fashion-MNIST images: expected uint8 data of shape "
            f"(N, 28, 28), found {images.dtype} data of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"file {y_path} does not hold Fashion-MNIST labels: expected uint8 data of shape (N,), "
            f"found {labels.dtype} data of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"image/label count mismatch: {x_path} holds {len(images)} images but {y_path} holds "
            f"{len(labels)} labels"
        )
    check_labels(labels, len(FASHION_MNIST_CLASSES), y_path)
    return images, labels


def read_fashion_mnist(data_dir: str | os.PathLike[str] | None) -> Raw:
    """Both splits as uint8 ``(N, 1, 28, 28)`` images (scale 255) and int64 labels."""
    found = _fashion_paths(data_dir, ("train", "test"))
    splits = []
    for split in ("train", "test"):
        images, labels = _read_fashion_split(found[f"{split}_x"], found[f"{split}_y"])
        splits.append((images[:, None], labels.astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = splits
    return Raw(train_x, train_y, test_x, test_y, list(FASHION_MNIST_CLASSES), "image", 255.0)


def load_fashion_mnist(
    split: str = "train", limit: int | None = None, root: str | os.PathLike[str] | None = FASHION_MNIST_DIR
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` (default: all) images of Fashion-MNIST's ``split`` ("train" or "test") as
    float32 ``(N, 1, 28, 28)`` pixels in [0, 1] (not normalised) and their int64 labels ``(N,)``.

    The IDX files are found and validated as by ``load_dataset("fashion-mnist", data_dir=root)``
    (``root=None``: :data:`FASHION_MNIST_DIR`), but only the split's two files are read.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    found = _fashion_paths(root, (split,))
    images, labels = _read_fashion_split(found[f"{split}_x"], found[f"{split}_y"])
    images, labels = torch.from_numpy(images[:limit]), torch.from_numpy(labels[:limit])
    return images.unsqueeze(1).to(torch.float32) / 255.0, labels.to(torch.int64)
