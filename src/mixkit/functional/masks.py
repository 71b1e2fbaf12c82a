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

__all__ = [
    "sample_boxes",
    "box_keep_mask",
    "boxes_lambda",
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
    d = len(spatial)
    (u,) = torch.rand(1, d, generator=generator, dtype=torch.float64).tolist()
    ratio = min(max(1.0 - lam, 0.0), 1.0) ** (1.0 / d)
    box = []
    for n, u_axis in zip(spatial, u, strict=True):
        side = math.floor(n * ratio)
        lo = min(math.floor(u_axis * n), n - 1) - side // 2
        hi = lo + side
        box.append([min(max(lo, 0), n), min(max(hi, 0), n)])
    return torch.tensor([box], dtype=torch.int64)


def boxes_lambda(boxes: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """The realised own-sample weight ``1 - box volume / total volume`` per box, float32."""
    if boxes.shape[0] == 1 and host_readable(boxes):
        volume = math.prod(max(hi - lo, 0) for lo, hi in boxes[0].tolist())
        return torch.tensor([1.0 - volume / math.prod(spatial)], dtype=torch.float32)
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
# Fourier masks (FMix, Harris et al. 2020, arXiv 2002.12047).


def fourier_frequencies(spatial: tuple[int, ...], device="cpu") -> Tensor:
    """Magnitude ``|f|`` of each frequency of the real FFT grid of ``spatial`` (cycles/sample).

    The grid is ``spatial[:-1] + (spatial[-1] // 2 + 1,)``: full FFT frequencies on every axis but
    the last, which holds the non-negative half, as ``torch.fft.rfftn`` lays it out.
    """
    d = len(spatial)
    sq = None
    for axis, n in enumerate(spatial):
        f = torch.fft.rfftfreq(n, device=device) if axis == d - 1 else torch.fft.fftfreq(n, device=device)
        f = f.to(torch.float64)
        shape = [1] * d
        shape[axis] = f.numel()
        term = f.view(shape) ** 2
        sq = term if sq is None else sq + term
    return sq.sqrt()


@functools.lru_cache(maxsize=64)
def _spectrum_scale(spatial: tuple[int, ...], decay_power: float, spectrum: str, device: str) -> Tensor:
    """``1 / max(|f|, 1 / max(spatial))^decay_power`` on the real FFT grid (cached per shape)."""
    freqs = fourier_frequencies(spatial, device=device)
    scale = 1.0 / freqs.clamp_min(1.0 / max(spatial)).pow(decay_power)
    if spectrum == "paper":
        # The inverse real FFT reads the columns at last-axis frequency 0 (and n/2 for even n) as
        # Hermitian, averaging each entry with its mirror, which halves their expected power.
        # Scaling them by sqrt(2) gives every frequency the same expected power 2 * scale^2, so
        # the noise is isotropic (otherwise vertical frequencies are weaker than horizontal).
        scale[..., 0] *= math.sqrt(2.0)
        if spatial[-1] % 2 == 0 and spatial[-1] > 1:
            scale[..., spatial[-1] // 2] *= math.sqrt(2.0)
    return scale.to(torch.float32)


def fourier_noise(
    batch: int,
    spatial: tuple[int, ...],
    decay_power: float,
    *,
    generator: torch.Generator | None = None,
    device="cpu",
    spectrum: str = "paper",
) -> Tensor:
    """Low-frequency noise ``(batch, *spatial)``: a complex Gaussian spectrum scaled by
    ``1 / max(|f|, 1 / max(spatial))^decay_power`` and taken back by the inverse real FFT.

    ``spectrum="paper"`` is the isotropic 1/f^delta noise FMix describes. ``spectrum="official"``
    reproduces the upstream code as it runs: it pairs the first two rows of the frequency grid as
    real and imaginary parts and feeds the (real, imag) axis of length 2 to the inverse transform
    as the last frequency axis, so along the last axis only frequencies 0 and 1 survive (stripes
    and single blobs). It is offered to compare with numbers published from that code.
    """
    if spectrum not in ("paper", "official"):
        raise ValueError(f"spectrum: expected 'paper' or 'official', got {spectrum!r}")
    if spectrum == "official" and spatial[0] < 2:
        raise ValueError(
            f"spectrum='official' needs at least 2 frequencies on the first axis, got shape {spatial}"
        )
    key = (tuple(spatial), float(decay_power), spectrum, str(torch.device(device)))
    scale = host_cached(_spectrum_scale, *key)
    param = torch.randn(
        (batch, *scale.shape, 2), generator=generator, device=device, dtype=torch.float32
    )
    dims = tuple(range(-len(spatial), 0))
    if spectrum == "paper":
        z = torch.view_as_complex(param) * scale
        return torch.fft.irfftn(z, s=spatial, dim=dims)
    spec = param * scale[..., None]
    # (batch, f0, ..., 2) -> rows 0 and 1 of the first frequency axis as real / imaginary parts.
    stripe = torch.complex(spec[:, 0], spec[:, 1])  # (batch, f1, ..., f_last, 2)
    return torch.fft.irfftn(stripe, s=spatial, dim=dims)


def binarise_noise(
    noise: Tensor,
    lam: Tensor,
    *,
    max_soft: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Keep masks from noise: in each row the top ``k`` values become 1 and the rest 0, where
    ``k`` is ``ceil(lam * n)`` or ``floor(lam * n)`` with probability 1/2 each (n = elements).

    ``max_soft > 0`` replaces the hard edge by a linear ramp from 1 to 0 over the ranks
    ``k - s .. k + s - 1`` with ``s = floor(n * min(max_soft, lam, 1 - lam))``.
    ``noise`` is ``(B, *spatial)``, ``lam`` ``(B,)``; returns ``(B, *spatial)`` in ``dtype``.
    """
    b = noise.shape[0]
    flat = noise.reshape(b, -1)
    n = flat.shape[1]
    lam64 = lam.to(torch.float64)
    up = torch.rand(b, generator=generator, device=noise.device) > 0.5
    k = torch.where(up, torch.ceil(lam64 * n), torch.floor(lam64 * n)).to(torch.int64).clamp(0, n)
    if max_soft > 0:
        ranks = _descending_ranks(flat)  # the ramp needs every element's rank
        eff = torch.minimum(torch.minimum(lam64, 1.0 - lam64), torch.full_like(lam64, max_soft))
        soft = torch.floor(n * eff).to(torch.int64)  # (B,)
        low = (k - soft)[:, None]
        length = (2 * soft)[:, None]
        ramp = 1.0 - (ranks - low).to(torch.float64) / (length - 1).clamp_min(1)
        ramp = ramp.clamp(0.0, 1.0)
        hard = (ranks < k[:, None]).to(torch.float64)
        mask = torch.where(length > 0, ramp, hard)
        return mask.to(dtype).view(noise.shape)
    return top_k_mask(flat, k).to(dtype).view(noise.shape)


def top_k_mask(values: Tensor, k: Tensor) -> Tensor:
    """Boolean ``(B, n)``: True at the ``k[b]`` largest entries of each row ``values[b]``; ties
    at the threshold are broken by position (the first equal entries are kept), so exactly
    ``k[b]`` entries are kept in every row.

    CPU tensors in eager mode take a selection (``_top_k_by_selection``, O(n), reads ``k`` on the
    host); elsewhere the rank of every entry comes from one stable sort, nothing read back.
    """
    k = k.to(device=values.device, dtype=torch.int64)
    if host_readable(values):
        return _top_k_by_selection(values, k)
    return _descending_ranks(values) < k[:, None]


def _descending_ranks(values: Tensor) -> Tensor:
    """Rank of each entry in its row, 0 = largest; equal values ranked by position."""
    b, n = values.shape
    order = values.argsort(dim=1, descending=True, stable=True)
    return torch.empty_like(order).scatter_(1, order, torch.arange(n, device=values.device).expand(b, n))


def _top_k_by_selection(values: Tensor, k: Tensor) -> Tensor:
    """``top_k_mask`` by selection: rows are taken in up to four groups of similar k, and in each
    group every row is padded with ``max(k) - k[b]`` copies of +inf (and -inf to a common length)
    so that one ``kthvalue`` call finds every row's threshold at a common rank."""
    b, n = values.shape
    thr = torch.empty(b, 1, dtype=values.dtype, device=values.device)
    # Rows sorted by k and taken in a few groups keep the padding (the spread of k in a group)
    # small: about n / groups per row instead of up to n.
    groups = min(b, 4)
    order = k.argsort()
    k_sorted = k[order].tolist()
    size = -(-b // groups)
    for start in range(0, b, size):
        rows = order[start : start + size]
        thr.index_copy_(0, rows, _common_rank_threshold(
            values.index_select(0, rows), k_sorted[start : start + size]))
    keep = values >= thr
    counts = keep.sum(dim=1)
    if bool((counts != k).any()):
        # Ties at the threshold: keep the strictly greater ones, then the first equal ones.
        greater = values > thr
        need = (k - greater.sum(dim=1))[:, None]
        equal = values == thr
        keep = greater | (equal & (equal.cumsum(dim=1) <= need))
    return keep


def _common_rank_threshold(values: Tensor, ks: list[int]) -> Tensor:
    """Per row, the k-th largest value (+inf where k = 0), by one ``kthvalue`` over rows padded
    with ``max(k) - k`` copies of +inf and ``k - min(k)`` of -inf."""
    b, n = values.shape
    k_min, k_max = min(ks), max(ks)
    if k_max == 0:
        return torch.full((b, 1), float("inf"), dtype=values.dtype, device=values.device)
    pad = k_max - k_min
    if pad:
        n_inf = torch.tensor([k_max - v for v in ks], device=values.device)[:, None]
        arange = torch.arange(pad, device=values.device)
        fill = torch.where(arange < n_inf, float("inf"), float("-inf")).to(values.dtype)
        values = torch.cat([values, fill], dim=1)
    # the k_max-th largest of n + pad values is the (n + pad - k_max + 1)-th smallest
    return values.kthvalue(n + pad - k_max + 1, dim=1, keepdim=True).values


def fourier_masks(
    lam: Tensor,
    spatial: tuple[int, ...],
    decay_power: float = 3.0,
    *,
    max_soft: float = 0.0,
    generator: torch.Generator | None = None,
    spectrum: str = "paper",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """FMix keep masks ``(B, *spatial)``, one per entry of ``lam`` (B,), on ``lam``'s device."""
    noise = fourier_noise(
        lam.shape[0], spatial, decay_power, generator=generator, device=lam.device, spectrum=spectrum
    )
    return binarise_noise(noise, lam, max_soft=max_soft, generator=generator, dtype=dtype)


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
    b, d = lam.shape[0], len(spatial)
    dev = lam.device
    f64 = torch.float64
    base = area.to(f64).pow(1.0 / d)
    stretch = aspect.to(f64).sqrt()
    ratio = (1.0 - lam.to(f64)).clamp(0.0, 1.0).pow(1.0 / d)
    sides, cells = [], []
    for k, n in enumerate(spatial):
        side = base * n
        if d > 1 and k == 0:
            side = side * stretch
        if d > 1 and k == d - 1:
            side = side / stretch
        sides.append(side.floor().clamp(1.0, float(n)))
    width = sides[-1]
    count = holes.to(f64).clamp_max((width / 2).floor()).clamp_min(1.0)
    last = (width / count).ceil()
    for k in range(d):
        cells.append(last if k == d - 1 else (last * hole_aspect.to(f64)).floor().clamp_min(1.0))
    pasted = None
    for k, n in enumerate(spatial):
        side, cell = sides[k], cells[k]
        hole = torch.minimum((cell * ratio).floor().clamp_min(1.0), cell - 1.0)
        lo = ((n - side) * place[:, k].to(f64)).floor()
        pos = torch.arange(n, device=dev, dtype=f64)
        offset = pos - lo[:, None]  # (B, S_k)
        in_hole = torch.remainder(offset, cell[:, None]) < hole[:, None]
        hit = (offset >= 0) & (offset < side[:, None]) & in_hole
        hit = hit.view(_axis_shape(b, d, k, n))
        pasted = hit if pasted is None else pasted & hit
    return ~pasted


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
