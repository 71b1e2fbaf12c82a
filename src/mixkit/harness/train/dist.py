"""Many processes: set-up from torchrun's environment, DistributedDataParallel, reductions.

``torchrun --nproc_per_node=N -m mixkit train ...`` starts N processes with RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; ``setup`` joins the group (gloo on CPU, nccl on GPU)
and ties the process to its launcher (a ``kill -9`` of torchrun ends every worker). Across nodes,
torchrun's rendezvous does the same (``--nnodes``, ``--rdzv-backend c10d``, ``--rdzv-endpoint``).

The model is wrapped in ``torch.nn.parallel.DistributedDataParallel`` (``wrap``): gradients are
averaged in buckets that overlap the backward pass, for every method, the hidden-layer ones
included (their layer names resolve through the wrapper, see ``mixkit.hidden``; SynerMix's two
forwards and its direct call of the head feed one backward, which DDP reduces once). DDP
broadcasts rank 0's buffers (batch-norm running statistics) before every training forward, so
rank 0's buffers are the run's state: ``sync_buffers`` copies them to every rank before an
evaluation, which makes every rank evaluate with exactly what the checkpoint holds.
``sync_bn`` converts batch norm to ``SyncBatchNorm`` (statistics over the global batch; GPUs only).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as tdist

__all__ = [
    "DistInfo", "setup", "teardown", "wrap", "sync_buffers", "all_reduce_sum", "every_rank",
    "non_finite", "gather_objects", "barrier", "end_process", "agree"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if os.environ.get("TORCHELASTIC_RUN_ID") is not None:
        from ..lifeline import die_with_parent

        die_with_parent(os.getppid())       # torchrun's agent: a worker ends with its launcher
    if not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        tdist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (before a normal exit: a rank that tears its group down while another
    still works makes gloo abort the process)."""
    if info.enabled and tdist.is_initialized():
        tdist.barrier()


def teardown(info: DistInfo, *, finished: bool = False) -> None:
    """Destroy the process group after a failure. After a finished run (every rank past the final
    barrier) the group is left for the process's exit: the ``mixkit`` command ends a distributed
    run with ``os._exit`` (``end_process``), because gloo's teardown could abort a rank with
    ``terminate called without an active exception`` while the other rank was also tearing down
    (seen on 2 shared cores under load)."""
    if info.enabled and tdist.is_initialized() and not finished:
        tdist.destroy_process_group()


def end_process(code: int) -> None:
    """In a multi-process run (``WORLD_SIZE`` > 1): flush the output and end the process at once,
    without interpreter teardown (every file of the run is already written and synced)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device, *, sync_bn: bool = False
         ) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (which broadcasts rank 0's parameters and buffers), or
    ``model`` itself in a single process. ``sync_bn`` converts its batch norm to SyncBatchNorm
    first (in place: the returned wrapper and ``model`` share the same modules)."""
    if not info.enabled:
        return model
    if sync_bn:
        if device.type != "cuda":
            raise ValueError(f"sync_bn: expected a CUDA device (torch's SyncBatchNorm runs on GPUs "
                             f"only), got device {device}")
        # Children are swapped in place (the root of mixkit's models is never a batch norm).
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (batch-norm statistics) to every rank."""
    if not info.enabled:
        return
    for t in model.buffers():
        tdist.broadcast(t.data, src=0)


def all_reduce_sum(t: torch.Tensor, info: DistInfo, device: torch.device) -> torch.Tensor:
    """Sum ``t`` over ranks (moved to ``device`` for the collective, returned on the CPU)."""
    if not info.enabled:
        return t
    work = t.to(device)
    tdist.all_reduce(work)
    return work.cpu()


def every_rank(value: torch.Tensor, info: DistInfo, device: torch.device) -> torch.Tensor:
    """The scalar ``value`` of every rank, ``(world_size,)`` float64 on the CPU and the same on
    every rank (one all-reduce): a decision every rank must take alike (stop on a non-finite
    loss) is taken on it, so that no rank waits in a collective for one that stopped."""
    if not info.enabled:
        return value.detach().double().reshape(1).cpu()
    work = torch.zeros(info.world_size, dtype=torch.float64, device=device)
    work[info.rank] = value.detach().double()
    tdist.all_reduce(work)
    return work.cpu()


def non_finite(values: torch.Tensor, info: DistInfo, what: str) -> str | None:
    """None when every rank's value (``every_rank``) is finite, else the words: ``what is nan``,
    with the ranks named when there are several."""
    bad = [(r, v) for r, v in enumerate(values.tolist()) if not math.isfinite(v)]
    if not bad:
        return None
    if not info.enabled:
        return f"{what} is {bad[0][1]}"
    return (f"{what} is " + ", ".join(f"{v} on rank {r}" for r, v in bad)
            + f" (of {info.world_size} ranks; every rank stops here)")


def gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    tdist.all_gather_object(out, obj)
    return out


def agree(settings: dict, info: DistInfo) -> None:
    """Check that every rank was started with the same ``settings`` (one all-gather, at start-up):
    ranks that differ would train different things silently, or wait for each other's collectives
    for ever (another number of epochs). Every rank raises the same ValueError naming the fields."""
    if not info.enabled:
        return
    everyone = gather_objects(settings, info)
    first = everyone[0]
    for rank, theirs in enumerate(everyone[1:], start=1):
        diff = [k for k in sorted(set(first) | set(theirs)) if first.get(k) != theirs.get(k)]
        if diff:
            shown = "; ".join(f"{k}: rank 0 has {first.get(k)!r}, rank {rank} has {theirs.get(k)!r}"
                              for k in diff[:4])
            more = " ..." if len(diff) > 4 else ""
            raise ValueError(f"ranks: expected every process to be started with the same settings, got "
                             f"{shown}{more}; start every rank with the same flags")
