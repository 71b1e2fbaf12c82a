"""Speed benchmark: every mixer against the memory-traffic floor, the peer libraries and
re-implementations of the official algorithms, on the same tensors, in one run.

    python -m mixkit.harness.bench --out docs/bench            # or: mixkit bench --out docs/bench

Timings are medians of repeated calls after warm-up (CUDA: events with synchronisation). Each
row reports the time, the ratio to the floor (one pre-allocated pass reading two batches and
writing one), the ratio to the fastest peer for the same method, and the extra memory a call
allocates relative to the input's size (CPU: from the profiler's allocation records; CUDA: peak
allocator statistics). On CUDA a row also reports the ratio to the HBM floor: the bytes of that
pass (three times the input's size) over the device's memory bandwidth (``--bandwidth-gbs``;
by default NVIDIA's figure for an H200, else a measured device-to-device copy).

Inputs are made on the device; mixkit's mixers are called with a CPU ``torch.Generator`` (the
recommended form for inputs on any device). A peer that rejects an input is recorded as failed
with the exception's name; an error in mixkit's own entries is raised.

Peers, when installed: timm ``Mixup`` (which mixes in place), torchvision v2 ``MixUp``/``CutMix``
and kornia ``RandomMixUpV2``/``RandomCutMixV2``. "official-style" rows are written here from the
papers' descriptions of the upstream code as it runs: zeta-mixup's weight matrix from a numpy
argsort on the CPU, then an einsum; FMix's single numpy mask per batch thresholded by argsort.
"OpenMixup-style" rows do the same for the static methods no peer library ships (kornia has none of
them): ResizeMix, SaliencyMix (saliency on the host with numpy), GridMix (a mask written hole by
hole) and SmoothMix, one draw per batch on 2-D images, as OpenMixup's functions run.
"""

from __future__ import annotations

import argparse
import copy
import errno
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mixkit import functional as F
from mixkit.compose import Alternate, Compose
from mixkit.mixers import CutMix, FMix, GridMix, MixUp, ResizeMix, SaliencyMix, SmoothMix, ZetaMixup

from .files import atomic_write_text

NUM_CLASSES = 10

DEFAULT_SHAPES = [
    (128, 3, 32, 32),
    (64, 3, 224, 224),
    (256, 1, 40),
    (64, 1, 16000),
    (16, 1, 32, 32, 32),
]


@dataclass
class Row:
    shape: tuple
    method: str
    impl: str
    mode: str
    ms: float
    extra_mem: float | None = None  # bytes allocated per call / input bytes
    vs_floor: float | None = None
    vs_peer: float | None = None
    note: str = ""
    vs_hbm: float | None = None  # time / HBM floor (CUDA only)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    masks: list[dict] = field(default_factory=list)
    train_step: list[dict] = field(default_factory=list)
    zeta_scaling: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Measuring.


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cuda_ms(fn: Callable[[], object], device: torch.device) -> float:
    """One call of ``fn`` timed with CUDA events, in ms (synchronised)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end)


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int = 15, warmup: int = 3,
            budget_s: float = 6.0) -> float:
    """Median wall time of ``fn`` in ms over ``repeats`` calls after ``warmup`` (fewer calls when
    one takes long: at most about ``budget_s`` seconds per entry)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    start_all = time.perf_counter()
    for _ in range(repeats):
        if device.type == "cuda":
            times.append(_cuda_ms(fn, device))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() - start_all > budget_s and len(times) >= 3:
            break
    return statistics.median(times)


