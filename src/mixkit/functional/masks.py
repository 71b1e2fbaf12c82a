"""Masks for the masking mixers: boxes (CutMix, ResizeMix, SaliencyMix), thresholded Fourier noise
(FMix), grids of holes (GridMix), Gaussians (SmoothMix) and class regions (ClassMix).

A *keep mask* ``M`` holds, per element of the trailing (spatial) shape, the weight of the sample's
own input: ``mixed = M * x + (1 - M) * x[index]``. Its mean is the realised lambda. Masks are
shaped ``(B, *spatial)`` (one per sample) or ``(1, *spatial)`` (one for the whole batch) and are
built batched on the inputs' device, with no Python loop over samples.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .execution import host_cached, host_readable
from .fourier import binarise_noise, fourier_frequencies, fourier_masks, fourier_noise, top_k_mask
from .sampling import as_float32

__all__ = [
    "sample_boxes",
    "box_keep_mask",
    "boxes_lambda",
    "host_box",
    "box_lambda",
    "fourier_frequencies",
    "fourier_noise",
    "binarise_noise",
    "top_k_mask",
    "fourier_masks",
    "sample_resize_boxes",
    "grid_keep_masks",
    "gaussian_keep_masks",
    "centred_boxes",
    "class_paste_masks",
]


# ---------------------------------------------------------------------------------------------
# Boxes (CutMix): an interval in 1-D, a rectangle in 2-D, a cuboid in 3-D.


def sample_boxes(
    lam: Tensor,
    spatial: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Boxes of volume fraction ``1 - lam`` with uniformly random centres, clipped to the borders.

    Each side is ``S_d * (1 - lam)^(1/d)`` (rounded down), the centre uniform over the ``S_d``
    positions of each axis (CutMix, Yun et al. 2019, generalised to d = 1, 2, 3 dimensions).
    Returns int64 ``(B, d, 2)`` holding ``[lo, hi)`` per axis; clipping makes a box smaller than
    drawn, which ``boxes_lambda`` accounts for.
    """
    d = len(spatial)
    b = lam.shape[0]
    if b == 1 and host_readable(lam):
        return _sample_box_on_host(float(lam[0]), spatial, generator)
    # The sizes are constants cached on the device; every tensor is (B, d, 1) until the last step
    # splits each axis into [lo, hi). The same values as the arithmetic written out per axis:
    # sides and centres are >= 0, so casting truncates them as floor did.
    size, limit, last, halves, zero, one = host_cached(_box_constants, tuple(spatial), str(lam.device))
    ratio = (one - lam.reshape(b, 1, 1)).clamp(0.0, 1.0)  # float64: one is, and the subtraction exact
    if d > 1:  # x ** 1 is x
        ratio = ratio.pow(1.0 / d)
    side = (size * ratio).to(torch.int64)
    u = torch.rand(b, d, 1, generator=generator, device=lam.device, dtype=torch.float64)
    centre = torch.minimum((u * size).to(torch.int64), last)
    # [c - floor(s / 2), c - floor(s / -2)] = [lo, lo + s], clipped to [0, S] on each axis.
    return torch.clamp(centre - side // halves, zero, limit)


@functools.lru_cache(maxsize=64)
def _box_constants(spatial: tuple[int, ...], device: str) -> tuple[Tensor, ...]:
    """For boxes over ``spatial`` on ``device``: the sizes ``(1, d, 1)`` in float64 and int64, the
    sizes - 1 (int64), the divisors ``(2, -2)``, 0 (int64) and 1 ``(1, 1, 1)`` (float64)."""
    limit = torch.empty(1, len(spatial), 1, dtype=torch.int64, device=device)
    for axis, n in enumerate(spatial):  # filled on the device (no host-to-device copy)
        limit[0, axis] = n
    halves = torch.full((2,), 2, dtype=torch.int64, device=device)
    halves[1] = -2
    zero = torch.zeros((), dtype=torch.int64, device=device)
    one = torch.ones(1, 1, 1, dtype=torch.float64, device=device)
    return limit.to(torch.float64), limit, limit - 1, halves, zero, one


def _sample_box_on_host(lam: float, spatial: tuple[int, ...], generator) -> Tensor:
    """``sample_boxes`` for one CPU box: the same draw and formula on Python numbers."""
    return torch.tensor([host_box(lam, spatial, generator)], dtype=torch.int64)


def host_box(lam: float, spatial: tuple[int, ...], generator) -> list[list[int]]:
    """One box of ``sample_boxes`` on the host, ``[[lo, hi], ...]`` per axis: the same draw from
    the CPU ``generator`` and formula on Python numbers."""
    d = len(spatial)
    (u,) = torch.rand(1, d, generator=generator, dtype=torch.float64).tolist()
    ratio = min(max(1.0 - lam, 0.0), 1.0) ** (1.0 / d)
    box = []
    for n, u_axis in zip(spatial, u, strict=True):
        side = math.floor(n * ratio)
        lo = min(math.floor(u_axis * n), n - 1) - side // 2
        hi = lo + side
        box.append([min(max(lo, 0), n), min(max(hi, 0), n)])
    return box


def box_lambda(box: list[list[int]], spatial: tuple[int, ...]) -> float:
    """``boxes_lambda`` of one box on the host, ``[[lo, hi], ...]``: a Python float rounded to
    float32."""
    volume = math.prod(max(hi - lo, 0) for lo, hi in box)
    return as_float32(1.0 - volume / math.prod(spatial))


def boxes_lambda(boxes: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """The realised own-sample weight ``1 - box volume / total volume`` per box, float32."""
    if boxes.shape[0] == 1 and host_readable(boxes):
        return torch.tensor([box_lambda(boxes[0].tolist(), spatial)], dtype=torch.float32)
    # hi - lo as a sum of the bounds times (-1, 1), summed in float64 (exact for int64 box bounds).
    sign = host_cached(_bound_signs, str(boxes.device))
    extent = (boxes * sign).sum(dim=-1, dtype=torch.float64).clamp_min(0)
    return (1.0 - extent.prod(dim=-1) / math.prod(spatial)).to(torch.float32)


@functools.lru_cache(maxsize=16)
def _bound_signs(device: str) -> Tensor:
    """``(-1, 1)``, int64 on ``device``: a box's ``[lo, hi)`` times these sums to ``hi - lo``."""
    sign = torch.ones(2, dtype=torch.int64, device=device)
    sign[0] = -1
    return sign


def box_keep_mask(boxes: Tensor, spatial: tuple[int, ...], dtype=torch.float32) -> Tensor:
    """Keep masks ``(B, *spatial)``: 0 inside each box (pasted from the partner), 1 outside.

    An element is kept when it lies outside the box on some axis: ``pos < lo`` or ``pos >= hi``
    on axis k (the complement of "inside on every axis"), with the positions cached per shape and
    device and every bound a ``(B, 1, ..., 1)`` view of ``boxes``."""
    b, d, _ = boxes.shape
    positions = host_cached(_axis_positions, tuple(spatial), str(boxes.device))
    bounds = boxes.reshape(b, 2 * d, *[1] * d).unbind(1)  # lo_0, hi_0, lo_1, hi_1, ...
    keep = None
    for axis, pos in enumerate(positions):
        outside = (pos < bounds[2 * axis]) | (pos >= bounds[2 * axis + 1])
        keep = outside if keep is None else keep | outside
    return keep.to(dtype)


@functools.lru_cache(maxsize=64)
def _axis_positions(spatial: tuple[int, ...], device: str) -> tuple[Tensor, ...]:
    """Per axis k, ``arange(S_k)`` (int64 on ``device``) shaped to broadcast over ``spatial``."""
    d = len(spatial)
    return tuple(torch.arange(n, device=device).view([n if k == axis else 1 for k in range(d)])
                 for axis, n in enumerate(spatial))


# ---------------------------------------------------------------------------------------------
# ResizeMix (Qin et al. 2020, arXiv 2012.11101): the partner, shrunk by a scale rate tau, pasted whole.


def sample_resize_boxes(tau: Tensor, spatial: tuple[int, ...], *, generator: torch.Generator | None = None
                        ) -> Tensor:
    """Boxes holding a partner shrunk by ``tau`` (``(B,)``, in (0, 1]): side ``max(1, floor(S_d *
    tau))`` on every axis, placed uniformly where it fits whole. int64 ``(B, d, 2)`` of ``[lo,
    hi)``, on ``tau``'s device. A ``tau`` of 0 gives an empty box (nothing pasted)."""
    b, d = tau.shape[0], len(spatial)
    # The sizes (1, d) and 0 cached on the device; tau enters float64 by promotion against the
    # sizes (exact).
    size, zero = host_cached(_resize_constants, tuple(spatial), str(tau.device))
    tau = tau.reshape(b, 1)
    side = torch.floor(size * tau).clamp_min(1.0)
    side = torch.where(tau > 0, side, zero)
    u = torch.rand(b, d, generator=generator, device=tau.device, dtype=torch.float64)
    room = size - side
    lo = torch.floor(u * (room + 1.0)).clamp_max(room)
    return torch.stack([lo, lo + side], dim=-1).to(torch.int64)


@functools.lru_cache(maxsize=64)
def _resize_constants(spatial: tuple[int, ...], device: str) -> tuple[Tensor, Tensor]:
    """The sizes ``(1, d)`` and 0, float64 on ``device``."""
    size = torch.empty(1, len(spatial), dtype=torch.float64, device=device)
    for axis, n in enumerate(spatial):  # filled on the device (no host-to-device copy)
        size[0, axis] = n
    return size, torch.zeros((), dtype=torch.float64, device=device)


def _axis_shape(count: int, d: int, axis: int, n: int) -> list[int]:
    """``(count, 1, ..., n, ..., 1)``: a per-axis row broadcast over the other spatial axes."""
    shape = [count] + [1] * d
    shape[axis + 1] = n
    return shape


# ---------------------------------------------------------------------------------------------
# GridMix (Baek et al., Pattern Recognition 2021; the hole-grid construction of OpenMixup's gridmix).


def grid_keep_masks(lam: Tensor, spatial: tuple[int, ...], *, holes: Tensor, hole_aspect: Tensor,
                    area: Tensor, aspect: Tensor, place: Tensor) -> Tensor:
    """GridMix keep masks ``(B, *spatial)`` (bool): a regular grid of holes, inside a crop, where
    the partner shows through.

    Per mask (all arguments ``(B,)`` except ``place`` ``(B, d)`` in [0, 1)):

    - the crop: side ``S_k * area^(1/d)`` on each axis k, the first axis stretched and the last
      shrunk by ``sqrt(aspect)`` (so height / width = ``aspect`` for a square image), floored and
      clipped to [1, S_k]; its low corner ``floor((S_k - side_k) * place_k)``.
    - the grid: ``holes`` cells along the last axis (at most half the crop's width, at least 1),
      cell side ``p = ceil(width / holes)`` there and ``max(1, floor(p * hole_aspect))`` on the
      other axes, starting at the crop's corner;
    - the hole in each cell: ``floor(cell * (1 - lam)^(1/d))`` per axis, kept within [1, cell - 1],
      at the cell's low corner, so about ``1 - lam`` of the crop shows the partner.

    An element is pasted when it lies in the crop and in a hole on every axis (a product of
    per-axis tests, batched on ``lam``'s device).
    """
    # Every axis at once: the per-axis values are (B, d) columns and the per-axis tests run on a
    # (B, d, max S) grid of positions (those past an axis' own S_k unused), each element through
    # the same float64 operations as a loop over the axes would take (x * 1 and x / 1 are exact).
    b, d = lam.shape[0], len(spatial)
    f64 = torch.float64
    sizes, ones, first, final, pos = host_cached(_grid_constants, tuple(spatial), str(lam.device))
    base = area.to(f64).pow(1.0 / d)
    ratio = (1.0 - lam.to(f64)).clamp(0.0, 1.0).pow(1.0 / d)
    side = base[:, None] * sizes                                   # (B, d)
    if d > 1:   # the first axis stretched and the last shrunk by sqrt(aspect)
        stretch = aspect.to(f64).sqrt()[:, None]
        side = side * torch.where(first, stretch, ones) / torch.where(final, stretch, ones)
    side = side.floor().clamp(ones, sizes)
    width = side[:, -1]
    count = holes.to(f64).clamp_max((width / 2).floor()).clamp_min(1.0)
    last = (width / count).ceil()
    if d > 1:
        other = (last * hole_aspect.to(f64)).floor().clamp_min(1.0)
        cell = torch.where(final, last[:, None], other[:, None])
    else:
        cell = last[:, None]
    hole = torch.minimum((cell * ratio[:, None]).floor().clamp_min(1.0), cell - 1.0)
    lo = ((sizes - side) * place.to(f64)).floor()
    offset = pos - lo[:, :, None]                                  # (B, d, max S)
    in_hole = torch.remainder(offset, cell[:, :, None]) < hole[:, :, None]
    hit = (offset >= 0) & (offset < side[:, :, None]) & in_hole
    pasted = None
    for k, n in enumerate(spatial):
        axis = hit[:, k, :n].view(_axis_shape(b, d, k, n))
        pasted = axis if pasted is None else pasted & axis
    return ~pasted


@functools.lru_cache(maxsize=64)
def _grid_constants(spatial: tuple[int, ...], device: str) -> tuple[Tensor, ...]:
    """``grid_keep_masks``' constants on ``device``: the sizes ``S_k`` and ones (float64
    ``(d,)``), which axis is the first and which the last (bool ``(d,)``), and the positions
    ``0 .. max S - 1`` (float64 ``(d, max S)``, the same row per axis)."""
    d = len(spatial)
    sizes = torch.tensor(spatial, dtype=torch.float64, device=device)
    axes = torch.arange(d, device=device)
    pos = torch.arange(max(spatial), dtype=torch.float64, device=device).expand(d, -1)
    return sizes, torch.ones_like(sizes), axes == 0, axes == d - 1, pos


# ---------------------------------------------------------------------------------------------
# SmoothMix (Lee et al., CVPR Workshops 2020): a Gaussian blob of the partner.


def gaussian_keep_masks(centre: Tensor, sigma: Tensor, spatial: tuple[int, ...],
                        dtype=torch.float32) -> Tensor:
    """SmoothMix keep masks ``1 - G`` ``(B, *spatial)`` with ``G(p) = exp(-sum_k (p_k - c_k)^2 /
    (2 (sigma S_k)^2))``: the partner's weight peaks at 1 on the centre ``c`` (``(B, d)``, pixel
    coordinates) and falls off with a standard deviation of ``sigma`` (``(B,)``) times each
    axis' size."""
    b, d = centre.shape
    # Per-sample values as (B, 1, ..., 1), broadcast against positions cached per axis: no view
    # per axis. Each term is divided by -2 rather than 2 (exact either way), so the sum is the
    # negated exponent bit for bit and exp needs no neg.
    one = [1] * d
    spread = sigma.to(torch.float64).reshape(b, *one)
    centres = centre.to(torch.float64).reshape(b, d, *one).unbind(1)
    positions = host_cached(_float_positions, tuple(spatial), str(centre.device))
    exponent = None
    for k, (n, pos) in enumerate(zip(spatial, positions, strict=True)):
        term = ((pos - centres[k]) / (spread * n)).square() / -2
        exponent = term if exponent is None else exponent + term
    return (1.0 - torch.exp(exponent)).to(dtype)


@functools.lru_cache(maxsize=64)
def _float_positions(spatial: tuple[int, ...], device: str) -> tuple[Tensor, ...]:
    """``_axis_positions`` in float64."""
    return tuple(p.to(torch.float64) for p in _axis_positions.__wrapped__(spatial, device))


# ---------------------------------------------------------------------------------------------
# SaliencyMix (Uddin et al., ICLR 2021): a CutMix box centred on the partner's saliency peak.


def centred_boxes(lam: Tensor, centre: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """Boxes ``[c - s // 2, c + s // 2)`` clipped to the borders, ``s = floor(S_k (1 - lam)^(1/d))``
    per axis (SaliencyMix's, around the saliency peak ``c`` ``(B, d)``). int64 ``(B, d, 2)``."""
    # Every axis at once on (B, d, 1) against constants cached per shape and device (as in
    # sample_boxes): half sides by a cast (they are >= 0, so it truncates as floor did), then
    # c + half * (-1, 1) clipped to [0, S].
    b, d = centre.shape
    size, limit, _, _, zero, one = host_cached(_box_constants, tuple(spatial), str(centre.device))
    sign = host_cached(_bound_signs, str(centre.device))
    ratio = (one - lam.reshape(b, 1, 1)).clamp(0.0, 1.0).pow(1.0 / d)
    half = (size * ratio).to(torch.int64) // 2
    return torch.clamp(centre.to(torch.int64).reshape(b, d, 1) + half * sign, zero, limit)


# ---------------------------------------------------------------------------------------------
# ClassMix (Olsson et al., WACV 2021): half of the classes present in an image, pasted.


def class_paste_masks(maps: Tensor, num_classes: int, scores: Tensor, ignore_index: int | None = None
                      ) -> Tensor:
    """Where each image's chosen classes lie: bool ``(B, *spatial)``.

    ``maps``: class maps ``(B, *spatial)`` (ids in [0, num_classes), or ``ignore_index``, which is
    never chosen). Of the n classes present in image b, the ``ceil(n / 2)`` with the smallest
    ``scores[b]`` (``(B, num_classes)``, e.g. uniform draws, so a uniformly random half) are
    chosen. Batched: presence by scatter, choice by rank, no host reads.
    """
    b = maps.shape[0]
    ids = maps.reshape(b, -1).long()
    if ignore_index is not None:
        ids = torch.where(ids == ignore_index, num_classes, ids)  # an extra column, never chosen
    present = torch.zeros(b, num_classes + 1, dtype=torch.bool, device=maps.device)
    present.scatter_(1, ids, True)
    present = present[:, :num_classes]
    ranked = torch.where(present, scores, 2.0).argsort(dim=1).argsort(dim=1)
    wanted = (present.sum(dim=1, keepdim=True) + 1) // 2
    chosen = present & (ranked < wanted)
    chosen = torch.cat([chosen, torch.zeros(b, 1, dtype=torch.bool, device=maps.device)], dim=1)
    return chosen.gather(1, ids).view(maps.shape)
