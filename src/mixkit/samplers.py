"""Class-balanced batch samplers, for SynerMix's intra-class mixing.

SynerMix (Xu et al. 2024, arXiv 2403.14137) mixes the features of the samples of each class in a
batch; a class seen once in a batch can only be "mixed" with itself. Its official sampler
therefore adds one more sample of every class that appears exactly once in a batch (absent
classes stay absent; the last partial batch is dropped). ``BalancedBatchSampler`` does this,
for any ``min_per_class``, and also offers the ``classes_per_batch x per_class`` ("P x K")
batches of metric learning. It is distributed-aware: with ``rank`` and ``world_size`` every
process draws its own share of the same epoch's batches. Randomness comes only from a
``torch.Generator`` seeded with ``seed + epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Sampler

from .reprs import init_repr

__all__ = ["BalancedBatchSampler"]


def _int_arg(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


def _labels_tensor(labels) -> Tensor:
    try:
        t = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"labels: expected a 1-D sequence of integer class ids, got {type(labels).__name__}"
                         ) from err
    if t.ndim != 1 or t.numel() == 0 or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"labels: expected a non-empty 1-D sequence of integer class ids, got {t.dtype} "
                         f"of shape {tuple(t.shape)}")
    if int(t.min()) < 0:
        raise ValueError(f"labels: expected class ids >= 0, got {int(t.min())}")
    return t.long().cpu()


class BalancedBatchSampler(Sampler[list[int]]):
    """Batches of indices in which no class appears fewer than ``min_per_class`` times (or not at all).

    Default mode (SynerMix's official sampler for ``min_per_class=2``): the dataset is shuffled
    and cut into batches of ``batch_size``; for every class that appears in a batch 1 to
    ``min_per_class - 1`` times, more samples of that class are appended until it appears
    ``min_per_class`` times. Batches are therefore a little larger than ``batch_size``: the
    first ``batch_size`` indices of a batch are its share of the epoch's permutation, the
    appended ones are drawn from a per-class shuffled order, cycling through the class. Every
    class must have at least ``min_per_class`` samples. ``min_per_class=1`` gives plain shuffled
    batches. ``drop_last=False`` keeps the last partial batch (topped up the same way).

    ``classes_per_batch x per_class`` mode (give either; the other is ``batch_size`` divided by
    it): every batch holds ``classes_per_batch`` distinct classes drawn uniformly (classes with
    fewer than ``per_class`` samples are never drawn), ``per_class`` distinct samples each, taken
    through a shuffled order of the class that is reshuffled when used up; an epoch has
    ``len(labels) // batch_size`` batches. ``min_per_class`` is not used there. Rare classes
    repeat within an epoch: this mode balances classes, not samples.

    Distributed: with ``world_size > 1`` every rank computes the same epoch and yields batches
    ``rank, rank + world_size, ...`` of it; every rank gets the same number of batches. In the
    default mode the permutation parts of the ranks' batches are disjoint and, with
    ``drop_last=False``, cover the whole dataset (the permutation is padded by wrapping around,
    as ``DistributedSampler`` does, so that all batches are full). The appended top-ups are not:
    they are drawn from each class's samples wherever those fall, so a sample may be a top-up on
    one rank and in another rank's permutation part (or a top-up on two ranks) in the same epoch.
    ``DistributedSampler``'s disjoint shards hold for the permutation parts only; across ranks
    an epoch repeats at most as many samples as it tops up. Call ``set_epoch(epoch)`` at the
    start of every epoch, as with ``DistributedSampler``: without it every epoch repeats the same
    order.

    Example:

    ```python
    >>> import torch
    >>> from mixkit import BalancedBatchSampler
    >>> labels = torch.randint(0, 10, (1000,))
    >>> sampler = BalancedBatchSampler(labels, batch_size=32, min_per_class=2, seed=0)
    >>> sampler.set_epoch(0)
    >>> batch = next(iter(sampler))
    >>> int(torch.bincount(labels[batch]).eq(1).sum())   # no singleton class
    0
    >>> # loader = DataLoader(dataset, batch_sampler=sampler)

    ```
    """

    def __init__(self, labels: Sequence[int] | Tensor, batch_size: int, *, min_per_class: int = 2,
                 drop_last: bool = True, seed: int = 0, classes_per_batch: int | None = None,
                 per_class: int | None = None, rank: int = 0, world_size: int = 1):
        self.labels = _labels_tensor(labels)
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        self.min_per_class = _int_arg("min_per_class", min_per_class, 1)
        if self.min_per_class > self.batch_size:
            raise ValueError(f"min_per_class: expected at most batch_size={batch_size}, got {min_per_class}")
        self.drop_last = bool(drop_last)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed: expected an integer, got {seed!r}")
        self.seed = seed
        self.world_size = _int_arg("world_size", world_size, 1)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank: expected an integer in [0, {world_size - 1}], got {rank!r}")
        self.rank = rank
        self.epoch = 0
        n = self.labels.numel()
        counts = torch.bincount(self.labels)
        self.num_classes = counts.numel()

        if classes_per_batch is None and per_class is None:
            self.mode = "balanced"
            rare = ((counts > 0) & (counts < self.min_per_class)).nonzero().flatten()
            if rare.numel():
                c = int(rare[0])
                raise ValueError(f"labels: expected at least min_per_class={self.min_per_class} samples of "
                                 f"every class, got {int(counts[c])} of class {c}")
            self.classes_per_batch = self.per_class = None
        else:
            self.mode = "pk"
            if classes_per_batch is None:
                per_class = _int_arg("per_class", per_class, 1)
                if batch_size % per_class:
                    raise ValueError(f"per_class: expected a divisor of batch_size={batch_size}, "
                                     f"got {per_class}")
                classes_per_batch = batch_size // per_class
            elif per_class is None:
                classes_per_batch = _int_arg("classes_per_batch", classes_per_batch, 1)
                if batch_size % classes_per_batch:
                    raise ValueError(f"classes_per_batch: expected a divisor of batch_size={batch_size}, "
                                     f"got {classes_per_batch}")
                per_class = batch_size // classes_per_batch
            else:
                _int_arg("classes_per_batch", classes_per_batch, 1)
                _int_arg("per_class", per_class, 1)
                if classes_per_batch * per_class != batch_size:
                    raise ValueError(f"classes_per_batch x per_class: expected batch_size={batch_size}, got "
                                     f"{classes_per_batch} x {per_class} = {classes_per_batch * per_class}")
            self.classes_per_batch, self.per_class = classes_per_batch, per_class
            self._eligible = (counts >= per_class).nonzero().flatten()
            if self._eligible.numel() < classes_per_batch:
                raise ValueError(f"classes_per_batch: expected at most the {self._eligible.numel()} classes "
                                 f"with >= per_class={per_class} samples, got {classes_per_batch}")
        if len(self) == 0:
            raise ValueError(f"batch_size: expected at least one batch per rank from {n} samples, got "
                             f"batch_size={batch_size} with world_size={world_size}")

    # -- the Sampler interface ---------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (generator seeded with ``seed + epoch``) from now on."""
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ValueError(f"epoch: expected an integer, got {epoch!r}")
        self.epoch = epoch

    def _total_batches(self) -> int:
        """Batches of the whole epoch, all ranks together (a multiple of world_size)."""
        n, bs, ws = self.labels.numel(), self.batch_size, self.world_size
        if self.mode == "pk" or self.drop_last:
            return (n // bs) // ws * ws
        if ws == 1:
            return math.ceil(n / bs)
        return math.ceil(n / (bs * ws)) * ws

    def __len__(self) -> int:
        return self._total_batches() // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        yield from batches[self.rank :: self.world_size]

    # -- building an epoch -------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch``, every rank's together (rank r takes ``[r::world_size]``)."""
        g = torch.Generator().manual_seed(self.seed + epoch)
        if self.mode == "pk":
            return self._pk_batches(g)
        return self._balanced_batches(g)

    def _balanced_batches(self, g: torch.Generator) -> list[list[int]]:
        n, bs = self.labels.numel(), self.batch_size
        total = self._total_batches()
        perm = torch.randperm(n, generator=g)
        need = total * bs
        if need > n and self.world_size > 1:  # pad by wrapping around: every rank's batches full
            perm = perm.repeat(math.ceil(need / n))[:need]
        else:
            perm = perm[:need]
        flat = perm
        batch_id = torch.arange(flat.numel()) // bs
        base = [chunk.tolist() for chunk in flat.split(bs)]
        m = self.min_per_class
        if m == 1:
            return base
        # Per-class shuffled pools for the top-ups: one permutation, grouped by class (stable).
        pool_perm = torch.randperm(n, generator=g)
        pool_order = pool_perm[torch.argsort(self.labels[pool_perm], stable=True)].tolist()
        class_counts = torch.bincount(self.labels, minlength=self.num_classes)
        class_start = (torch.cumsum(class_counts, 0) - class_counts).tolist()
        class_counts = class_counts.tolist()
        cursor = [0] * self.num_classes
        # (batch, class) pairs with 1 <= count < m, found by sorting keys batch * C + class.
        c = self.num_classes
        keys = batch_id * c + self.labels[flat]
        sorted_keys, order = torch.sort(keys, stable=True)
        uniq, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
        short = counts < m
        starts = (torch.cumsum(counts, 0) - counts)[short].tolist()
        sorted_members = flat[order].tolist()
        for key, cnt, start in zip(uniq[short].tolist(), counts[short].tolist(), starts, strict=True):
            b, cls = divmod(key, c)
            members = sorted_members[start : start + cnt]
            lo, size = class_start[cls], class_counts[cls]
            cur = cursor[cls]
            extra: list[int] = []
            while len(extra) < m - cnt:  # at most `size` steps: size >= m > cnt
                cand = pool_order[lo + cur]
                cur = (cur + 1) % size
                if cand not in members:
                    extra.append(cand)
            cursor[cls] = cur
            base[b].extend(extra)
        return base

    def _pk_batches(self, g: torch.Generator) -> list[list[int]]:
        p, k = self.classes_per_batch, self.per_class
        total = self._total_batches()
        # Drawn for the single-process epoch, then cut: rank r's batches are that epoch's [r::ws].
        drawn = self.labels.numel() // self.batch_size
        eligible = self._eligible
        e = eligible.numel()
        chosen_rows = []
        for s in range(0, drawn, 1024):  # chunks keep the (batches, classes) scores small
            rows = min(1024, drawn - s)
            scores = torch.rand(rows, e, generator=g)
            chosen_rows.append(eligible[scores.topk(p, dim=1).indices])
        chosen = torch.cat(chosen_rows)[:total].tolist() if chosen_rows else []
        by_class = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=self.num_classes)
        starts = (torch.cumsum(counts, 0) - counts).tolist()
        counts = counts.tolist()
        pools: dict[int, list[int]] = {}
        cursor: dict[int, int] = {}
        batches = []
        for classes in chosen:
            batch: list[int] = []
            for cls in classes:
                pool, cur = pools.get(cls), cursor.get(cls, 0)
                if pool is None or cur + k > len(pool):
                    idx = by_class[starts[cls] : starts[cls] + counts[cls]]
                    pool = idx[torch.randperm(counts[cls], generator=g)].tolist()
                    pools[cls], cur = pool, 0
                batch.extend(pool[cur : cur + k])
                cursor[cls] = cur + k
            batches.append(batch)
        return batches

    def __repr__(self) -> str:
        return init_repr(self)