def extra_memory_bytes(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak bytes allocated by one call of ``fn`` above what existed before (results kept)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return float(peak)
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # pragma: no cover
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    running = peak = 0
    for e in events:
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    del out
    return float(peak)


# The HBM floor on CUDA: a mix reads two batches and writes one, so no kernel can beat moving
# three times the input's bytes at the memory bandwidth.
H200_HBM_GBS = 4800.0  # NVIDIA H200 datasheet: 4.8 TB/s HBM3e


def hbm_floor_ms(input_bytes: int | float, bandwidth_gbs: float) -> float:
    """Milliseconds to read two inputs of ``input_bytes`` and write one at ``bandwidth_gbs``
    (GB/s, 1e9 bytes per second)."""
    if not (isinstance(bandwidth_gbs, (int, float)) and math.isfinite(bandwidth_gbs) and bandwidth_gbs > 0):
        raise ValueError(f"bandwidth_gbs: expected a positive number of GB/s, got {bandwidth_gbs!r}")
    if input_bytes < 0:
        raise ValueError(f"input_bytes: expected >= 0, got {input_bytes!r}")
    return 3.0 * input_bytes / (bandwidth_gbs * 1e9) * 1e3


def measure_copy_bandwidth_gbs(device: torch.device, nbytes: int | None = None, repeats: int = 20) -> float:
    """Memory bandwidth of ``device`` in GB/s from a large device-to-device copy: bytes read plus
    bytes written over the median time of ``dst.copy_(src)`` (CUDA events)."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device: expected a CUDA device to measure, got {device}")
    if nbytes is None:
        free, _ = torch.cuda.mem_get_info(device)
        nbytes = min(1 << 30, free // 8)  # 1 GiB, or less on a busy device (two buffers)
    n = max(nbytes // 4, 1)
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeats=repeats, warmup=3)
    if not ms > 0:
        raise RuntimeError(f"bandwidth: a copy of {4 * n} bytes timed at {ms} ms")
    return 2.0 * 4 * n / (ms * 1e-3) / 1e9


def device_bandwidth_gbs(device: torch.device, override: float | None = None) -> tuple[float, str]:
    """``(GB/s, where it comes from)`` for the HBM floor of ``device``: ``override`` when given,
    NVIDIA's 4800 GB/s for an H200, else a measured device-to-device copy."""
    if override is not None:
        hbm_floor_ms(0, override)  # validates
        return float(override), "given (--bandwidth-gbs)"
    name = torch.cuda.get_device_name(device)
    if "H200" in name:
        return H200_HBM_GBS, f"{name}: datasheet HBM bandwidth"
    return measure_copy_bandwidth_gbs(device), f"{name}: measured device-to-device copy"


# ---------------------------------------------------------------------------------------------
# The official algorithms as they run (re-implemented from the papers' descriptions).


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


# ---------------------------------------------------------------------------------------------
# Entries: (method, implementation, mode, callable(x, y)).


def _mixkit_entries(ndim: int):
    mask_ok = 3 <= ndim <= 5
    e = []
    for mode in ("batch", "elem"):
        for inplace in (False, True):
            tag = mode + (" inplace" if inplace else "")
            kw = dict(num_classes=NUM_CLASSES, mode=mode, inplace=inplace)
            e.append(("mixup", "mixkit", tag, MixUp(**kw)))
            if mask_ok:
                e.append(("cutmix", "mixkit", tag, CutMix(**kw)))
                e.append(("fmix", "mixkit", tag, FMix(**kw)))
    if mask_ok:
        for mode in ("batch", "elem"):
            kw = dict(num_classes=NUM_CLASSES, mode=mode)
            e.append(("resizemix", "mixkit", mode, ResizeMix(resample="nearest", **kw)))
            e.append(("saliencymix", "mixkit", mode, SaliencyMix(**kw)))
            e.append(("gridmix", "mixkit", mode, GridMix(**kw)))
            e.append(("smoothmix", "mixkit", mode, SmoothMix(**kw)))
    e.append(("zeta", "mixkit", "N=B", ZetaMixup(num_classes=NUM_CLASSES)))
    e.append(("zeta", "mixkit", "N=4", ZetaMixup(num_classes=NUM_CLASSES, n_mix=4)))
    if mask_ok:
        alt = Alternate([MixUp(), FMix()], num_classes=NUM_CLASSES)
        e.append(("mixup+fmix", "mixkit", "alternate", alt))
        both = Compose([CutMix(), ZetaMixup()], num_classes=NUM_CLASSES)
        e.append(("cutmix+zeta", "mixkit", "compose", both))
    return e


def _peer_entries(ndim: int, batch: int):
    out = []
    if ndim != 4:
        return out  # the peers mix images only
    try:
        from timm.data import Mixup as TimmMixup

        if batch % 2 == 0:
            for mode in ("batch", "elem"):
                out.append(("mixup", "timm (in place)", mode,
                            TimmMixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode=mode, num_classes=NUM_CLASSES)))
                out.append(("cutmix", "timm (in place)", mode,
                            TimmMixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, num_classes=NUM_CLASSES)))
    except ImportError:
        pass
    try:
        from torchvision.transforms import v2

        out.append(("mixup", "torchvision v2", "batch", v2.MixUp(alpha=1.0, num_classes=NUM_CLASSES)))
        out.append(("cutmix", "torchvision v2", "batch", v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)))
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from kornia.augmentation import RandomCutMixV2, RandomMixUpV2

        out.append(("mixup", "kornia", "elem", RandomMixUpV2(data_keys=["input", "class"])))
        out.append(("cutmix", "kornia", "elem", RandomCutMixV2(data_keys=["input", "class"])))
    except ImportError:
        pass
    return out


