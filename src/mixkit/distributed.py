"""Mixing across ranks under ``DistributedDataParallel``: partners drawn from the global batch.

Every other library mixes each rank's batch on its own, so a sample's partner is one of the B
samples on its rank. ``CrossRank(mixer)`` makes the partners come from the *global* batch, the
concatenation of all ranks' batches in rank order, as if one process mixed the whole batch:

```python
import torch, torch.distributed as dist, mixkit
from mixkit.distributed import CrossRank

dist.init_process_group("nccl")                          # or "gloo"; before the first call
mixer = CrossRank(mixkit.MixUp(alpha=1.0, num_classes=10))
g = torch.Generator().manual_seed(0)                     # the same seed on every rank
images, soft = mixer(images, labels, generator=g)        # this rank's B rows, mixed globally

# in the model: partners of hidden features come from every rank, gradients go back to them
mm = mixkit.ManifoldMixup(ddp_model, ["", "layer1", "layer2"],
                          mixer=CrossRank(mixkit.MixUp(alpha=2.0, num_classes=10)))
loss = mm.loss(images, labels, generator=g)
```

The inputs are gathered with an autograd-aware all-gather whose backward sums the gradients of
every rank's loss and hands each rank those of its own rows, so gradients through hidden layers
reach the rank that owns each row. Only ``torch`` is needed.
"""

from __future__ import annotations

import math
import sys
import weakref
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .base import Targets
from .inputs import tv_kind, unpack_call
from .reprs import init_repr

__all__ = ["CrossRank"]

# How a tensor is described to the other ranks before it is gathered (one small int64 collective).
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8,
           torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128)
_DIMS = 8  # dims sent one by one; the product of any further dims is sent as one number
_WIDTH = 5 + _DIMS + 1  # numbers per tensor (_Slot)


class _Slot(NamedTuple):
    """One tensor as the other ranks see it: ``_WIDTH`` int64 numbers on the wire."""

    present: int
    dtype: int          # 1 + index in _DTYPES (len(_DTYPES) + 1: another dtype)
    differentiable: int
    cached: int         # sample() gathered this very tensor already
    ndim: int
    dims: tuple         # the first _DIMS sizes, -1 past ndim
    rest: int           # the product of the sizes past _DIMS, -1 when there are none

    @classmethod
    def of(cls, t, differentiable: bool, cached: bool) -> _Slot:
        if not isinstance(t, Tensor):
            return cls(0, 0, 0, 0, 0, (0,) * _DIMS, 0)
        shape = list(t.shape)
        head = tuple(shape[:_DIMS] + [-1] * (_DIMS - min(len(shape), _DIMS)))
        rest = math.prod(shape[_DIMS:]) if len(shape) > _DIMS else -1
        code = _DTYPES.index(t.dtype) + 1 if t.dtype in _DTYPES else len(_DTYPES) + 1
        return cls(1, code, int(differentiable), int(cached), len(shape), head, rest)

    def encode(self) -> list[int]:
        return [self.present, self.dtype, self.differentiable, self.cached, self.ndim, *self.dims, self.rest]

    @classmethod
    def decode(cls, row: list[int]) -> _Slot:
        return cls(*row[:5], tuple(row[5:5 + _DIMS]), row[5 + _DIMS])

    def layout(self) -> tuple:
        """What all_gather needs equal on every rank: presence, dtype and shape."""
        return (self.present, self.dtype, self.ndim, self.dims, self.rest)

    def shown(self) -> str:
        if not self.present:
            return "none"
        dtype = str(_DTYPES[self.dtype - 1]).replace("torch.", "") if self.dtype <= len(_DTYPES) \
            else "another dtype"
        dims = [str(d) for d in self.dims[:min(self.ndim, _DIMS)]]
        if self.ndim > _DIMS:
            dims.append(f"... ({self.ndim - _DIMS} more, {self.rest} elements)")
        trailing = "," if self.ndim == 1 else ""
        return f"{dtype} ({', '.join(dims)}{trailing})"


