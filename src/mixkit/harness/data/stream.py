"""Streaming data path: samples read one at a time by a torch ``DataLoader`` (optionally with worker
processes) and augmented per sample with torchvision v2 transforms, for data sets too large to hold in
memory as one tensor.

The pieces (those in their own modules are re-exported here):

* a *source* yields one sample and its label by index: :class:`TensorSource` (a tensor already in memory)
  or :class:`ImageFileSource` (an ImageFolder split whose files are decoded lazily);
* :class:`StreamSet` is the ``Dataset``: it is indexed by ``(index, seed)`` keys and seeds every random draw
  of one sample from that key, so a sample is a pure function of its key, whichever worker or process
  produces it and whatever the order;
* :func:`batch_keys` turns the harness' index batches into key batches, the per-sample seed a hash of
  ``(seed, epoch, index)``; :func:`make_loader` builds the ``DataLoader`` that yields exactly those batches
  (both in ``loader.py``);
* :class:`Cutout` (per sample, global RNG) and :func:`cutout_batch` (batched, explicit generator, for the
  in-memory path) zero one square per image (``cutout.py``).

The deterministic view of an image file (:meth:`ImageFileSource.read`) is bit for bit what
``load_dataset("imagefolder", ...)`` holds for that file given the same mean and std.  The statistics
themselves differ in one respect: :func:`image_folder_sources` estimates them on a class-stratified sample of
at most ``stats_samples`` training images, where the in-memory path uses every training image (they agree
exactly when ``stats_samples`` covers the whole training split).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..checks import is_positive_int
from .args import check_size, is_int
from .cutout import Cutout, cutout_batch
from .datasets import channel_stats, stratified_indices
from .errors import DatasetError
from .imagefolder import DEFAULT_IMAGE_SIZE, open_rgb8, scan_imagefolder
from .loader import batch_keys, make_loader, sample_seeds

__all__ = [
    "AUGMENTS",
    "Cutout",
    "ImageFileSource",
    "StreamSet",
    "TensorSource",
    "batch_keys",
    "cutout_batch",
    "image_folder_sources",
    "make_loader",
    "sample_seeds",
]

#: The values :class:`StreamSet` accepts for ``augment``.
AUGMENTS: tuple[str, ...] = ("none", "crop-flip", "crop", "flip", "rrc-flip")

_STATS_STREAM = 2  # NumPy stream of the statistics sample (load_dataset's subsets use streams 0 and 1)


# --------------------------------------------------------------------------------------------------------
# Sources


class TensorSource:
    """Samples held in memory as one normalised float tensor ``x`` (``(N, C, H, W)`` images or
    ``(N, C, L)`` signals, on the CPU) and their labels ``y`` (``(N,)`` integers)."""

    def __init__(self, x: Tensor, y: Tensor):
        if not isinstance(x, Tensor) or x.ndim not in (3, 4) or not x.is_floating_point():
            raise ValueError(
                f"x: expected a float tensor (N, C, H, W) or (N, C, L), got "
                f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}"
            )
        if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.is_complex():
            raise ValueError(
                f"y: expected an integer tensor (N,), got {getattr(y, 'dtype', type(y).__name__)} "
                f"of shape {tuple(getattr(y, 'shape', ()))}"
            )
        if len(x) != len(y):
            raise ValueError(f"x and y: expected the same number of samples, got {len(x)} and {len(y)}")
        if x.device.type != "cpu" or y.device.type != "cpu":
            raise ValueError(f"x and y: expected CPU tensors (DataLoader workers read them), got {x.device} "
                             f"and {y.device}")
        self.x = x
        self.y = y.to(torch.int64)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> Tensor:
        """The int64 labels ``(N,)``."""
        return self.y

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    def read(self, i: int) -> tuple[Tensor, int]:
        """Sample ``i`` (a copy the caller owns) and its label."""
        return self.x[i].clone(), int(self.y[i])


def _resized_unit(rgb, size: int, path: Path) -> Tensor:
    """The deterministic view of an RGB image before normalisation: resized to (size, size) with PIL's
    bilinear filter (when not already that size), channel-first float32 in [0, 1]."""
    from PIL import Image

    try:
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"cannot read image file {path}: expected an image PIL can decode, found "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return _uint8_to_unit(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))))


def _uint8_to_unit(x: Tensor) -> Tensor:
    """uint8 pixels to float32 in [0, 1], with the in-memory path's arithmetic (divide by 255)."""
    return x.to(torch.float32).div_(255.0)


def _rgb_to_uint8(rgb) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)))


def _check_stats(name: str, values: Sequence[float], positive: bool) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected 3 numbers (one per RGB channel), got {values!r}") from None
    if len(out) != 3 or not all(np.isfinite(out)) or (positive and min(out) <= 0):
        what = "positive numbers" if positive else "finite numbers"
        raise ValueError(f"{name}: expected 3 {what} (one per RGB channel), got {values!r}")
    return out


