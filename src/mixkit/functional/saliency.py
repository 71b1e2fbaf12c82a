"""Spectral-residual saliency (Hou & Zhang, CVPR 2007) in torch, for SaliencyMix.

SaliencyMix (Uddin et al., ICLR 2021) centres its box on the most salient pixel of the partner
image. Its code computes saliency with OpenCV's static spectral-residual detector; this module
computes the same map in torch, batched on the images' device, for 1-D, 2-D and 3-D data:

1. the image in gray (3 channels: OpenCV's BGR-to-gray weights 0.114, 0.587, 0.299 on channels 0,
   1, 2, as the SaliencyMix code hands its RGB tensors to OpenCV; otherwise the channel mean),
   resampled (linearly) to ``size`` elements per axis (OpenCV: 64 x 64;
   volumes are only ever shrunk, to ``min(size, S_k)``: upsampled 3-D data smooths the spectrum so
   much that the residual's peak drifts to the corners, and 64^3 FFTs would cost);
2. its n-D FFT: log amplitude ``L`` and phase ``P``;
3. the spectral residual ``R = L - mean3(L)`` (a 3-per-axis box filter, mirrored borders);
4. the saliency: ``|IFFT(exp(R + i P))|`` smoothed by a 5-per-axis Gaussian of sigma 8, then
   squared (OpenCV's order), scaled to a maximum of 1 and resampled back to the image's size.

``saliency_peaks`` takes the first maximum in raster order of that map quantised to 8 bits, as
the SaliencyMix code does (``(map * 255).astype(uint8)`` then ``argmax``), so near-ties go to the
first pixel, not to float noise.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .execution import host_cached

__all__ = ["spectral_residual_saliency", "saliency_peaks"]

_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
_BGR_TO_GRAY = (0.114, 0.587, 0.299)


@functools.lru_cache(maxsize=64)
def _mirrored_cached(n: int, r: int, device: str) -> Tensor:
    return _mirrored(n, r, device)


def _mirrored(n: int, r: int, device) -> Tensor:
    """Indices of an axis of ``n`` elements padded by ``r`` on each side with mirrored borders
    (OpenCV's BORDER_REFLECT_101: ``... c b | a b c | b a ...``), for any ``r``, also ``r >= n``
    (an axis of one element repeats it)."""
    if n == 1:
        return torch.zeros(n + 2 * r, dtype=torch.int64, device=device)
    period = 2 * (n - 1)
    i = torch.arange(-r, n + r, device=device).remainder(period)
    return torch.where(i < n, i, period - i)


def _filter_axes(x: Tensor, taps: Tensor) -> Tensor:
    """Separable filtering of ``x`` ``(B, 1, *spatial)`` by ``taps`` on every spatial axis, with
    mirrored borders (OpenCV's BORDER_REFLECT_101, also on axes shorter than the filter)."""
    d = x.ndim - 2
    r = taps.numel() // 2
    for k in range(d):
        shape = [1, 1] + [1] * d
        shape[2 + k] = taps.numel()
        weight = taps.view(shape)
        conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
        if r < x.shape[2 + k]:  # torch's reflect pad is the same border, and faster
            pad = [0, 0] * d
            pad[2 * (d - 1 - k)] = pad[2 * (d - 1 - k) + 1] = r
            x = conv(F.pad(x, pad, mode="reflect"), weight)
        else:  # an axis shorter than the filter's radius: torch's pad refuses, indices do not
            index = host_cached(_mirrored_cached, x.shape[2 + k], r, str(x.device))
            x = conv(x.index_select(2 + k, index), weight)
    return x


@functools.lru_cache(maxsize=64)
def _saliency_constants(d: int, device: str) -> tuple[Tensor, Tensor, Tensor]:
    """The map's constants on ``device``: the BGR-to-grey weights ``(1, 3, 1, ...)`` (float32),
    the 3-tap mean and the normalised 5-tap Gaussian (sigma 8) of the smoothing (float64)."""
    gray = torch.tensor(_BGR_TO_GRAY, device=device).view(1, 3, *(1,) * d)
    mean3 = torch.full((3,), 1.0 / 3.0, dtype=torch.float64, device=device)
    taps = torch.tensor([math.exp(-(i * i) / (2 * 8.0 ** 2)) for i in range(-2, 3)],
                        dtype=torch.float64, device=device)
    return gray, mean3, taps / taps.sum()


def spectral_residual_saliency(x: Tensor, size: int = 64) -> Tensor:
    """Saliency maps ``(B, *spatial)`` in [0, 1] (float32) of images ``(B, C, *spatial)``, with 1
    to 3 spatial axes; computed without autograd (the map only places a box)."""
    d = x.ndim - 2
    if d not in (1, 2, 3):
        raise ValueError(f"x: expected (B, C, *spatial) with 1 to 3 spatial dims, got shape {tuple(x.shape)}")
    spatial = tuple(x.shape[2:])
    dims = tuple(range(2, 2 + d))
    weights, mean3, smooth = host_cached(_saliency_constants, d, str(x.device))
    with torch.no_grad():
        image = x.detach().float()
        if image.shape[1] == 3:
            gray = (image * weights).sum(dim=1, keepdim=True)
        else:
            gray = image.mean(dim=1, keepdim=True)
        shape = (size,) * d if d < 3 else tuple(min(size, n) for n in spatial)
        work = F.interpolate(gray, size=shape, mode=_LINEAR[d], align_corners=False)
        spectrum = torch.fft.fftn(work.double(), dim=dims)
        amplitude = spectrum.abs().clamp_min(1e-30)
        log_amp = amplitude.log()
        residual = log_amp - _filter_axes(log_amp, mean3)
        # exp(R + iP) = exp(R) * spectrum / |spectrum|
        back = torch.fft.ifftn(spectrum * (residual.exp() / amplitude), dim=dims)
        saliency = _filter_axes(back.abs(), smooth).square()
        peak = saliency.flatten(1).amax(dim=1).clamp_min(1e-300)
        saliency = saliency / peak.view((-1,) + (1,) * (d + 1))
        out = F.interpolate(saliency.float(), size=spatial, mode=_LINEAR[d], align_corners=False)
    return out[:, 0]


def saliency_peaks(x: Tensor, size: int = 64) -> Tensor:
    """The most salient element of each image: int64 ``(B, d)`` coordinates, the first maximum in
    raster order of the 8-bit quantised saliency map (SaliencyMix's choice)."""
    saliency = spectral_residual_saliency(x, size)
    spatial = saliency.shape[1:]
    levels = (saliency * 255).clamp(0, 255).floor()
    flat = levels.flatten(1).argmax(dim=1)  # the first maximum
    coords = []
    for n in reversed(spatial):
        coords.append(flat % n)
        flat = flat // n
    return torch.stack(coords[::-1], dim=1)
