"""Many processes: set-up from torchrun's environment, gradient averaging, reductions.

``torchrun --nproc_per_node=N -m mixkit train ...`` starts N processes with RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; ``setup`` joins the group (gloo on CPU, nccl on GPU).
Gradients are averaged with one all-reduce of a flat buffer after each backward, instead of
wrapping the model in DistributedDataParallel: the hidden-layer methods run forward hooks, two
forwards per step (SynerMix) and direct calls of the head, which this keeps simple and exact.
Batch-norm statistics stay per process, as with DDP without SyncBatchNorm.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as tdist

__all__ = ["DistInfo", "setup", "teardown", "average_gradients", "all_reduce_sum", "broadcast_model",
           "gather_objects"]


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


def average_gradients(model: torch.nn.Module, info: DistInfo) -> None:
    if not info.enabled:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def all_reduce_sum(t: torch.Tensor, info: DistInfo, device: torch.device) -> torch.Tensor:
    """Sum ``t`` over ranks (moved to ``device`` for the collective, returned on the CPU)."""
    if not info.enabled:
        return t
    work = t.to(device)
    tdist.all_reduce(work)
    return work.cpu()


def broadcast_model(model: torch.nn.Module, info: DistInfo) -> None:
    if not info.enabled:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        tdist.broadcast(t.data, src=0)


def gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    tdist.all_gather_object(out, obj)
    return out