class ImageFileSource:
    """One ImageFolder split, each file decoded only when read.

    ``files`` are ``(path, label)`` pairs as the in-memory loader's directory scan lists them; ``mean`` and
    ``std`` (per RGB channel, for pixels scaled to [0, 1]) normalise the float views; ``size`` is the side
    of the deterministic view.
    """

    def __init__(self, files: Sequence[tuple[Path, int]], *, mean: Sequence[float], std: Sequence[float],
                 size: int):
        self.files = [(Path(p), int(label)) for p, label in files]
        self.mean = _check_stats("mean", mean, positive=False)
        self.std = _check_stats("std", std, positive=True)
        self.size = check_size("size", size, 1)
        self._labels = torch.tensor([label for _, label in self.files], dtype=torch.int64)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> Tensor:
        """The int64 labels ``(N,)``, in file order."""
        return self._labels

    @property
    def is_image(self) -> bool:
        return True

    def normalise(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel, in place on float32 ``x`` ``(3, H, W)``, as the in-memory
        path normalises."""
        return x.sub_(self._mean).div_(self._std)

    def read_uint8(self, i: int) -> tuple[Tensor, int]:
        """File ``i`` decoded at full resolution as ``(3, H, W)`` uint8 RGB, and its label."""
        path, label = self.files[i]
        return _rgb_to_uint8(open_rgb8(path)), label

    def read_unit(self, i: int) -> tuple[Tensor, int]:
        """The deterministic view before normalisation: float32 ``(3, size, size)`` in [0, 1]."""
        path, label = self.files[i]
        return _resized_unit(open_rgb8(path), self.size, path), label

    def read(self, i: int) -> tuple[Tensor, int]:
        """The deterministic view: float32 ``(3, size, size)``, resized with PIL's bilinear filter, scaled
        to [0, 1] and normalised; bit for bit what ``load_dataset("imagefolder", ...)`` holds for the file
        given the same mean and std."""
        x, label = self.read_unit(i)
        return self.normalise(x), label

    def read_views(self, i: int) -> tuple[Tensor, Tensor, int]:
        """Both :meth:`read_uint8` and :meth:`read` of file ``i`` from a single decode."""
        path, label = self.files[i]
        rgb = open_rgb8(path)
        return _rgb_to_uint8(rgb), self.normalise(_resized_unit(rgb, self.size, path)), label


def image_folder_sources(
    data_dir: str | os.PathLike[str] | None,
    image_size: int | None,
    *,
    stats_samples: int = 512,
    seed: int = 0,
) -> tuple[ImageFileSource, ImageFileSource, list[str]]:
    """The train and test (or val) splits of an ImageFolder root as lazily read sources, and the class
    names.

    The layout, its checks and their errors are those of ``load_dataset("imagefolder", ...)``; the
    deterministic view is ``image_size`` square (``None``: 64, the in-memory default).  Unlike the in-memory
    path, which computes mean and std on every training image, the per-channel statistics are computed
    (float64 accumulation) on a class-stratified sample of at most ``stats_samples`` training images, drawn
    with NumPy ``default_rng([seed, 2])``, at the deterministic view.  When ``stats_samples`` is at least the
    number of training images every image is used and the statistics equal the in-memory path's exactly.
    The sample is decoded in this process and held as float32 while the statistics are computed
    (``min(stats_samples, N) * 3 * image_size**2 * 4`` bytes).
    """
    if image_size is not None and not is_positive_int(image_size):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    if not is_positive_int(stats_samples):
        raise ValueError(f"stats_samples: expected an integer >= 1, got {stats_samples!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    train_classes, train_files, test_files = scan_imagefolder(data_dir)
    size = int(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE

    # Statistics at the deterministic view; the unnormalised view does not depend on mean/std.
    probe = ImageFileSource(train_files, mean=[0.0] * 3, std=[1.0] * 3, size=size)
    n = len(probe)
    if stats_samples >= n:
        chosen = np.arange(n)
    else:
        labels = probe.labels.numpy()
        rng = np.random.default_rng([int(seed), _STATS_STREAM])
        chosen = stratified_indices(labels, int(stats_samples), rng)
    sample = torch.stack([probe.read_unit(int(i))[0] for i in chosen])
    mean_t, std_t = channel_stats(sample)
    del sample
    mean, std = [float(m) for m in mean_t], [float(s) for s in std_t]
    train = ImageFileSource(train_files, mean=mean, std=std, size=size)
    test = ImageFileSource(test_files, mean=mean, std=std, size=size)
    return train, test, list(train_classes)


# --------------------------------------------------------------------------------------------------------
# The dataset


def _shift_signal(x: Tensor, padding: int) -> Tensor:
    """Zero-pad a (C, L) signal by ``padding`` on both ends and cut back at a random offset (global RNG)."""
    n = x.shape[-1]
    offset = int(torch.randint(0, 2 * padding + 1, (1,)))
    return torch.nn.functional.pad(x, (padding, padding))[:, offset:offset + n]


class StreamSet(Dataset):
    """A map-style dataset over a source, indexed by ``(index, seed)`` keys.

    ``augment``:

    * ``"none"``: the source's deterministic view (:meth:`TensorSource.read` / :meth:`ImageFileSource.read`);
    * ``"crop-flip"``, ``"crop"``, ``"flip"``: as the in-memory path's ``augment_batch``, on the normalised
      view: zero-pad by ``crop_padding`` and crop back at a random offset (torchvision v2 ``RandomCrop``,
      fill 0), flip left-right with probability 0.5 (v2 ``RandomHorizontalFlip``); a ``(C, L)`` signal is
      shifted, never flipped;
    * ``"rrc-flip"`` (an :class:`ImageFileSource` only): v2 ``RandomResizedCrop(image_size, antialias=True)``
      on the full-resolution uint8 image, then the flip, then scaling to [0, 1] and normalisation with the
      source's mean/std.  ``image_size`` defaults to the source's ``size``, so that augmented and original
      views have the same shape; it is used by no other augment.

    ``cutout > 0`` applies :class:`Cutout` last, to the augmented view only.  Every random draw of a sample
    comes from torch's global CPU generator seeded with the key's seed inside ``torch.random.fork_rng``, so
    the caller's RNG state is untouched and the sample depends on the key alone.  An item is
    ``(augmented, label)``, or ``(augmented, original, label)`` with ``with_originals`` (``original`` the
    unaugmented deterministic view); the label is a Python int.
    """

    def __init__(self, source: TensorSource | ImageFileSource, *, augment: str, crop_padding: int = 4,
                 cutout: int = 0, with_originals: bool = False, image_size: int | None = None):
        from torchvision.transforms import v2

        if not isinstance(source, (TensorSource, ImageFileSource)):
            raise TypeError(
                f"source: expected a TensorSource or an ImageFileSource, got {type(source).__name__}"
            )
        if augment not in AUGMENTS:
            raise ValueError(f"augment: expected one of {', '.join(AUGMENTS)}, got {augment!r}")
        if augment == "rrc-flip" and not isinstance(source, ImageFileSource):
            raise ValueError("augment: 'rrc-flip' needs full-resolution images (an ImageFileSource); "
                             "a TensorSource supports none, crop-flip, crop and flip")
        self.source = source
        self.augment = augment
        self.crop_padding = check_size("crop_padding", crop_padding, 0)
        self.cutout = check_size("cutout", cutout, 0)
        self.with_originals = bool(with_originals)
        if image_size is not None and not is_positive_int(image_size):
            raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
        if image_size is None and isinstance(source, ImageFileSource):
            image_size = source.size
        self.image_size = None if image_size is None else int(image_size)

        steps: list = []
        if augment == "rrc-flip":
            steps.append(v2.RandomResizedCrop(self.image_size, antialias=True))
        elif augment in ("crop-flip", "crop") and self.crop_padding > 0 and source.is_image:
            if isinstance(source, ImageFileSource):
                shape = (source.size, source.size)
            else:
                shape = tuple(int(s) for s in source.x.shape[-2:])
            steps.append(v2.RandomCrop(shape, padding=self.crop_padding, fill=0, padding_mode="constant"))
        if augment in ("crop-flip", "flip", "rrc-flip") and source.is_image:
            steps.append(v2.RandomHorizontalFlip(p=0.5))
        self._spatial = v2.Compose(steps) if steps else None
        self._shift = augment in ("crop-flip", "crop") and self.crop_padding > 0 and not source.is_image
        self._cutout = Cutout(self.cutout) if self.cutout > 0 else None

    def __len__(self) -> int:
        return len(self.source)

    def _key(self, key) -> tuple[int, int]:
        if not isinstance(key, (tuple, list)) or len(key) != 2 or not all(is_int(k) for k in key):
            raise TypeError(f"key: expected an (index, seed) pair of integers, got {key!r}")
        index, seed = int(key[0]), int(key[1])
        if not 0 <= index < len(self.source):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.source)} samples")
        if not 0 <= seed < 2 ** 64:
            raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
        return index, seed

    def __getitem__(self, key: tuple[int, int]):
        index, seed = self._key(key)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would also reseed CUDA
            if self.augment == "rrc-flip":
                full, original, label = self.source.read_views(index)
                out = self._spatial(full)
                out = self.source.normalise(_uint8_to_unit(out))
            else:
                original, label = self.source.read(index)
                out = original
                if self._spatial is not None:
                    out = self._spatial(out)
                if self._shift:
                    out = _shift_signal(out, self.crop_padding)
            if self._cutout is not None:
                out = self._cutout(out)
        if self.with_originals:
            return (out.clone() if out is original else out), original, label
        return out, label
