"""The reference implementations the benchmark times mixkit against, written from the papers'
descriptions of the upstream code as it runs.

"official-style": zeta-mixup's weight matrix from a numpy argsort on the CPU, then an einsum;
FMix's single numpy mask per batch thresholded by argsort. "OpenMixup-style": the static methods
no peer library ships (ResizeMix, SaliencyMix with saliency on the host with numpy, GridMix with
a mask written hole by hole, SmoothMix), one draw per batch on 2-D images, as OpenMixup's
functions run.
"""

from __future__ import annotations

import math

import torch

from .records import NUM_CLASSES


def official_zeta(x: torch.Tensor, y: torch.Tensor, gamma: float = 2.8):
    """Weight matrix on the CPU with numpy (random keys, own sample first, argsort), then an
    einsum of the weights with the batch and the one-hot labels."""
    import numpy as np

    m = x.shape[0]
    w = np.arange(1, m + 1, dtype=np.float64) ** (-gamma)
    w /= w.sum()
    keys = np.random.rand(m, m)
    np.fill_diagonal(keys, -1.0)
    order = np.argsort(keys, axis=1)
    W = np.zeros((m, m))
    W[np.arange(m)[:, None], order] = w
    Wt = torch.from_numpy(W).to(device=x.device, dtype=x.dtype)
    flat = x.reshape(m, -1)
    mixed = torch.einsum("ij,pi->pj", flat, Wt).view_as(x)
    onehot = torch.nn.functional.one_hot(y, NUM_CLASSES).to(Wt.dtype)
    return mixed, Wt @ onehot


def official_fmix_mask(spatial: tuple[int, ...], alpha: float = 1.0, decay: float = 3.0):
    """One FMix mask with numpy: frequency grid, Gaussian spectrum, inverse real FFT, argsort."""
    import numpy as np

    lam = np.random.beta(alpha, alpha)
    grids = [np.fft.fftfreq(n) for n in spatial[:-1]] + [np.fft.rfftfreq(spatial[-1])]
    mesh = np.meshgrid(*grids, indexing="ij")
    freqs = np.sqrt(sum(g**2 for g in mesh))
    scale = 1.0 / np.maximum(freqs, 1.0 / max(spatial)) ** decay
    param = np.random.randn(*freqs.shape, 2)
    spec = scale * param[..., 0] + 1j * scale * param[..., 1]
    noise = np.real(np.fft.irfftn(spec, s=spatial, axes=tuple(range(len(spatial)))))
    n = noise.size
    k = math.ceil(lam * n) if np.random.rand() > 0.5 else math.floor(lam * n)
    idx = noise.reshape(-1).argsort()[::-1]
    mask = np.zeros(n)
    mask[idx[:k]] = 1.0
    return mask.reshape(spatial), lam


def official_fmix(x: torch.Tensor, y: torch.Tensor):
    mask, lam = official_fmix_mask(tuple(x.shape[2:]))
    m = torch.from_numpy(mask).to(device=x.device, dtype=x.dtype)
    index = torch.randperm(x.shape[0], device=x.device)
    return m * x + (1 - m) * x[index], (y, y[index], lam)


# OpenMixup-style static methods: one draw per batch, masks built by Python loops or on the host,
# as OpenMixup's functions run (written from the papers; 2-D images only, as there).


def _area_lam(mask: torch.Tensor) -> float:
    return 1.0 - float(mask.mean())


def openmixup_style_resizemix(x: torch.Tensor, y: torch.Tensor, scale=(0.1, 0.8)):
    """The permuted batch resized (nearest) into one box of side int(S * tau) at a random place."""
    import random

    h, w = x.shape[-2:]
    tau = random.uniform(*scale)
    bh, bw = max(int(h * tau), 1), max(int(w * tau), 1)
    top, left = random.randint(0, h - bh), random.randint(0, w - bw)
    index = torch.randperm(x.shape[0], device=x.device)
    out = x.clone()
    small = torch.nn.functional.interpolate(x[index], size=(bh, bw), mode="nearest")
    out[:, :, top:top + bh, left:left + bw] = small
    return out, (y, y[index], 1.0 - bh * bw / (h * w))