def _official_entries(ndim: int):
    out = [("zeta", "official-style", "N=B", official_zeta)]
    if 3 <= ndim <= 5:
        out.append(("fmix", "official-style", "batch", official_fmix))
    if ndim == 4:
        out += [("resizemix", "OpenMixup-style", "batch", openmixup_style_resizemix),
                ("saliencymix", "OpenMixup-style", "batch", openmixup_style_saliencymix),
                ("gridmix", "OpenMixup-style", "batch", openmixup_style_gridmix),
                ("smoothmix", "OpenMixup-style", "batch", openmixup_style_smoothmix)]
    return out


def _check_mix_output(out, x: torch.Tensor, what: str) -> None:
    """A mixkit entry's ``(mixed, soft)`` has the input's shape and device (else a broken entry
    would be timed as if it worked)."""
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise RuntimeError(f"bench: {what} returned {type(out).__name__}, expected (mixed, soft)")
    mixed, soft = out
    if mixed.shape != x.shape or mixed.device != x.device or soft.device != x.device \
            or soft.shape != (x.shape[0], NUM_CLASSES):
        raise RuntimeError(f"bench: {what} returned mixed {tuple(mixed.shape)} on {mixed.device} and "
                           f"soft {tuple(soft.shape)} on {soft.device} for input {tuple(x.shape)} "
                           f"on {x.device}")


def bench_shape(shape, device, repeats, peers=True, memory=True, bandwidth_gbs=None) -> list[Row]:
    """Rows for one input shape: the floor, every mixkit entry, the peers and official-style
    entries. Inputs are made on ``device``; mixkit entries get a CPU generator. ``bandwidth_gbs``
    (GB/s) adds the ratio to the HBM floor to every row."""
    device = torch.device(device)
    data = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(shape, generator=data, device=device)
    y = torch.randint(0, NUM_CLASSES, (shape[0],), generator=data, device=device)
    x2 = torch.rand(shape, generator=data, device=device)
    buf = torch.empty_like(x)
    g = torch.Generator().manual_seed(0)  # CPU: drives the device draws of mixkit's mixers
    in_bytes = x.numel() * x.element_size()
    rows = []

    def add(method, impl, mode, fn, note="", may_fail=False):
        if may_fail:
            try:
                ms = time_ms(fn, device, repeats)
                mem = extra_memory_bytes(fn, device) if memory else None
            except Exception as exc:  # a peer that rejects this input
                rows.append(Row(shape, method, impl, mode, float("nan"),
                                note=f"failed: {type(exc).__name__}"))
                return
        else:  # mixkit's own entries, the floor and official-style: an error is raised
            ms = time_ms(fn, device, repeats)
            mem = extra_memory_bytes(fn, device) if memory else None
        rows.append(Row(shape, method, impl, mode, ms, None if mem is None else mem / in_bytes, note=note))

    add("floor", "read 2 write 1", "preallocated", lambda: torch.add(x, x2, out=buf))
    add("floor", "read 2 write 1", "in place", lambda: buf.add_(x2))
    add("floor", "read 2 write 1", "fresh output", lambda: torch.add(x, x2))
    for method, impl, mode, mixer in _mixkit_entries(x.ndim):
        _check_mix_output(mixer(x, y, generator=g), x, f"mixkit {method} {mode}")
        add(method, impl, mode, lambda m=mixer: m(x, y, generator=g))
    if peers:
        for method, impl, mode, peer in _peer_entries(x.ndim, shape[0]):
            if impl.startswith("timm"):
                add(method, impl, mode, lambda p=peer: p(x, y), "mixes its input in place", may_fail=True)
            else:
                add(method, impl, mode, lambda p=peer: p(x, y), may_fail=True)
        if device.type == "cpu":
            for method, impl, mode, fn in _official_entries(x.ndim):
                add(method, impl, mode, lambda f=fn: f(x, y))
    floor = next(r.ms for r in rows if r.method == "floor" and r.mode == "preallocated")
    hbm = hbm_floor_ms(in_bytes, bandwidth_gbs) if bandwidth_gbs is not None else None
    for r in rows:
        r.vs_floor = r.ms / floor if floor > 0 else None
        if hbm:
            r.vs_hbm = r.ms / hbm
        if r.impl == "mixkit":
            peer = [p.ms for p in rows if p.method == r.method and p.impl != "mixkit" and math.isfinite(p.ms)]
            r.vs_peer = r.ms / min(peer) if peer else None
    return rows


