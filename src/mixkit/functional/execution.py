"""Where a computation runs, decided once for the whole functional package.

Paths that read tensor values on the host (exact error messages, row loops over a permutation,
box slicing, batch-level draws on Python numbers) are taken only where that is free: CPU tensors
in eager mode. On an accelerator, and while ``torch.compile`` traces, the same results come from
tensor operations alone, so no call waits for the device and every graph is whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["host_readable", "on_host", "records_grad", "host_cached", "finite_on_host"]


def on_host(device: torch.device | str) -> bool:
    """True for the CPU outside torch.compile: values there can be read without a sync."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    return kind == "cpu" and not torch.compiler.is_compiling()


def host_readable(t: Tensor) -> bool:
    """True when reading ``t``'s values on the host is free (``on_host`` of its device)."""
    return on_host(t.device)


def finite_on_host(t: Tensor) -> bool:
    """True when ``t`` is readable on the host and holds only finite values (one reduction, read
    back: its sum is finite; half-precision values are summed in float32 so that ordinary images
    do not overflow; a sum of finite values that overflows says False, which only costs the exact
    path). False on an accelerator, where nothing is read back. The blends use it to keep their
    fast arithmetic on the CPU and take exact selects where a non-finite value could spread
    (``torch.where`` is fast on accelerators and several times slower than ``lerp`` on the CPU)."""
    if not host_readable(t):
        return False
    if not t.is_floating_point():
        return True
    total = t.sum(dtype=torch.float32) if t.element_size() < 4 else t.sum()
    return math.isfinite(total.item())


def records_grad(t: Tensor) -> bool:
    """True when autograd records operations on ``t`` (no ``out=`` paths then)."""
    return t.requires_grad and torch.is_grad_enabled()


def host_cached(fn: Callable, *key):
    """``fn(*key)`` from its ``functools.lru_cache`` in eager mode; under torch.compile the
    undecorated body is traced instead (dynamo does not honour the cache)."""
    return fn.__wrapped__(*key) if torch.compiler.is_compiling() else fn(*key)
