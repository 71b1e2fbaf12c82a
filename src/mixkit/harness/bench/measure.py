"""Measuring: the rows of one input shape (the floor, mixkit's entries, the peers, the reference
implementations), FMix masks per second, a small CNN's training step with each mixer, zeta-mixup's
cost growth, and ``run``, which does all of it and writes the reports."""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from mixkit import functional as F
from mixkit.mixers import ZetaMixup

from ..files import atomic_write_text
from . import entries, references
from .records import NUM_CLASSES, Report, Row
from .report import plot_zeta_scaling, to_markdown
from .timing import cuda_ms, device_bandwidth_gbs, extra_memory_bytes, hbm_floor_ms, sync, time_ms

DEFAULT_SHAPES = [
    (128, 3, 32, 32),
    (64, 3, 224, 224),
    (256, 1, 40),
    (64, 1, 16000),
    (16, 1, 32, 32, 32),
]


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
    for method, impl, mode, mixer in entries.mixkit_entries(x.ndim):
        _check_mix_output(mixer(x, y, generator=g), x, f"mixkit {method} {mode}")
        add(method, impl, mode, lambda m=mixer: m(x, y, generator=g))
    if peers:
        for method, impl, mode, peer in entries.peer_entries(x.ndim, shape[0]):
            if impl.startswith("timm"):
                add(method, impl, mode, lambda p=peer: p(x, y), "mixes its input in place", may_fail=True)
            else:
                add(method, impl, mode, lambda p=peer: p(x, y), may_fail=True)
        if device.type == "cpu":
            for method, impl, mode, fn in entries.official_entries(x.ndim):
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
            ms_off = time_ms(lambda s=spatial: references.official_fmix_mask(s), device, repeats)
            row["official_masks_per_s"] = 1e3 / ms_off
            row["ratio"] = row["mixkit_masks_per_s"] / row["official_masks_per_s"]
        out.append(row)
    return out


def bench_train_step(device, repeats) -> list[dict]:
    """Time of one training step of a small CNN on a Fashion-MNIST-sized batch, plain and with
    each input-space mixer (mixing inside the step)."""
    torch.manual_seed(0)
    model = small_cnn().to(device)
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

    mixers = entries.train_step_mixers()
    time_from_start = _step_timer(model, opt, device)
    out = []
    for name, mixer in mixers.items():
        plain, mixed = _paired_step_times(time_from_start, step, functools.partial(step, mixer), repeats)
        ratio = statistics.median(m / p for m, p in zip(mixed, plain, strict=True))
        out.append({"method": name, "plain_ms": statistics.median(plain),
                    "mixed_ms": statistics.median(mixed), "overhead_pct": 100 * (ratio - 1)})
    return out


def _step_timer(model: torch.nn.Module, opt: torch.optim.Optimizer, device) -> Callable:
    """``timed(fn)``: ms of one call of ``fn`` started from the weights and optimiser state that
    ``model`` and ``opt`` have now."""
    start = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())

    def timed(fn) -> float:
        model.load_state_dict(start[0])
        opt.load_state_dict(start[1])
        sync(device)
        if device.type == "cuda":
            return cuda_ms(fn, device)
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


def small_cnn() -> torch.nn.Module:
    """The harness's small CNN for 1x28x28 Fashion-MNIST images (the training-step benchmark)."""
    from ..models import build_model

    return build_model("small-cnn", num_classes=NUM_CLASSES, input_shape=(1, 28, 28))


def _fashion_batch(batch: int, device) -> torch.Tensor:
    """The first ``batch`` Fashion-MNIST test images in [0, 1] when the Debian package is installed,
    else random pixels."""
    from ..data.datasets import load_fashion_mnist

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
        row["official_ms"] = time_ms(lambda: references.official_zeta(x, y), device, repeats)
    return row


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