def bench_masks(device, repeats) -> list[dict]:
    """FMix masks per second: per-sample batched masks against the official one-per-batch."""
    out = []
    for spatial, batch in [((32, 32), 128), ((224, 224), 64), ((16000,), 64), ((32, 32, 32), 16)]:
        g = torch.Generator(device=device).manual_seed(0)  # the functional API draws on lam's device
        lam = torch.rand(batch, generator=g, device=device)
        ms = time_ms(lambda s=spatial, l=lam, g=g: F.fourier_masks(l, s, 3.0, generator=g), device, repeats)
        row = {"shape": list(spatial), "batch": batch, "mixkit_masks_per_s": batch / ms * 1e3}
        if device.type == "cpu":
            ms_off = time_ms(lambda s=spatial: official_fmix_mask(s), device, repeats)
            row["official_masks_per_s"] = 1e3 / ms_off
            row["ratio"] = row["mixkit_masks_per_s"] / row["official_masks_per_s"]
        out.append(row)
    return out


def bench_train_step(device, repeats) -> list[dict]:
    """Time of one training step of a small CNN on a Fashion-MNIST-sized batch, plain and with
    each input-space mixer (mixing inside the step)."""
    torch.manual_seed(0)
    model = _small_cnn().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = _fashion_batch(128, device)
    y = torch.randint(0, NUM_CLASSES, (128,), device=device)
    g = torch.Generator().manual_seed(0)  # CPU generator, as recommended for any device

    def step(mixer=None):
        xb, target = (x, y) if mixer is None else mixer(x, y, generator=g)
        loss = torch.nn.functional.cross_entropy(model(xb), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    mixers = _train_step_mixers()
    time_from_start = _step_timer(model, opt, device)
    out = []
    for name, mixer in mixers.items():
        plain, mixed = _paired_step_times(time_from_start, step, functools.partial(step, mixer), repeats)
        ratio = statistics.median(m / p for m, p in zip(mixed, plain, strict=True))
        out.append({"method": name, "plain_ms": statistics.median(plain),
                    "mixed_ms": statistics.median(mixed), "overhead_pct": 100 * (ratio - 1)})
    return out


def _train_step_mixers() -> dict:
    return {
        "mixup": MixUp(num_classes=NUM_CLASSES),
        "zeta": ZetaMixup(num_classes=NUM_CLASSES),
        "cutmix": CutMix(num_classes=NUM_CLASSES),
        "fmix": FMix(num_classes=NUM_CLASSES),
        "fmix elem": FMix(num_classes=NUM_CLASSES, mode="elem"),
        "mixup+fmix": Alternate([MixUp(), FMix()], num_classes=NUM_CLASSES),
        "cutmix+zeta": Compose([CutMix(), ZetaMixup()], num_classes=NUM_CLASSES),
    }


def _step_timer(model: torch.nn.Module, opt: torch.optim.Optimizer, device) -> Callable:
    """``timed(fn)``: ms of one call of ``fn`` started from the weights and optimiser state that
    ``model`` and ``opt`` have now."""
    start = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())

    def timed(fn) -> float:
        model.load_state_dict(start[0])
        opt.load_state_dict(start[1])
        _sync(device)
        if device.type == "cuda":
            return _cuda_ms(fn, device)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    return timed


def _paired_step_times(timed, plain_step, mixed_step, repeats) -> tuple[list[float], list[float]]:
    """Plain and mixed step times in pairs.

    Each pair starts both steps from the same weights and optimiser state (hundreds of plain
    steps on one fixed batch would otherwise drive its loss towards zero, a state mixed steps
    never reach), the order within a pair alternates, and the overhead is the median of the
    per-pair ratios, so slow drifts in machine load cancel."""
    for _ in range(3):                      # warm-up, both kinds
        timed(plain_step)
        timed(mixed_step)
    plain, mixed = [], []
    for i in range(3 * repeats):
        if i % 2:
            mixed.append(timed(mixed_step))
            plain.append(timed(plain_step))
        else:
            plain.append(timed(plain_step))
            mixed.append(timed(mixed_step))
    return plain, mixed


def _small_cnn() -> torch.nn.Module:
    """The harness's small CNN for 1x28x28 Fashion-MNIST images (the training-step benchmark)."""
    from .models import build_model

    return build_model("small-cnn", num_classes=NUM_CLASSES, input_shape=(1, 28, 28))


