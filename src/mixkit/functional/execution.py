"""Where a computation runs, decided once for the whole functional package.

Paths that read tensor values on the host (exact error messages, row loops over a permutation,
box slicing, batch-level draws on Python numbers) are taken only where that is free: CPU tensors
in eager mode. On an accelerator, and while ``torch.compile`` traces, the same results come from
tensor operations alone, so no call waits for the device and every graph is whole.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["host_readable", "on_host", "records_grad", "host_cached"]


def on_host(device: torch.device | str) -> bool:
    """True for the CPU outside torch.compile: values there can be read without a sync."""
    return torch.device(device).type == "cpu" and not torch.compiler.is_compiling()


def host_readable(t: Tensor) -> bool:
    """True when reading ``t``'s values on the host is free (``on_host`` of its device)."""
    return on_host(t.device)


def records_grad(t: Tensor) -> bool:
    """True when autograd records operations on ``t`` (no ``out=`` paths then)."""
    return t.requires_grad and torch.is_grad_enabled()


def host_cached(fn: Callable, *key):
    """``fn(*key)`` from its ``functools.lru_cache`` in eager mode; under torch.compile the
    undecorated body is traced instead (dynamo does not honour the cache)."""
    return fn.__wrapped__(*key) if torch.compiler.is_compiling() else fn(*key)