def _numpy_spectral_residual(image: torch.Tensor):
    """Spectral-residual saliency of one (C, H, W) image on the host with numpy (the OpenCV path)."""
    import numpy as np

    gray = image.float().mean(0)[None, None]
    small = torch.nn.functional.interpolate(gray, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    f = np.fft.fft2(small.cpu().double().numpy())
    log_amp = np.log(np.maximum(np.abs(f), 1e-30))
    padded = np.pad(log_amp, 1, mode="reflect")
    mean3 = sum(padded[i:i + 64, j:j + 64] for i in range(3) for j in range(3)) / 9.0
    s = np.abs(np.fft.ifft2(np.exp(log_amp - mean3 + 1j * np.angle(f)))) ** 2
    s = torch.from_numpy(s).float()[None, None]
    size = tuple(image.shape[1:])
    return torch.nn.functional.interpolate(s, size=size, mode="bilinear", align_corners=False)[0, 0]


def openmixup_style_saliencymix(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0):
    """One box per batch around the saliency peak of the first permuted image, computed on the host."""
    import numpy as np

    h, w = x.shape[-2:]
    lam = np.random.beta(alpha, alpha)
    index = torch.randperm(x.shape[0], device=x.device)
    sal = _numpy_spectral_residual(x[int(index[0])])
    r, c = np.unravel_index(int(sal.argmax()), sal.shape)
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    r0, r1 = np.clip(r - cut_h // 2, 0, h), np.clip(r + cut_h // 2, 0, h)
    c0, c1 = np.clip(c - cut_w // 2, 0, w), np.clip(c + cut_w // 2, 0, w)
    out = x.clone()
    out[:, :, r0:r1, c0:c1] = x[index][:, :, r0:r1, c0:c1]
    return out, (y, y[index], 1 - (r1 - r0) * (c1 - c0) / (h * w))


def openmixup_style_gridmix(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, holes=(2, 6)):
    """A grid of holes written into a device mask one slice at a time (Python loops over holes)."""
    import random

    import numpy as np

    h, w = x.shape[-2:]
    lam = np.random.beta(alpha, alpha)
    n = random.randint(*holes)
    area, aspect = random.uniform(0.5, 1.0), random.uniform(0.5, 2.0)
    cw = min(int(math.sqrt(area * h * w / aspect)), w)
    ch = min(int(cw * aspect), h)
    top, left = int((h - ch) * random.random()), int((w - cw) * random.random())
    n = max(min(n, cw // 2), 1)
    pw = math.ceil(cw / n)
    ph = max(pw, 1)
    ratio = math.sqrt(1 - lam)
    hw_, hh = min(max(int(pw * ratio), 1), pw - 1), min(max(int(ph * ratio), 1), ph - 1)
    mask = torch.zeros(h, w, device=x.device)
    for i in range(0, cw, pw):
        for j in range(0, ch, ph):
            mask[top + j:top + min(j + hh, ch), left + i:left + min(i + hw_, cw)] = 1.0
    index = torch.randperm(x.shape[0], device=x.device)
    return x * (1 - mask) + x[index] * mask, (y, y[index], _area_lam(mask))


def openmixup_style_smoothmix(x: torch.Tensor, y: torch.Tensor, sigma=(0.25, 0.5)):
    """One Gaussian blob per batch built on the device from a coordinate grid."""
    import random

    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device, dtype=x.dtype)[:, None]
    cols = torch.arange(w, device=x.device, dtype=x.dtype)[None, :]
    s = random.uniform(*sigma) * h
    g = torch.exp(-((rows - random.randrange(h)) ** 2 + (cols - random.randrange(w)) ** 2) / (2 * s * s))
    index = torch.randperm(x.shape[0], device=x.device)
    return x * (1 - g) + x[index] * g, (y, y[index], _area_lam(g))
