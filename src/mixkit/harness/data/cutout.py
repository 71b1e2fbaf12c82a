"""Cutout (DeVries & Taylor): one zeroed square per image, or one zeroed run per signal.

:class:`Cutout` works per sample with torch's global RNG (the streaming path, seeded per sample like the
torchvision v2 transforms); :func:`cutout_batch` works on a batch with an explicit generator (the in-memory
path).  Both draw the centre uniformly and clip the square at the borders.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .args import check_size

__all__ = ["Cutout", "cutout_batch"]


def _cutout_bounds(centre: Tensor, size: int, extent: int) -> tuple[Tensor, Tensor]:
    """Start (inclusive) and stop (exclusive) of a ``size``-long run centred on ``centre``, clipped to
    ``[0, extent)``."""
    start = centre - size // 2
    return start.clamp(0, extent), (start + size).clamp(0, extent)


class Cutout:
    """Zero one ``size`` x ``size`` square of a ``(C, H, W)`` image, in every channel.

    The square's centre is drawn uniformly over the image's pixels and the square is clipped at the
    borders (DeVries & Taylor's Cutout; the square spans rows ``cy - size // 2`` to
    ``cy - size // 2 + size - 1``, so an odd ``size`` gives a full ``size``-wide square).  A ``(C, L)``
    signal gets one zeroed run of ``size`` samples instead.  The centre comes from torch's global RNG
    (``torch.randint``), so the transform is seeded like the torchvision v2 transforms.  The input is not
    modified; a new tensor is returned.
    """

    def __init__(self, size: int):
        self.size = check_size("cutout", size, 1)

    def __repr__(self) -> str:
        return f"Cutout(size={self.size})"

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 3):
            raise ValueError(
                f"cutout: expected a (C, H, W) image or a (C, L) signal, got shape {tuple(x.shape)}"
            )
        out = x.clone()
        if x.ndim == 3:
            h, w = x.shape[-2:]
            cy = torch.randint(0, h, (1,))
            cx = torch.randint(0, w, (1,))
            y0, y1 = _cutout_bounds(cy, self.size, h)
            x0, x1 = _cutout_bounds(cx, self.size, w)
            out[:, int(y0):int(y1), int(x0):int(x1)] = 0
        else:
            n = x.shape[-1]
            c = torch.randint(0, n, (1,))
            s0, s1 = _cutout_bounds(c, self.size, n)
            out[:, int(s0):int(s1)] = 0
        return out


def cutout_batch(x: Tensor, size: int, generator: torch.Generator | None) -> Tensor:
    """Zero one clipped ``size`` x ``size`` square per sample of a ``(B, C, H, W)`` batch (one run of
    ``size`` samples per sample of a ``(B, C, L)`` batch), as :class:`Cutout` does, without a Python loop.

    The centres are drawn from ``generator`` (which must live on ``x``'s device; ``None``: the device's
    default generator): all ``B`` row centres first, then all ``B`` column centres (signals: the ``B``
    centres).  ``size = 0`` returns ``x`` itself; otherwise a new tensor is returned and ``x`` is untouched.
    """
    size = check_size("cutout", size, 0)
    if size == 0:
        return x
    if x.ndim not in (3, 4):
        raise ValueError(f"x: expected a (B, C, H, W) or (B, C, L) batch, got shape {tuple(x.shape)}")
    b, dev = x.shape[0], x.device
    if x.ndim == 4:
        h, w = x.shape[-2:]
        cy = torch.randint(0, h, (b,), generator=generator, device=dev)
        cx = torch.randint(0, w, (b,), generator=generator, device=dev)
        y0, y1 = _cutout_bounds(cy, size, h)
        x0, x1 = _cutout_bounds(cx, size, w)
        rows = torch.arange(h, device=dev)[None, :]
        cols = torch.arange(w, device=dev)[None, :]
        in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])      # (B, H)
        in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])      # (B, W)
        mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (B, 1, H, W)
    else:
        n = x.shape[-1]
        c = torch.randint(0, n, (b,), generator=generator, device=dev)
        s0, s1 = _cutout_bounds(c, size, n)
        pos = torch.arange(n, device=dev)[None, :]
        mask = ((pos >= s0[:, None]) & (pos < s1[:, None]))[:, None]  # (B, 1, L)
    return x.masked_fill(mask, 0)