class _GatherRows(torch.autograd.Function):
    """All ranks' tensors concatenated along dim 0, in rank order. The backward sums the incoming
    gradients over ranks (every rank's loss may depend on every row) and keeps this rank's rows:
    a reduce-scatter where the backend has one for accelerators (NCCL), an all-reduce otherwise
    (gloo: portable across torch versions). The same semantics as the deprecated
    ``torch.distributed.nn.functional.all_gather``, without its warning on every call."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group, rank: int, world: int) -> Tensor:
        ctx.group, ctx.rank, ctx.world = group, rank, world
        return _gather_plain(tensor, group, world)

    @staticmethod
    def backward(ctx, grad: Tensor):
        group, rank, world = ctx.group, ctx.rank, ctx.world
        grad = grad.contiguous()
        rows = grad.shape[0] // world
        if str(dist.get_backend(group)) in ("nccl", "xccl"):
            out = torch.empty_like(grad[:rows])
            dist.reduce_scatter(out, list(grad.split(rows)), op=dist.ReduceOp.SUM, group=group)
        else:
            total = grad.clone()
            dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
            out = total[rank * rows:(rank + 1) * rows]
        return out, None, None, None


def _gather_plain(tensor: Tensor, group, world: int) -> Tensor:
    tensor = tensor.contiguous()
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor, group=group)
    return torch.cat(parts)


def _plain(x):
    """A torchvision tensor as a plain tensor (the collectives want plain ones)."""
    return x.as_subclass(Tensor) if isinstance(x, Tensor) and tv_kind(x) is not None else x


def _like(out: Tensor, like):
    """``out`` (plain) with the torchvision type of ``like``, when it has one."""
    if tv_kind(like) is None:
        return out
    return sys.modules["torchvision.tv_tensors"].wrap(out, like=like)


def _rows(x, lo: int, hi: int, like=None):
    """Rows ``[lo, hi)`` of a result of the wrapped mixer, copied (so that the global batch is not
    kept alive by this rank's share), in ``like``'s memory format and ``x``'s torchvision type."""
    if x is None:
        return None
    plain = _plain(x)[lo:hi]
    fmt = torch.contiguous_format
    if like is not None and not like.is_contiguous():
        for candidate, ndim in ((torch.channels_last, 4), (torch.channels_last_3d, 5)):
            if like.ndim == ndim and like.is_contiguous(memory_format=candidate):
                fmt = candidate
    return _like(plain.clone(memory_format=fmt), x)


def _ranks(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


class CrossRank(Targets):
    """Any mixkit mixer or combination, with partners drawn from the global batch of all ranks.

    Under data parallelism each rank holds B samples and every peer library mixes within them.
    ``CrossRank(mixer)`` gathers the inputs (and the target rows, and the dense ``masks=`` when
    given) of all ranks into the global batch of ``world_size * B`` rows, in rank order, draws
    the parameters with ``mixer.sample`` on that global batch, mixes it with
    ``mixer.apply_soft``, and returns this rank's rows ``rank * B:(rank + 1) * B`` of the mixed
    inputs, soft rows and masks. The all-gather of the inputs is autograd-aware: its backward
    sums the gradients of all ranks' losses and gives each rank those of its own rows, so mixing
    hidden features (``ManifoldMixup(model, layers, mixer=CrossRank(MixUp(...)))``) trains every
    rank's rows through every rank's loss. The calls are the mixer's: ``cr(images, labels)``,
    packed batches, ``masks=``, ``sample`` then ``apply`` (``sample`` returns the global
    parameters, ``apply`` gathers again and replays them). ``num_classes``, ``label_smoothing``
    and ``multilabel`` are the wrapped mixer's. With a world of one it is the wrapped mixer,
    call for call.

    Randomness: every rank runs ``mixer.sample`` on the same global batch with its own
    ``generator``. Generators seeded the same on every rank (or torch's default generator,
    seeded the same with ``torch.manual_seed``) give one global draw, and each rank's rows are
    exactly the rows that one process mixing the concatenated batch with that seed returns.
    Different seeds give each rank its own draw of the global parameters, valid for its rows (a
    partner anywhere in the global batch), but the draws no longer form one global pairing (a
    sample may be picked as a partner by several ranks, or by none). ``ManifoldMixup`` draws its
    layer from the same generator, and needs the same seed on every rank: ranks that mix
    different layers gather different tensors, stopped by the shape check below when the shapes
    differ.

    Costs: the global batch is materialised on every rank (``world_size`` times the memory of
    the inputs at the mixing point, during the call; the rows returned are copies and do not
    hold it, though autograd keeps what the mixing ops save for their backward), and
    ``mixer.sample`` and the mixing run on the global batch on every rank (``world_size`` times
    the work of mixing locally). Before gathering, each call sends one small int64 tensor per
    rank (shapes, dtypes, whether gradients are needed) and reads it on the host: one small
    collective, and a device sync on accelerators, unlike the other mixers.
    ``forward`` gathers once; ``sample`` followed by ``apply``/``apply_soft`` on the same tensor
    (ManifoldMixup's order) reuses the tensor ``sample`` gathered, when every rank can; other
    sequences gather again.

    Errors, on every rank at once instead of a hang: plain ``all_gather`` with ranks of
    different batch sizes, shapes or dtypes does not fail cleanly (with gloo the rank with the
    smaller tensor is aborted by gloo's size check, ``SIGABRT``, while the larger one receives
    uninitialised memory; equal element counts in different shapes are reinterpreted silently),
    so the small tensor above is compared first, and a mismatch raises a ``ValueError`` naming
    each rank's shape. An error on one rank before the gather (a bad label) is raised there and
    a ``RuntimeError`` naming that rank on the others. A call without an initialised process
    group raises; the mixer may be created before ``init_process_group``. Mixers with
    ``inplace=True`` are refused: the gathered copy is what gets mixed.

    ``group``: the process group to mix over (default: the default group, looked up at each
    call); the global batch is that group's ranks in group-rank order.

    Example (created anywhere; called in each process of a job, after ``init_process_group``):

    ```python
    >>> import torch, mixkit
    >>> from mixkit.distributed import CrossRank
    >>> cr = CrossRank(mixkit.CutMix(alpha=1.0, num_classes=10, mode="elem"))
    >>> cr, cr.num_classes
    (CrossRank(CutMix(num_classes=10, mode='elem')), 10)
    >>> g = torch.Generator().manual_seed(0)              # the same seed on every rank
    >>> images, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> mixed, soft = cr(images, labels, generator=g)     # doctest: +SKIP
    >>> mixed.shape, soft.shape                           # doctest: +SKIP
    (torch.Size([8, 3, 32, 32]), torch.Size([8, 10]))

    ```

    """

    def __init__(self, mixer, *, group=None):
        super().__init__()
        if isinstance(mixer, CrossRank):
            raise TypeError("mixer: expected a mixkit mixer or combination to mix across ranks, got a "
                            "CrossRank (its partners are drawn across ranks already)")
        if not isinstance(mixer, Targets):
            raise TypeError(f"mixer: expected a mixkit mixer or combination ({_accepted()}), "
                            f"got {type(mixer).__name__}")
        writes = [type(m).__name__ for m in mixer.modules() if getattr(m, "inplace", False) is True]
        if writes:
            raise ValueError(f"mixer: expected inplace=False (CrossRank mixes a gathered copy of the global "
                             f"batch, so the inputs cannot be written in place), got inplace=True on "
                             f"{', '.join(writes)}")
        if group is not None and not (dist.is_available() and isinstance(group, dist.ProcessGroup)):
            raise TypeError(f"group: expected None (the default process group) or a "
                            f"torch.distributed.ProcessGroup, got {type(group).__name__}")
        self.mixer = mixer
        self.group = group
        self._gathered: dict | None = None  # what sample() gathered, for the apply that follows

    # The target options are the wrapped mixer's.
    @property
    def num_classes(self) -> int | None:
        return self.mixer.num_classes

    @property
    def label_smoothing(self) -> float:
        return self.mixer.label_smoothing

    @property
    def multilabel(self) -> bool:
        return self.mixer.multilabel

    def __repr__(self) -> str:
        return init_repr(self, mixer=repr(self.mixer))

    def __getstate__(self):
        state = super().__getstate__()
        state["_gathered"] = None  # weak references and autograd graphs do not copy
        return state

    # -- the contract ------------------------------------------------------------------------
    def forward(self, *batch, generator: torch.Generator | None = None, masks=None, labels_getter="default"):
        """As a mixer's call (``(images, labels, *rest)``, packed, or a dict), mixed over the global
        batch; the inputs, target rows and masks are gathered once."""
        group, rank, world = self._where()
        if world == 1:
            return self.mixer(*batch, generator=generator, masks=masks, labels_getter=labels_getter)
        self._gathered = None
        failure = images = soft = None
        pack = None
        try:
            images, labels, pack = unpack_call(batch, type(self).__name__, labels_getter)
            soft = self.targets(images, labels)
        except Exception as err:  # raised below, after every rank has said whether it failed
            failure = err
        out = self._mix(group, rank, world, failure, images, soft, masks, None, generator)
        return pack(*out)

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None, *, masks=None):
        """The wrapped mixer's parameters for the global batch (all ranks' ``inputs``, and
        ``masks`` when given, gathered in rank order): ``world_size * B`` rows."""
        group, rank, world = self._where()
        extra = {"masks": masks} if masks is not None else {}
        if world == 1:
            return self.mixer.sample(inputs, generator=generator, **extra)
        self._gathered = None
        failure = None
        try:
            _check_tensor(inputs, "inputs")
        except Exception as err:
            failure = err
        global_inputs, _, global_masks = self._gather(group, rank, world, failure, inputs, None, masks)
        params = self.mixer.sample(global_inputs, generator=generator,
                                   **({"masks": global_masks} if global_masks is not None else {}))
        self._gathered = {name: (weakref.ref(local), local._version, _differentiable(local), found)
                          for name, local, found in (("inputs", inputs, global_inputs),
                                                     ("masks", masks, global_masks)) if local is not None}
        return params

    def apply(self, inputs, labels=None, params=None, *, masks=None):
        """Mix this rank's ``inputs`` and ``labels`` (and ``masks``) as rows of the global batch
        with the global ``params`` from ``sample``; returns this rank's rows, as the mixer does.
        Called with a single function (``model.apply(init)`` walking a tree), does that instead."""
        if labels is None and params is None and callable(inputs) and not isinstance(inputs, Tensor):
            return nn.Module.apply(self, inputs)
        group, rank, world = self._where()
        if world == 1:
            return self.mixer.apply(inputs, labels, params, masks=masks)
        failure = soft = None
        try:
            if params is None:
                raise TypeError("params: expected the parameters from CrossRank.sample(inputs), got None")
            soft = self.targets(inputs, labels)
        except Exception as err:
            failure = err
        return self._mix(group, rank, world, failure, inputs, soft, masks, params, None)

    def _apply_soft(self, inputs, soft, params, masks, check: bool):
        return self.apply_soft(inputs, soft, params, masks=masks)

    def apply_soft(self, inputs, soft: Tensor | None, params, *, masks=None):
        """``apply`` with labels already made into target rows (B, C) (or None)."""
        group, rank, world = self._where()
        if world == 1:
            return self.mixer.apply_soft(inputs, soft, params, masks=masks)
        failure = None
        try:
            _check_tensor(inputs, "inputs")
            if soft is not None and not (isinstance(soft, Tensor) and soft.ndim == 2):
                got = f"shape {tuple(soft.shape)}" if isinstance(soft, Tensor) else type(soft).__name__
                raise ValueError(f"soft: expected target rows ({inputs.shape[0]}, C), got {got}")
        except Exception as err:
            failure = err
        return self._mix(group, rank, world, failure, inputs, soft, masks, params, None)

    # -- the work ----------------------------------------------------------------------------
    def _where(self):
        """``(group, rank in it, its size)``, or the error saying why there is none."""
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("CrossRank: expected an initialised torch.distributed process group (call "
                               "torch.distributed.init_process_group first), got none")
        group = self.group if self.group is not None else dist.group.WORLD
        rank = dist.get_rank(group)
        if rank < 0:
            raise RuntimeError(f"group: expected a process group this process belongs to, got one without "
                               f"it (global rank {dist.get_rank()})")
        return group, rank, dist.get_world_size(group)

    def _mix(self, group, rank, world, failure, inputs, soft, masks, params, generator):
        """Gather, draw (when ``params`` is None), mix the global batch, return this rank's rows."""
        global_inputs, global_soft, global_masks = self._gather(group, rank, world, failure,
                                                                inputs, soft, masks)
        if params is None:
            params = self.mixer.sample(global_inputs, generator=generator,
                                       **({"masks": global_masks} if global_masks is not None else {}))
        out = self.mixer.apply_soft(global_inputs, global_soft, params, masks=global_masks)
        b = inputs.shape[0]
        lo, hi = rank * b, (rank + 1) * b
        mixed, soft_out, *rest = out
        result = (_rows(mixed, lo, hi, like=_plain(inputs)), _rows(soft_out, lo, hi))
        return result + tuple(_rows(m, lo, hi) for m in rest)

    def _gather(self, group, rank, world, failure, inputs, soft, masks):
        """Check with the other ranks (one small collective), then gather each tensor given."""
        cache, self._gathered = self._gathered or {}, None
        return _exchange(group, rank, world, failure, {"inputs": inputs, "soft": soft, "masks": masks}, cache)


def _exchange(group, rank: int, world: int, failure, tensors: dict, cache: dict) -> tuple:
    """Describe ``tensors`` to every rank (one small int64 all-gather, read on the host), raise on
    any rank's failure or any disagreement, then gather each tensor (or reuse ``cache``)."""
    inputs, masks = tensors["inputs"], tensors["masks"]
    if failure is None:
        try:
            _check_tensor(inputs, "inputs")
            if masks is not None:
                _check_tensor(masks, "masks")
        except Exception as err:
            failure = err
    diff = {name: _differentiable(t) for name, t in tensors.items()}
    local = [int(failure is not None)]
    for name, t in tensors.items():
        local += _Slot.of(t, diff[name], _cached(cache.get(name), t, diff[name])).encode()
    device = _plain(inputs).device if isinstance(inputs, Tensor) else _meta_device(group)
    meta = _gather_plain(torch.tensor(local, dtype=torch.int64, device=device), group, world)
    table = meta.view(world, -1).tolist()  # the one host read

    failed = [r for r in range(world) if table[r][0]]
    if failure is not None:
        raise failure
    if failed:
        raise RuntimeError(f"CrossRank: expected every rank to reach the gather, got an error on "
                           f"{_ranks(failed)} before it (see its traceback); stopping this rank too "
                           f"rather than waiting")
    found = []
    for i, (name, t) in enumerate(tensors.items()):
        slots = [_Slot.decode(row[1 + i * _WIDTH:1 + (i + 1) * _WIDTH]) for row in table]
        _agree(name, slots)
        if t is None:
            found.append(None)
        elif all(s.cached for s in slots):
            found.append(cache[name][3])
        else:
            plain = _plain(t)
            together = (_GatherRows.apply(plain, group, rank, world) if diff[name]
                        else _gather_plain(plain, group, world))
            found.append(_like(together, t))
    return tuple(found)


def _agree(name: str, slots: list[_Slot]) -> None:
    """Raise unless every rank described ``name`` alike (what ``all_gather`` needs)."""
    def each(pick) -> str:
        return "; ".join(f"rank {r}: {pick(s)}" for r, s in enumerate(slots))

    present = [r for r, s in enumerate(slots) if s.present]
    if 0 < len(present) < len(slots):
        raise ValueError(f"CrossRank: expected {name} on every rank or on none, got them on "
                         f"{_ranks(present)} only")
    if len({s.layout() for s in slots}) > 1:
        raise ValueError(f"CrossRank: expected {name} of one shape and dtype on every rank (the global "
                         f"batch is their concatenation, and all_gather needs equal shapes), got "
                         f"{each(_Slot.shown)}")
    if len({s.differentiable for s in slots}) > 1:
        raise ValueError(f"CrossRank: expected {name} that require grad on every rank or on none (the "
                         f"backward of the gather is a collective every rank joins), got "
                         f"{each(lambda s: 'requires grad' if s.differentiable else 'no grad')}")


def _accepted() -> str:
    """The mixers and combinations CrossRank wraps, from the registry."""
    from . import registry  # the registry imports the methods, which may import this module

    names = [m.cls.__name__ for m in registry.methods("input")]
    return ", ".join(dict.fromkeys([*names, "RandomChoice"]))


def _check_tensor(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")


def _differentiable(t) -> bool:
    return isinstance(t, Tensor) and t.requires_grad and torch.is_grad_enabled()


def _cached(entry, t, differentiable: bool) -> bool:
    """Whether ``sample`` gathered this very tensor, unchanged, in the same grad mode."""
    if entry is None or not isinstance(t, Tensor):
        return False
    ref, version, was_differentiable, _ = entry
    return ref() is t and t._version == version and was_differentiable == differentiable


def _meta_device(group) -> torch.device:
    """Where the small collective runs when this rank has no input tensor to take it from."""
    if str(dist.get_backend(group)) == "nccl" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
