"""Batched, seeded data augmentation for in-memory batches: random crop with zero padding and
horizontal flip (images), random shift (1-D signals).

Every draw comes from the ``generator`` passed (on the batch's device), so a training run is
reproducible from its seed and resumable from the generator's state. One call augments a whole
batch without a Python loop over samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_crop", "random_flip", "augment_batch"]


def _offsets(n: int, high: int, generator, device) -> Tensor:
    return torch.randint(0, high + 1, (n,), generator=generator, device=device)


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad the trailing spatial dims by ``padding`` and crop back at a random offset per
    sample (``x``: (B, C, H, W) or (B, C, L)). ``padding = 0`` returns ``x``."""
    if padding < 0:
        raise ValueError(f"padding: expected an integer >= 0, got {padding}")
    if padding == 0:
        return x
    b = x.shape[0]
    if x.ndim == 4:
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        dy = _offsets(b, 2 * padding, generator, x.device)
        dx = _offsets(b, 2 * padding, generator, x.device)
        rows = dy[:, None] + torch.arange(h, device=x.device)           # (B, H)
        cols = dx[:, None] + torch.arange(w, device=x.device)           # (B, W)
        bi = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]   # (B, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous()
    if x.ndim == 3:
        n = x.shape[-1]
        padded = torch.nn.functional.pad(x, (padding, padding))
        d = _offsets(b, 2 * padding, generator, x.device)
        idx = (d[:, None] + torch.arange(n, device=x.device))[:, None, :].expand(b, x.shape[1], n)
        return padded.gather(2, idx)
    raise ValueError(f"x: expected a (B, C, H, W) or (B, C, L) batch, got shape {tuple(x.shape)}")


def random_flip(x: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Flip each sample of a (B, C, H, W) batch left-right with probability ``p``."""
    if x.ndim != 4:
        raise ValueError(f"x: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment_batch(x: Tensor, kind: str, padding: int, generator: torch.Generator | None) -> Tensor:
    """``kind``: crop-flip, crop, flip or none. Signals (3-D batches) are shifted, never flipped."""
    if kind == "none":
        return x
    if kind in ("crop-flip", "crop"):
        x = random_crop(x, padding, generator)
    if kind in ("crop-flip", "flip") and x.ndim == 4:
        x = random_flip(x, generator)
    return x