def _fashion_batch(batch: int, device) -> torch.Tensor:
    """The first ``batch`` Fashion-MNIST test images in [0, 1] when the Debian package is installed,
    else random pixels."""
    from .data.fashion import load_fashion_mnist

    try:
        images, _ = load_fashion_mnist("test", batch)
    except FileNotFoundError:
        return torch.rand(batch, 1, 28, 28, device=device)
    return images.to(device)


def bench_zeta_scaling(device, repeats) -> dict:
    """How zeta-mixup's cost grows with batch size, input size and N (mixkit vs official-style)."""
    res = {"batch": [], "size": [], "n_mix": []}
    g = torch.Generator().manual_seed(0)  # CPU generator, as recommended for any device
    for b in [16, 32, 64, 128, 256, 512]:
        x = torch.rand(b, 3, 32, 32, device=device)
        y = torch.randint(0, NUM_CLASSES, (b,), device=device)
        z = ZetaMixup(num_classes=NUM_CLASSES)
        res["batch"].append(_zeta_row(b, z, x, y, g, device, repeats))
    for s in [16, 32, 64, 128, 224]:
        x = torch.rand(64, 3, s, s, device=device)
        y = torch.randint(0, NUM_CLASSES, (64,), device=device)
        z = ZetaMixup(num_classes=NUM_CLASSES)
        res["size"].append(_zeta_row(s, z, x, y, g, device, repeats))
    x = torch.rand(128, 3, 32, 32, device=device)
    y = torch.randint(0, NUM_CLASSES, (128,), device=device)
    for n in [2, 4, 8, 16, 32, 64, 128]:
        z = ZetaMixup(num_classes=NUM_CLASSES, n_mix=n)
        res["n_mix"].append(_zeta_row(n, z, x, y, g, device, repeats, official=False))
    return res


def _zeta_row(value, z, x, y, g, device, repeats, official=True) -> dict:
    row = {"x": value, "mixkit_ms": time_ms(lambda: z(x, y, generator=g), device, repeats)}
    if official and device.type == "cpu":
        row["official_ms"] = time_ms(lambda: official_zeta(x, y), device, repeats)
    return row


# ---------------------------------------------------------------------------------------------
# Output.


