"""Timers, memory probes and memory bandwidth: medians of repeated calls after warm-up (CUDA:
events with synchronisation), the bytes one call allocates, and the HBM floor on CUDA."""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cuda_ms(fn: Callable[[], object], device: torch.device) -> float:
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
    sync(device)
    times = []
    start_all = time.perf_counter()
    for _ in range(repeats):
        if device.type == "cuda":
            times.append(cuda_ms(fn, device))
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
