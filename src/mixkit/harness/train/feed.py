"""Where a run's batches come from: the whole set in memory, or streamed by DataLoader workers.

Both feeds take the same index batches (``epoch_batches``: a pure function of the seed, the epoch
and the rank, sharded like ``DistributedSampler`` with ``drop_last``, or the class-balanced
sampler's distributed mode) and hand the training loop ``(originals, augmented, labels)`` on the
training device, ready to be mixed there:

- ``MemoryFeed`` (``loader: memory``): the data set's tensors live on the device (CUDA) or in host
  memory; a batch is gathered by index and augmented as a batch on the device, its draws from the
  run's generator. Fast for sets that fit (MNIST- and CIFAR-sized).
- ``StreamFeed`` (``loader: stream``): a torch ``DataLoader`` with ``workers`` processes reads each
  sample and augments it with torchvision v2 transforms (``data.stream``): an ImageFolder is read
  file by file, never held whole; the built-in sets are read from their tensors. Each sample's
  draws are seeded by (seed, epoch, index), so the batches do not depend on the number of workers
  and a resumed run is exact. Batches are pinned and copied to the device asynchronously.

The test set is fed the same way, each rank taking every ``world_size``-th sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixkit.samplers import BalancedBatchSampler

from ..data.augment import augment_batch
from ..data.cutout import cutout_batch
from ..data.datasets import load_dataset
from ..data.loader import batch_keys, make_loader
from ..data.stream import ImageFileSource, StreamSet, TensorSource, image_folder_sources
from .config import TrainConfig
from .dist import DistInfo

__all__ = ["MemoryFeed", "StreamFeed", "build_feed", "epoch_batches", "stable_seed"]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def stable_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (the same in every process)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_batches(cfg: TrainConfig, n_train: int, epoch: int, info: DistInfo,
                  sampler: BalancedBatchSampler | None) -> list[torch.Tensor]:
    """Index batches of this process for ``epoch``: a pure function of (seed, epoch, rank)."""
    if sampler is not None:
        sampler.set_epoch(epoch)
        return [torch.as_tensor(b, dtype=torch.long) for b in sampler]
    g = torch.Generator().manual_seed(stable_seed(cfg.seed, 1, epoch))
    perm = torch.randperm(n_train, generator=g)
    per_rank = n_train // info.world_size
    mine = perm[info.rank::info.world_size][:per_rank]
    n_batches = per_rank // cfg.batch_size          # the last partial batch is dropped
    if n_batches == 0:
        raise ValueError(f"batch_size: expected at most {per_rank} (training samples per process), "
                         f"got {cfg.batch_size}")
    return list(mine[:n_batches * cfg.batch_size].view(n_batches, cfg.batch_size))


def _to_device(x: torch.Tensor, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and cfg.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@dataclass
class _Meta:
    name: str
    num_classes: int
    input_shape: tuple
    n_train: int
    n_test: int
    train_labels: torch.Tensor          # on the CPU, for the balanced sampler


class MemoryFeed:
    """The whole data set as tensors on ``store`` (the device on CUDA, else the CPU)."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, train_size=cfg.train_size,
                            test_size=cfg.test_size, seed=cfg.data_seed, image_size=cfg.image_size)
        self.cfg, self.device = cfg, device
        self.store = device if device.type == "cuda" else torch.device("cpu")
        self.train_x, self.train_y = data.train_x.to(self.store), data.train_y.to(self.store)
        self.test_x, self.test_y = data.test_x.to(self.store), data.test_y.to(self.store)
        self.meta = _Meta(data.name, data.num_classes, data.input_shape, data.train_x.shape[0],
                          data.test_x.shape[0], data.train_y)

    def train_batches(self, epoch: int, batches: list[torch.Tensor], gen: torch.Generator) -> Iterator[Batch]:
        cfg = self.cfg
        for idx in batches:
            idx = idx.to(self.store)
            originals = _to_device(self.train_x[idx], cfg, self.device)
            labels = self.train_y[idx].to(self.device, non_blocking=True)
            augmented = augment_batch(originals, cfg.augment, cfg.crop_padding, gen)
            augmented = cutout_batch(augmented, cfg.cutout, gen)
            yield originals, augmented, labels

    def test_batches(self, info: DistInfo, *, everything: bool = False) -> Iterator[tuple]:
        """This rank's share of the test set (every sample with ``everything``), in eval batches."""
        idx = torch.arange(self.meta.n_test) if everything else \
            torch.arange(info.rank, self.meta.n_test, info.world_size)
        for start in range(0, idx.numel(), self.cfg.eval_batch_size):
            b = idx[start:start + self.cfg.eval_batch_size].to(self.store)
            yield _to_device(self.test_x[b], self.cfg, self.device), self.test_y[b].to(self.device)


