"""FMix's keep masks: low-frequency Fourier noise, thresholded so that the top ``lam`` share of
its values are kept (Harris et al., arXiv 2002.12047). Re-exported by ``masks``.

    Z = irfftn(N(0, 1) + i N(0, 1) scaled by 1 / max(|f|, 1 / max(S))^decay_power)
    M = 1 on the top round(lam * |S|) values of Z, else 0 (``max_soft``: a linear ramp)
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .execution import host_cached, host_readable

__all__ = ["fourier_frequencies", "fourier_noise", "binarise_noise", "top_k_mask", "top_k_row",
           "fourier_masks", "fourier_mask_host_k"]


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


def top_k_row(values: Tensor, k: int) -> Tensor:
    """``top_k_mask`` of one row ``(1, n)`` with ``k`` known on the host (a Python int): the same
    entries. Off the host, the first ``k`` positions of one stable descending sort set in an
    empty mask (four ops, not the seven of every entry's rank)."""
    if host_readable(values):
        return _top_k_by_selection(values, torch.tensor([k]))
    order = values.argsort(dim=1, descending=True, stable=True)
    return torch.zeros(values.shape, dtype=torch.bool, device=values.device).scatter_(1, order[:, :k], True)


def fourier_mask_host_k(lam: float, spatial: tuple[int, ...], decay_power: float = 3.0, *,
                        generator: torch.Generator | None = None, host: torch.Generator | None = None,
                        spectrum: str = "paper", device="cpu") -> tuple[Tensor, int]:
    """One hard FMix keep mask ``(1, *spatial)`` float32 for a ``lam`` drawn on the host, and the
    number ``k`` of its ones: ``fourier_masks`` of one entry with ``max_soft = 0``, the noise
    drawn on ``device`` from ``generator``, the choice between ``ceil`` and ``floor`` on the host
    from the CPU generator ``host`` (for CPU inputs the same generator: the same draws and
    values as ``fourier_masks``)."""
    noise = fourier_noise(1, spatial, decay_power, generator=generator, device=device, spectrum=spectrum)
    flat = noise.reshape(1, -1)
    n = flat.shape[1]
    (u,) = torch.rand(1, generator=host).tolist()
    k = min(max(int(math.ceil(lam * n) if u > 0.5 else math.floor(lam * n)), 0), n)
    return top_k_row(flat, k).to(torch.float32).view(noise.shape), k


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
