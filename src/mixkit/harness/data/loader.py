"""Keys and the loader of the streaming path: per-sample seeds as a fixed hash of ``(seed, epoch, index)``
(:func:`sample_seeds`, :func:`batch_keys`) and the ``DataLoader`` that yields exactly the harness' key
batches (:func:`make_loader`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from .args import check_size, is_int

if TYPE_CHECKING:
    from .stream import StreamSet

__all__ = ["FixedBatches", "batch_keys", "make_loader", "sample_seeds"]

_MASK64 = (1 << 64) - 1


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sample_seeds(indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Per-sample seeds (uint64 values below 2**63), a fixed hash of ``(seed, epoch, index)`` that does not
    depend on the process, the platform or Python's hash randomisation."""
    for name, value in (("seed", seed), ("epoch", epoch)):
        if not is_int(value) or not 0 <= value <= _MASK64:
            raise ValueError(f"{name}: expected an integer in [0, 2**64), got {value!r}")
    idx = np.asarray(indices)
    if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0):
        raise ValueError("indices: expected non-negative integers")
    h = _splitmix64(np.full(idx.shape, int(seed), dtype=np.uint64) ^ np.uint64(0x6D69786B6974))  # "mixkit"
    h = _splitmix64(h ^ np.uint64(int(epoch)))
    h = _splitmix64(h ^ idx.astype(np.uint64))
    return h >> np.uint64(1)


def batch_keys(batches: Sequence[Tensor], seed: int, epoch: int) -> list[list[tuple[int, int]]]:
    """Index batches (1-D integer tensors) as key batches for :class:`StreamSet`: ``(index, sample_seed)``
    with the sample seed a pure function of ``(seed, epoch, index)`` (:func:`sample_seeds`)."""
    out = []
    for batch in batches:
        idx = torch.as_tensor(batch).detach().cpu().reshape(-1).to(torch.int64).numpy()
        seeds = sample_seeds(idx, seed, epoch)
        out.append([(int(i), int(s)) for i, s in zip(idx.tolist(), seeds.tolist(), strict=True)])
    return out


class FixedBatches(Sampler):
    """A batch sampler yielding a fixed list of key batches, in order."""

    def __init__(self, batches: Sequence[Sequence[tuple[int, int]]]):
        self.batches = [list(b) for b in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)


# How long to wait for one queue's feeder thread to end once its queue is closed. A feeder only
# outlives this while blocked writing into a pipe no worker reads any more, which holds no lock
# a later fork could inherit.
_FEEDER_JOIN_S = 10.0


def _end_iterator(it) -> None:
    """Shut a DataLoader iterator's workers down and wait until the feeder threads of its queues have
    ended.

    torch closes those queues without joining their threads, so a thread may still be ending when
    the next loader forks its workers; on CPython before 3.12 a fork at that moment can hand the
    worker a locked interpreter mutex, and the worker then hangs in ``os.fork`` for ever (CPython
    gh-112275; seen here as a rank of a ``torchrun`` job waiting on its test loader's worker while
    the other rank waited in a collective)."""
    if not hasattr(it, "_index_queues"):                 # no workers: nothing was forked
        return
    it._shutdown_workers()
    queues = [*it._index_queues]
    if hasattr(it, "_pin_memory_thread"):                # its shutdown put into the result queue
        queues.append(it._worker_result_queue)
    for q in queues:
        thread = q._thread
        if thread is not None:
            thread.join(_FEEDER_JOIN_S)


class _Loader(DataLoader):
    """A DataLoader whose every iteration, run to its end or left early, ends its workers and their
    queues' feeder threads before it returns (``_end_iterator``)."""

    def __iter__(self):
        it = super().__iter__()
        try:
            yield from it
        finally:
            _end_iterator(it)


def make_loader(dataset: StreamSet, batches: Sequence[Sequence[tuple[int, int]]], *, workers: int,
                pin_memory: bool, prefetch_factor: int = 2, mp_context=None) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` yielding exactly ``batches`` (lists of ``(index, seed)`` keys), in
    order, collated by ``default_collate`` (labels become int64 tensors).

    ``workers`` worker processes (0: load in this process), each limited to one torch thread; workers are
    not persistent (build one loader per epoch).  ``prefetch_factor`` applies only with workers.
    ``mp_context`` (a multiprocessing context or its name, e.g. ``"spawn"``) defaults to torch's default.
    An iteration ends with every worker and helper thread it started ended (see ``_end_iterator``), so
    the next loader's workers are forked from a quiet process.
    """
    workers = check_size("workers", workers, 0)
    prefetch_factor = check_size("prefetch_factor", prefetch_factor, 1)
    return _Loader(
        dataset,
        batch_sampler=FixedBatches(batches),
        num_workers=workers,
        pin_memory=bool(pin_memory),
        prefetch_factor=prefetch_factor if workers > 0 else None,
        persistent_workers=False,
        worker_init_fn=_worker_init if workers > 0 else None,
        multiprocessing_context=mp_context if workers > 0 else None,
    )