class StreamFeed:
    """Samples read and augmented one by one by DataLoader workers (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, with_originals: bool):
        self.cfg, self.device = cfg, device
        if cfg.dataset == "imagefolder":
            train, test, classes = image_folder_sources(cfg.data_dir, cfg.image_size, seed=cfg.data_seed)
            train, test = subset(train, cfg.train_size, cfg.data_seed, 0), \
                subset(test, cfg.test_size, cfg.data_seed, 1)
            name, k, shape = "imagefolder", len(classes), (3, train.size, train.size)
        else:
            data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, train_size=cfg.train_size,
                                test_size=cfg.test_size, seed=cfg.data_seed, image_size=cfg.image_size)
            train, test = TensorSource(data.train_x, data.train_y), TensorSource(data.test_x, data.test_y)
            name, k, shape = data.name, data.num_classes, data.input_shape
        self.meta = _Meta(name, k, tuple(shape), len(train), len(test), train.labels)
        self.with_originals = with_originals
        self.train_set = StreamSet(train, augment=cfg.augment, crop_padding=cfg.crop_padding,
                                   cutout=cfg.cutout, with_originals=with_originals)
        self.test_set = StreamSet(test, augment="none")
        self.pin = device.type == "cuda"

    def train_batches(self, epoch: int, batches: list[torch.Tensor], gen: torch.Generator) -> Iterator[Batch]:
        keys = batch_keys(batches, stable_seed(self.cfg.seed, 4), epoch)
        for batch in make_loader(self.train_set, keys, workers=self.cfg.workers, pin_memory=self.pin):
            if self.with_originals:
                augmented, originals, labels = batch
                originals = _to_device(originals, self.cfg, self.device)
            else:
                augmented, labels = batch
            augmented = _to_device(augmented, self.cfg, self.device)
            yield (originals if self.with_originals else augmented), augmented, \
                labels.to(self.device, non_blocking=True)

    def test_batches(self, info: DistInfo, *, everything: bool = False) -> Iterator[tuple]:
        n, size = self.meta.n_test, self.cfg.eval_batch_size
        idx = list(range(n)) if everything else list(range(info.rank, n, info.world_size))
        keys = [[(i, 0) for i in idx[s:s + size]] for s in range(0, len(idx), size)]
        for x, y in make_loader(self.test_set, keys, workers=self.cfg.workers, pin_memory=self.pin):
            yield _to_device(x, self.cfg, self.device), y.to(self.device, non_blocking=True)


def subset(source: ImageFileSource, size: int | None, seed: int, stream: int) -> ImageFileSource:
    """A class-stratified subset of an image-folder split, drawn as the in-memory loader draws it."""
    from ..data.datasets import subset as subset_indices

    idx = subset_indices(source.labels.numpy(), size, seed, stream, "train_size" if stream == 0 else
                         "test_size", "the imagefolder " + ("train" if stream == 0 else "test") + " split")
    if idx is None:
        return source
    files = [source.files[int(i)] for i in idx]
    return ImageFileSource([(Path(p), label) for p, label in files], mean=source.mean, std=source.std,
                           size=source.size)


def build_feed(cfg: TrainConfig, device: torch.device, *, with_originals: bool) -> MemoryFeed | StreamFeed:
    if cfg.loader == "stream":
        return StreamFeed(cfg, device, with_originals)
    return MemoryFeed(cfg, device)