def _fmt(v, digits=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


SMALL, LARGE = (128, 3, 32, 32), (64, 3, 224, 224)


def _shape_name(shape) -> str:
    return "×".join(map(str, shape))


def _shapes(rep: Report) -> list[tuple]:
    """The report's input shapes, in the order they were measured."""
    shapes = []
    for r in rep.rows:
        if tuple(r.shape) not in shapes:
            shapes.append(tuple(r.shape))
    return shapes


def target_checks(rep: Report) -> list[dict]:
    """The speed and memory targets of docs/benchmarks.md, checked against one report.

    Each entry: ``target`` (what is asked), ``where`` (shape or entry), ``value`` (the measured
    ratio, percentage or memory), ``limit`` and ``met``. Targets whose entries are missing from the
    report (a quick run, no peers) are left out.
    """
    return (_fastest_vs_peer_checks(rep) + _elem_vs_timm_checks(rep) + _fmix_mask_checks(rep)
            + _zeta_vs_official_checks(rep) + _train_step_checks(rep) + _extra_memory_checks(rep))


def _rows(rep: Report, shape, method, impl=None, modes=None) -> list[Row]:
    """The report's timed rows (finite time) of one shape and method, optionally one
    implementation and some modes."""
    return [r for r in rep.rows if tuple(r.shape) == shape and r.method == method
            and (impl is None or r.impl == impl) and (modes is None or r.mode in modes)
            and math.isfinite(r.ms)]


def _check(target, where, value, limit, *, at_most=True, unit="×") -> list[dict]:
    """One checked target, or none when the value is missing or not finite."""
    if value is None or not math.isfinite(value):
        return []
    return [{"target": target, "where": where, "value": value, "limit": limit, "unit": unit,
             "at_most": at_most, "met": value <= limit if at_most else value >= limit}]


def _fastest_vs_peer_checks(rep: Report) -> list[dict]:
    out = []
    fastest = {"mixup": ("batch", "batch inplace"), "cutmix": ("batch", "batch inplace"),
               "fmix": ("batch", "batch inplace"), "zeta": ("N=B",)}
    for shape, limit in ((SMALL, 1.0), (LARGE, 0.5)):
        for method, modes in fastest.items():
            mine = _rows(rep, shape, method, "mixkit", modes)
            peers = [r for r in _rows(rep, shape, method) if r.impl != "mixkit"]
            if mine and peers:
                best, peer = min(mine, key=lambda r: r.ms), min(peers, key=lambda r: r.ms)
                out += _check(f"{method}: fastest mode vs fastest peer", f"{_shape_name(shape)} "
                              f"({best.mode} {best.ms:.3g} ms vs {peer.impl} {peer.mode} {peer.ms:.3g} ms)",
                              best.ms / peer.ms, limit)
    return out


def _elem_vs_timm_checks(rep: Report) -> list[dict]:
    out = []
    for shape in (SMALL, LARGE):
        for method in ("mixup", "cutmix"):
            mine = _rows(rep, shape, method, "mixkit", ("elem", "elem inplace"))
            timm = [r for r in _rows(rep, shape, method) if r.impl.startswith("timm") and r.mode == "elem"]
            if mine and timm:
                best = min(mine, key=lambda r: r.ms)
                out += _check(f"{method} elem vs timm elem", f"{_shape_name(shape)} ({best.mode} "
                              f"{best.ms:.3g} ms vs {timm[0].ms:.3g} ms)", best.ms / timm[0].ms, 0.25)
    return out


def _fmix_mask_checks(rep: Report) -> list[dict]:
    out = []
    for r in rep.masks:
        limit = {(32, 32): 10.0, (224, 224): 3.0}.get(tuple(r["shape"]))
        if limit is not None and r.get("ratio") is not None:
            out += _check("FMix masks/s vs official", _shape_name(r["shape"]), r["ratio"], limit,
                          at_most=False)
    return out


def _zeta_vs_official_checks(rep: Report) -> list[dict]:
    out = []
    for shape in _shapes(rep):
        mine = _rows(rep, shape, "zeta", "mixkit", ("N=B",))
        official = _rows(rep, shape, "zeta", "official-style")
        if mine and official:
            out += _check("zeta N=B vs official-style", _shape_name(shape), mine[0].ms / official[0].ms, 1.0)
    return out


def _train_step_checks(rep: Report) -> list[dict]:
    out = []
    for r in rep.train_step:
        out += _check("training-step overhead", r["method"], r["overhead_pct"], 3.0, unit="%")
    return out


def _extra_memory_checks(rep: Report) -> list[dict]:
    out = []
    mine = [r for method in ("mixup", "cutmix", "fmix", "zeta") for r in _rows(rep, LARGE, method, "mixkit")]
    for r in mine:
        if r.extra_mem is None:
            continue
        # Allowed: one output (none in place) plus the parameters; per-sample masks (CutMix and
        # FMix elem) are one (H, W) plane per sample, 1/C of the input; 0.1 of slack for the rest.
        inplace = "inplace" in r.mode
        masks = 1 / LARGE[1] if r.method in ("cutmix", "fmix") and r.mode.startswith("elem") else 0.0
        kind = "in place: masks only" if inplace else "out of place: one output + masks"
        out += _check("extra memory " + kind, f"{r.method} {r.mode}, {_shape_name(LARGE)}", r.extra_mem,
                      round((0.0 if inplace else 1.0) + masks + 0.1, 2), unit="× input")
    return out


def _targets_markdown(checks: list[dict]) -> list[str]:
    lines = ["## Targets, checked against this run", "",
             "| target | where | measured | limit | met |", "|---|---|---:|---:|---|"]
    for c in checks:
        sign = "≤" if c["at_most"] else "≥"
        lines.append(f"| {c['target']} | {c['where']} | {c['value']:.2f} {c['unit']} | "
                     f"{sign} {c['limit']:g} | {'yes' if c['met'] else '**no**'} |")
    return lines + [""]


def to_markdown(rep: Report) -> str:
    hbm = rep.meta.get("hbm_gbs")
    lines = _header_markdown(rep.meta)
    checks = target_checks(rep)
    if checks:
        lines += _targets_markdown(checks)
    for shape in _shapes(rep):
        lines += _shape_markdown(rep, shape, hbm)
    if rep.masks:
        lines += _masks_markdown(rep.masks)
    if rep.train_step:
        lines += _train_step_markdown(rep.train_step)
    if rep.zeta_scaling:
        lines += _zeta_scaling_markdown(rep.zeta_scaling)
    return "\n".join(lines)


def _header_markdown(m: dict) -> list[str]:
    lines = [
        "# mixkit speed benchmark",
        "",
        f"Machine: {m['machine']}; device {m['device']}; torch {m['torch']}; threads {m['threads']}; "
        f"{m['date']}.",
        f"Command: `{m['command']}`",
        "",
        "Median ms per call after warm-up. *× floor*: time over one pre-allocated pass reading two "
        "batches and writing one. *× best peer*: over the fastest peer or official-style entry for the "
        "same method (targets: ≤ 1.0 at 128×3×32×32, ≤ 0.5 at 64×3×224×224 in the fastest mode). "
        "*mem*: extra bytes allocated per call over the input's size.",
        "",
    ]
    hbm = m.get("hbm_gbs")
    if hbm:
        lines += [f"*× HBM*: time over the HBM floor, three times the input's bytes (read two batches, "
                  f"write one) at {hbm:g} GB/s ({m.get('hbm_source', 'bandwidth')}).", ""]
    return lines


def _shape_markdown(rep: Report, shape: tuple, hbm: float | None) -> list[str]:
    """One shape's table; with ``hbm`` (GB/s) its HBM floor and a × HBM column."""
    if hbm:
        nbytes = 4 * math.prod(shape)  # float32 inputs
        lines = [f"## {_shape_name(shape)}", "",
                 f"HBM floor: {hbm_floor_ms(nbytes, hbm):.4f} ms (3 × {nbytes / 1e6:.2f} MB at "
                 f"{hbm:g} GB/s).", "",
                 "| method | implementation | mode | ms | × floor | × HBM | × best peer | mem | note |",
                 "|---|---|---|---:|---:|---:|---:|---:|---|"]
    else:
        lines = [f"## {_shape_name(shape)}", "",
                 "| method | implementation | mode | ms | × floor | × best peer | mem | note |",
                 "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rep.rows:
        if tuple(r.shape) == shape:
            hbm_cell = f"{_fmt(r.vs_hbm)} | " if hbm else ""
            lines.append(
                f"| {r.method} | {r.impl} | {r.mode} | {_fmt(r.ms, 3)} | {_fmt(r.vs_floor)} | "
                f"{hbm_cell}{_fmt(r.vs_peer)} | {_fmt(r.extra_mem)} | {r.note} |"
            )
    return lines + [""]


def _masks_markdown(masks: list[dict]) -> list[str]:
    lines = ["## FMix masks per second (per-sample, batched) vs the official one-per-batch", "",
             "| shape | batch | mixkit masks/s | official-style masks/s | ratio |",
             "|---|---:|---:|---:|---:|"]
    for r in masks:
        shape = _shape_name(r["shape"])
        lines.append(f"| {shape} | {r['batch']} | {r['mixkit_masks_per_s']:.0f} | "
                     f"{_fmt(r.get('official_masks_per_s'), 0)} | {_fmt(r.get('ratio'), 1)} |")
    return lines + [""]


def _train_step_markdown(train_step: list[dict]) -> list[str]:
    lines = ["## Training step of a small CNN, batch 128×1×28×28", "",
             "Plain and mixed steps timed in pairs from the same model state; overhead = "
             "median over pairs of mixed / plain − 1.", "",
             "| mixer | plain ms | with mixer ms | overhead % |", "|---|---:|---:|---:|"]
    for r in train_step:
        lines.append(f"| {r['method']} | {r['plain_ms']:.2f} | {r['mixed_ms']:.2f} | "
                     f"{r['overhead_pct']:.1f} |")
    return lines + [""]


def _zeta_scaling_markdown(scaling: dict) -> list[str]:
    lines = ["## ζ-mixup cost growth", "", "| axis | value | mixkit ms | official-style ms |",
             "|---|---:|---:|---:|"]
    for axis, rows in scaling.items():
        for r in rows:
            official = _fmt(r.get("official_ms"), 3)
            lines.append(f"| {axis} | {r['x']} | {r['mixkit_ms']:.3f} | {official} |")
    return lines + [""]


def plot_zeta_scaling(scaling: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"batch": "batch size (3×32×32)", "size": "image side (batch 64, 3 channels)",
              "n_mix": "N samples per mix (batch 128, 3×32×32)"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (axis, rows) in zip(axes, scaling.items(), strict=False):
        xs = [r["x"] for r in rows]
        ax.plot(xs, [r["mixkit_ms"] for r in rows], "o-", label="mixkit")
        if any("official_ms" in r for r in rows):
            ax.plot(xs, [r["official_ms"] for r in rows], "s--", label="official-style")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(titles[axis])
        ax.set_ylabel("ms per call")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("ζ-mixup cost growth")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run(shapes=None, device="cpu", threads=2, repeats=15, peers=True, extras=True,
        out: str | Path | None = None, command: str = "", bandwidth_gbs: float | None = None) -> Report:
    """Measure, and write bench.md and bench.json into ``out`` when given. On CUDA each row also
    gets its ratio to the HBM floor at ``bandwidth_gbs`` (default: see ``device_bandwidth_gbs``)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device}: CUDA is not available on this machine "
                           f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
    if bandwidth_gbs is not None and device.type != "cuda":
        raise ValueError(f"bandwidth_gbs: the HBM floor is for CUDA devices, got device {device}")
    torch.set_num_threads(threads)
    rep = Report()
    rep.meta = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "command": command or " ".join(sys.argv),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        bandwidth_gbs, source = device_bandwidth_gbs(device, bandwidth_gbs)
        rep.meta.update(cuda=torch.version.cuda, hbm_gbs=bandwidth_gbs, hbm_source=source)
        print(f"bench: HBM floor at {bandwidth_gbs:.0f} GB/s ({source})", file=sys.stderr, flush=True)
    for shape in shapes or DEFAULT_SHAPES:
        print(f"bench: {shape}", file=sys.stderr, flush=True)
        rep.rows += bench_shape(tuple(shape), device, repeats, peers=peers, bandwidth_gbs=bandwidth_gbs)
    if extras:
        print("bench: FMix masks", file=sys.stderr, flush=True)
        rep.masks = bench_masks(device, repeats)
        print("bench: training step", file=sys.stderr, flush=True)
        rep.train_step = bench_train_step(device, repeats)
        print("bench: zeta scaling", file=sys.stderr, flush=True)
        rep.zeta_scaling = bench_zeta_scaling(device, repeats)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "bench.md", to_markdown(rep))
        atomic_write_text(out / "bench.json", json.dumps(asdict(rep), indent=1, default=str))
        if rep.zeta_scaling:
            plot_zeta_scaling(rep.zeta_scaling, out / "zeta_scaling.png")
    return rep


def report_from_json(path: str | Path) -> Report:
    """A report written by :func:`run` (``bench.json``), to re-render or re-check it."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = {"rows", "masks", "train_step", "zeta_scaling", "meta"} - set(data)
    if missing:
        raise ValueError(f"{path}: expected a mixkit bench.json with rows, masks, train_step, "
                         f"zeta_scaling and meta, missing {sorted(missing)}")
    rows = [Row(**{**r, "shape": tuple(r["shape"])}) for r in data["rows"]]
    return Report(rows=rows, masks=data["masks"], train_step=data["train_step"],
                  zeta_scaling=data["zeta_scaling"], meta=data["meta"])


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().replace("x", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 128x3x32x32, got {text!r}") from None
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise argparse.ArgumentTypeError(f"expected a shape like 128x3x32x32, got {text!r}")
    return shape


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="mixkit bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", type=_parse_shape, nargs="+", default=None,
                   help="input shapes, e.g. 128x3x32x32 64x1x16000 (default: the standard five)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per entry (median reported)")
    p.add_argument("--no-peers", action="store_true", help="skip peers and official-style")
    p.add_argument("--quick", action="store_true", help="only the shape tables")
    p.add_argument("--out", default=None, help="directory for bench.md, bench.json, zeta_scaling.png")
    p.add_argument("--bandwidth-gbs", type=float, default=None, metavar="GB/S",
                   help="CUDA: memory bandwidth for the HBM floor column (default: 4800 on an H200, "
                   "else measured from a large device-to-device copy)")
    return p


def main(argv=None, args=None) -> int:
    if args is None:
        args = build_parser().parse_args(argv)
    if args.threads < 1:
        print(f"mixkit bench: --threads expected >= 1, got {args.threads}", file=sys.stderr)
        return 2
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"mixkit bench: --device expected cpu, cuda or cuda:N, got {args.device!r}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"mixkit bench: --device {args.device}: CUDA is not available on this machine (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        return 2
    bandwidth = getattr(args, "bandwidth_gbs", None)
    if bandwidth is not None:
        if device.type != "cuda":
            print("mixkit bench: --bandwidth-gbs applies to --device cuda (the HBM floor)", file=sys.stderr)
            return 2
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            print(f"mixkit bench: --bandwidth-gbs expected a positive number, got {bandwidth}",
                  file=sys.stderr)
            return 2
    if args.out is not None:            # a bad --out fails now, not after the measurements
        os.makedirs(args.out, exist_ok=True)
        if not os.access(args.out, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "the directory is not writable", str(args.out))
    rep = run(args.shapes, device, args.threads, args.repeats, peers=not args.no_peers,
              extras=not args.quick, out=args.out, command="mixkit bench " + " ".join(argv or sys.argv[1:]),
              bandwidth_gbs=bandwidth)
    print(to_markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
