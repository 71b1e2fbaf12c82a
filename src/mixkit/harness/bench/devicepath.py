"""The device path without a GPU: what one call costs where users train, measured on the CPU.

    mixkit bench --device-path            # python -m mixkit.harness.bench --device-path

mixkit takes its host fast paths only for CPU tensors in eager mode
(``mixkit.functional.execution``); on an accelerator every decision is made with tensor
operations. Two measurements stand in for a GPU here:

- **ops per call**: every aten operation one call dispatches, counted by a ``TorchDispatchMode``
  (``OpCounter``) on a **meta** batch (the device path runs, nothing executes), after one warm-up
  call (the caches filled, as in training); for mixkit also split into ``sample`` and ``apply``
  and into those that touch a device tensor ("on meta") and those on CPU tensors only (the CPU
  generator's draws); "≈ launches" are the ops on meta that are neither views nor bare
  allocations, about the kernels a GPU would launch. mixkit's mixers get a CPU generator (the
  library's contract: it drives the device draws). The peers, torchvision v2 ``MixUp``/``CutMix``
  (one lam per batch) and kornia ``RandomMixUpV2``/``RandomCutMixV2`` (per sample), are counted
  the same way; a peer that fails on meta is reported as failed.
- **host µs per call**: the device path *forced* on a small CPU batch (``forced_device_path``
  makes ``host_readable`` and ``on_host`` answer False everywhere in mixkit), median of repeated
  calls, beside mixkit's own host path on the same batch and the peers', the entries taking
  turns in short bursts of calls (``time_interleaved``). The host side of a call
  on a GPU is of this order (here the kernels also run, on a small batch), and each "≈ launches"
  op is a kernel launch there.

With ``compile``, the kernels inductor generates for ``torch.compile(mixer.apply)`` on the small
CPU batch (``torch._inductor.metrics.generated_kernel_count``, reset before each; under
torch.compile mixkit takes the device path anyway), and for a whole call ``mixer(x, y)`` without a
generator compiled with ``fullgraph=True`` (``compiled_call_launches``: its draws are traced
too) the generated kernels and the other launches of inductor's wrapper code (ATen fallbacks
such as ``randperm`` or an FFT, extern kernels such as a convolution). The callers table names, per entry, the
mixkit functions that dispatch the most ops (innermost mixkit frame of each op).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch
from torch.utils import _pytree
from torch.utils._python_dispatch import TorchDispatchMode

import mixkit
from mixkit.functional import execution

from . import entries

META_SHAPE = (256, 3, 224, 224)
SMALL_SHAPE = (32, 3, 32, 32)
CLASSES = 1000
PEERS = ("torchvision v2", "kornia")
_LIBRARY = os.path.dirname(os.path.abspath(mixkit.__file__)) + os.sep
_HARNESS = os.path.join(_LIBRARY, "harness") + os.sep
_ALLOCATIONS = {torch.ops.aten.empty, torch.ops.aten.empty_like, torch.ops.aten.empty_strided,
                torch.ops.aten.new_empty}  # memory only, no kernel


class OpCounter(TorchDispatchMode):
    """Counts every aten operation dispatched while it is active: ``total``, ``by_op`` (by
    overload packet, e.g. ``aten.mul``), ``on_device`` (those with a tensor argument or result
    off the CPU), ``launches`` (those on the device that are neither views nor bare allocations:
    about the kernels a GPU would launch) and, with ``callers``, ``by_caller`` (the innermost
    mixkit library function on the Python stack, ``functional/masks.py:box_masks``; ``-`` when
    none)."""

    def __init__(self, callers: bool = False):
        super().__init__()
        self.callers = callers
        self.total = 0
        self.on_device = 0
        self.launches = 0
        self.by_op: collections.Counter = collections.Counter()
        self.by_caller: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.total += 1
        self.by_op[str(func.overloadpacket)] += 1
        leaves = _pytree.tree_leaves((args, kwargs, out))
        if any(isinstance(t, torch.Tensor) and t.device.type != "cpu" for t in leaves):
            self.on_device += 1
            self.launches += not (func.is_view or func.overloadpacket in _ALLOCATIONS)
        if self.callers:
            self.by_caller[_caller()] += 1
        return out


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_LIBRARY) and not path.startswith(_HARNESS):
            return f"{os.path.relpath(path, _LIBRARY)}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "-"


def count_ops(fn, callers: bool = False) -> OpCounter:
    """The ops one call of ``fn()`` dispatches."""
    with OpCounter(callers) as counter:
        fn()
    return counter


def _never(*_) -> bool:
    return False


def _patch_targets() -> list[tuple]:
    """``(module, name, original)`` for every loaded mixkit module's ``host_readable`` and
    ``on_host`` (the execution module's, and the names other modules imported from it)."""
    originals = {"host_readable": execution.host_readable, "on_host": execution.on_host}
    out = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "mixkit" or name.startswith("mixkit.")):
            continue
        out += [(module, attr, original) for attr, original in originals.items()
                if getattr(module, attr, None) is original]
    return out


def _force(targets: list[tuple], forced: bool) -> None:
    for module, attr, original in targets:
        setattr(module, attr, _never if forced else original)


@contextlib.contextmanager
def forced_device_path():
    """mixkit's device path on CPU tensors: ``host_readable`` and ``on_host`` answer False
    everywhere in mixkit until the block ends."""
    targets = _patch_targets()
    _force(targets, True)
    try:
        yield
    finally:
        _force(targets, False)


def time_interleaved(fns: list[tuple], calls: int, burst: int = 5, warmup: int = 1) -> list[float]:
    """Median host µs per call of each ``(fn, forced)`` (``forced``: with the device path forced)
    over ``calls`` timed calls, taken in rounds: each round gives every ``fn`` in turn ``warmup``
    untimed then ``burst`` timed consecutive calls, so that drift on a shared machine hits every
    entry alike while each call still finds its own work in the caches."""
    targets = _patch_targets()
    times: list[list[float]] = [[] for _ in fns]
    try:
        while len(times[0]) < calls:
            for i, (fn, forced) in enumerate(fns):
                _force(targets, forced)
                for _ in range(warmup):
                    fn()
                for _ in range(min(burst, calls - len(times[i]))):
                    t0 = time.perf_counter_ns()
                    fn()
                    times[i].append((time.perf_counter_ns() - t0) / 1e3)
    finally:
        _force(targets, False)
    return [statistics.median(t) for t in times]


def kernel_count(mixer, x, y, generator) -> int:
    """Kernels inductor generates for ``torch.compile(mixer.apply)`` on ``(x, y)`` with
    parameters drawn beforehand (dynamo and the metrics reset first)."""
    from torch._inductor import metrics

    params = mixer.sample(x, generator=generator)
    torch._dynamo.reset()
    metrics.reset()
    torch.compile(mixer.apply)(x, y, params)
    return metrics.generated_kernel_count


# A launch in inductor's wrapper code: a generated kernel, or a call it leaves to ATen (a
# fallback such as randperm or an FFT, an extern kernel such as a convolution, a copy).
_GENERATED = re.compile(r"^\s*(?:\w+\s*=\s*)?(cpp_fused_\w+|triton_\w+)[.(]")
_OTHER = re.compile(r"^\s*(?:\w+\s*=\s*)?(extern_kernels\.\w+|torch\.ops\.\w+\.\w+|aten\.\w+"
                    r"|\w+\.copy_)[.(]")
_NOT_LAUNCHES = ("_assert_async", "_assert_scalar", "empty_strided", "reinterpret_tensor")


def wrapper_launches(code: str) -> tuple[int, collections.Counter]:
    """Calls of generated functions and the other launches (``Counter`` by callee) in the ``call`` function of
    inductor's wrapper ``code``."""
    body = code[code.index("def call("):].splitlines()[1:]
    generated, other = 0, collections.Counter()
    for line in body:
        if line and not line.startswith((" ", "\t")):
            break  # the end of call()
        if _GENERATED.match(line):
            generated += 1
        elif (m := _OTHER.match(line)) and not any(n in m.group(1) for n in _NOT_LAUNCHES):
            name = m.group(1)
            other["copy_" if name.endswith(".copy_") else name.removeprefix("torch.ops.")] += 1
    return generated, other


def launch_names(counts) -> str:
    """``Counter``/dict of launches by callee as ```name` n, ...``, most first."""
    return ", ".join(f"`{k}` {n}" for k, n in collections.Counter(counts).most_common())


def compiled_call_launches(mixer, x, y) -> tuple[int, collections.Counter]:
    """Inductor's launches for one whole call ``mixer(x, y)`` without a generator (its draws traced
    with the rest): ``(generated kernels, other launches by callee)``. The kernels are
    ``torch._inductor.metrics.generated_kernel_count`` (on the CPU one C++ function of the
    wrapper may hold several of them; on a GPU each is a launch); the other launches are read from
    the wrapper code."""
    from torch._inductor import metrics
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    metrics.reset()
    _, codes = run_and_get_code(torch.compile(lambda a, b: mixer(a, b), fullgraph=True), x, y)
    calls, other = 0, collections.Counter()
    for code in codes:
        g, o = wrapper_launches(code)
        calls += g
        other += o
    if not codes or calls > metrics.generated_kernel_count:
        raise RuntimeError(f"compiled call of {type(mixer).__name__}: {len(codes)} wrapper modules calling "
                           f"{calls} generated functions, {metrics.generated_kernel_count} kernels generated")
    return metrics.generated_kernel_count, other


# The entries whose eager device path is over issue 24's op bounds, for ``compiled_calls`` on a GPU.
OVER_EAGER_BOUNDS = tuple(tuple(e) for e in entries.BENCH["compiled_on_device"])


def compiled_calls(device, which=OVER_EAGER_BOUNDS, budget_s: float = 180.0,
                   num_classes: int = CLASSES) -> tuple[str, list[str]]:
    """``compiled_call_launches`` for the entries ``which`` on a small batch on ``device``, as a
    markdown table, and the entries left out because compiling had run past ``budget_s`` seconds
    when their turn came."""
    _, (x, y) = _batches(num_classes)
    x, y = x.to(device), y.to(device)
    found = {(m, mode): mixer for m, _, mode, mixer in entries.mixkit_entries(4, num_classes)}
    lines = ["| mixer | mode | kernels | other launches | compile s |", "|---|---|---:|---|---:|"]
    left, start = [], time.perf_counter()
    for i, key in enumerate(which):
        if i and time.perf_counter() - start > budget_s:  # the first is always compiled
            left.append(" ".join(key))
            continue
        t0 = time.perf_counter()
        kernels, other = compiled_call_launches(copy.deepcopy(found[key]), x, y)
        lines.append(f"| {key[0]} | {key[1]} | {kernels} | {sum(other.values())}: {launch_names(other)} "
                     f"| {time.perf_counter() - t0:.1f} |")
    return "\n".join(lines) + "\n", left


@dataclass
class DeviceRow:
    method: str
    mode: str
    ops: int
    sample_ops: int
    apply_ops: int
    on_device: int
    launches: int
    us_device_path: float | None = None
    us_host_path: float | None = None
    kernels: int | None = None
    call_kernels: int | None = None
    call_other: dict | None = None
    callers: dict = field(default_factory=dict)
    by_op: dict = field(default_factory=dict)


@dataclass
class PeerRow:
    method: str
    impl: str
    mode: str
    ops: int | None
    launches: int | None
    us: float | None
    note: str = ""


@dataclass
class DevicePathReport:
    rows: list[DeviceRow] = field(default_factory=list)
    peers: list[PeerRow] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _batches(num_classes: int):
    data = torch.Generator().manual_seed(0)
    meta = (torch.empty(META_SHAPE, device="meta"),
            torch.empty(META_SHAPE[0], dtype=torch.int64, device="meta"))
    small = (torch.rand(SMALL_SHAPE, generator=data),
             torch.randint(0, num_classes, (SMALL_SHAPE[0],), generator=data))
    return meta, small


def _check_meta(out, what: str) -> None:
    """The mixed batch and soft labels stayed on meta, in the input's shape (no host read, no copy)."""
    mixed, soft = out[0], out[1]
    if mixed.device.type != "meta" or soft.device.type != "meta" or tuple(mixed.shape) != META_SHAPE:
        raise RuntimeError(f"device path: {what} returned mixed {tuple(mixed.shape)} on {mixed.device}, "
                           f"soft on {soft.device} for a meta batch {META_SHAPE}")


def _apply_as_called(mixer, x, y, params):
    """The apply half of a call ``mixer(x, y)``: parameters just drawn, so without the replay
    checks that ``mixer.apply`` runs on parameters from elsewhere."""
    mixer._check_call(x)
    return mixer._apply_soft(x, mixer.targets(x, y), params, None, check=False)


def measure_mixkit(method, mode, mixer, meta, small, compile_kernels: bool) -> DeviceRow:
    """One mixkit entry's op counts on ``meta`` (and with ``compile_kernels`` its kernel count on
    ``small``); the host times are filled in by ``run``."""
    g = torch.Generator().manual_seed(0)
    x, y = meta
    _check_meta(mixer(x, y, generator=g), f"mixkit {method} {mode}")  # warm-up: caches filled
    state, twin = g.get_state(), copy.deepcopy(mixer)
    whole = count_ops(lambda: mixer(x, y, generator=g), callers=True)
    g.set_state(state)  # the twin makes the same draws (and an alternating mixer takes the same branch)
    params = []
    sample = count_ops(lambda: params.append(twin.sample(x, generator=g)))
    apply = count_ops(lambda: _apply_as_called(twin, x, y, params[0]))
    kernels = call_kernels = call_other = None
    if compile_kernels:
        with forced_device_path():
            kernels = kernel_count(copy.deepcopy(mixer), *small, g)
        call_kernels, other = compiled_call_launches(copy.deepcopy(mixer), *small)
        call_other = dict(other.most_common())
    return DeviceRow(method, mode, whole.total, sample.total, apply.total, whole.on_device, whole.launches,
                     kernels=kernels, call_kernels=call_kernels, call_other=call_other,
                     callers=dict(whole.by_caller.most_common()),
                     by_op=dict(whole.by_op.most_common()))


def measure_peer(method, impl, mode, peer, meta, small) -> PeerRow:
    """One peer's op count on ``meta`` (or why it failed there), and whether it runs on ``small``
    (its host time is filled in by ``run``)."""
    note, counter = "", None
    try:
        peer(*meta)
        counter = count_ops(lambda: peer(*meta))
    except Exception as exc:  # a peer that rejects meta tensors is reported, not hidden
        note = f"failed on meta: {type(exc).__name__}"
    try:
        peer(*small)
    except Exception as exc:
        note = (note + "; " if note else "") + f"failed on CPU: {type(exc).__name__}"
    ops, launches = (None, None) if counter is None else (counter.total, counter.launches)
    return PeerRow(method, impl, mode, ops, launches, None, note)


def _time_rows(rep: DevicePathReport, mixers: list, peers: list, small, calls: int) -> None:
    """Every entry's host µs on ``small``, interleaved: mixkit's forced device path and host path,
    and the peers that ran on the CPU."""
    xs, ys = small
    g = torch.Generator().manual_seed(0)
    fns = [(lambda m=m: m(xs, ys, generator=g), forced) for m in mixers for forced in (True, False)]
    timed = [(row, peer) for row, peer in zip(rep.peers, peers, strict=True)
             if "failed on CPU" not in row.note]
    fns += [(lambda p=peer: p(xs, ys), False) for _, peer in timed]
    us = time_interleaved(fns, calls)
    for i, row in enumerate(rep.rows):
        row.us_device_path, row.us_host_path = us[2 * i], us[2 * i + 1]
    for (row, _), v in zip(timed, us[2 * len(mixers):], strict=True):
        row.us = v


def run(calls: int = 200, peers: bool = True, compile_kernels: bool = True,
        num_classes: int = CLASSES) -> DevicePathReport:
    """Every mixkit entry for image batches (``entries.mixkit_entries(4)``) and, with ``peers``,
    torchvision's and kornia's mixers: op counts on meta, host times on a small CPU batch."""
    import warnings

    meta, small = _batches(num_classes)
    rep = DevicePathReport(meta={
        "meta_shape": list(META_SHAPE), "small_shape": list(SMALL_SHAPE), "num_classes": num_classes,
        "calls": calls, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "mixkit": mixkit.__version__, "python": platform.python_version()})
    mixers = []
    for method, _, mode, mixer in entries.mixkit_entries(4, num_classes):
        rep.rows.append(measure_mixkit(method, mode, mixer, meta, small, compile_kernels))
        mixers.append(mixer)
    found = []
    with warnings.catch_warnings():  # kornia's notice about its CutMix lambda, once per call
        warnings.simplefilter("ignore")
        for method, impl, mode, peer in entries.peer_entries(4, SMALL_SHAPE[0], num_classes) if peers else ():
            if impl in PEERS:
                rep.peers.append(measure_peer(method, impl, mode, peer, meta, small))
                found.append(peer)
        _time_rows(rep, mixers, found, small, calls)
    return rep


def _peer_for(rep: DevicePathReport, row: DeviceRow, impl: str) -> PeerRow | None:
    """The peer's row for a mixkit row: the same method and the same kind of lam (batch or per
    sample, the mode's first word)."""
    kind = row.mode.split()[0]
    return next((p for p in rep.peers if p.impl == impl and p.method == row.method and p.mode == kind), None)


def _ops_cell(p: PeerRow | None) -> str:
    if p is None:
        return "–"
    return f"{p.ops} / {p.launches}" if p.ops is not None else p.note


def _us_cell(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


def _compiled_cell(r: DeviceRow) -> str:
    if r.call_kernels is None:
        return "–"
    return f"{r.call_kernels} + {sum(r.call_other.values())}"


def to_markdown(rep: DevicePathReport, top: int = 4) -> str:
    """The op counts and host times, one row per mixkit entry, the peers beside the rows of the
    same method and kind of lam; then the mixkit functions that dispatch the most ops."""
    m = rep.meta
    lines = [
        f"Ops: one call on a meta batch {'×'.join(map(str, m['meta_shape']))}, {m['num_classes']} classes "
        "(int64 labels), after a warm-up call; host µs: median of "
        f"{m['calls']} calls on a CPU batch {'×'.join(map(str, m['small_shape']))}, {m['threads']} threads; "
        f"torch {m['torch']}, mixkit {m['mixkit']}.",
        "",
        "| mixer | mode | ops mixkit | sample + apply | on meta | ≈ launches "
        "| ops / ≈ launches torchvision v2 | ops / ≈ launches kornia | µs mixkit device path (forced) "
        "| µs mixkit host path | µs torchvision v2 | µs kornia | inductor kernels (apply) "
        "| inductor, whole call: kernels + other launches |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep.rows:
        tv, ko = _peer_for(rep, r, PEERS[0]), _peer_for(rep, r, PEERS[1])
        lines.append(
            f"| {r.method} | {r.mode} | {r.ops} | {r.sample_ops} + {r.apply_ops} | {r.on_device} "
            f"| {r.launches} | {_ops_cell(tv)} | {_ops_cell(ko)} "
            f"| {_us_cell(r.us_device_path)} | {_us_cell(r.us_host_path)} "
            f"| {_us_cell(tv and tv.us)} | {_us_cell(ko and ko.us)} "
            f"| {'–' if r.kernels is None else r.kernels} | {_compiled_cell(r)} |")
    if any(r.call_other for r in rep.rows):
        lines += ["", "The other launches of a compiled whole call (ATen fallbacks, extern kernels, copies):",
                  "", "| mixer | mode | launches |", "|---|---|---|"]
        lines += [f"| {r.method} | {r.mode} | {launch_names(r.call_other)} |"
                  for r in rep.rows if r.call_other]
    notes = [f"{p.impl} {p.method}: {p.note}" for p in rep.peers if p.note]
    if notes:
        lines += ["", "Peers: " + "; ".join(notes) + "."]
    lines += ["", "Where mixkit's ops go (one call on meta; caller: the innermost mixkit function):",
              "", "| mixer | mode | ops | top callers (ops) | top aten ops |", "|---|---|---:|---|---|"]
    for r in rep.rows:
        callers = ", ".join(f"`{name}` {n}" for name, n in list(r.callers.items())[:top])
        ops = ", ".join(f"`{name.removeprefix('aten.')}` {n}" for name, n in list(r.by_op.items())[:top])
        lines.append(f"| {r.method} | {r.mode} | {r.ops} | {callers} | {ops} |")
    return "\n".join(lines) + "\n"


def main(args, command: str) -> int:
    """``mixkit bench --device-path``: measure, print the tables, write ``devicepath.md`` and
    ``devicepath.json`` to ``--out`` when given."""
    import json
    from dataclasses import asdict

    from ..files import atomic_write_text

    torch.set_num_threads(args.threads)
    rep = run(calls=args.calls, peers=not args.no_peers, compile_kernels=not args.no_compile)
    rep.meta["command"] = command
    md = to_markdown(rep)
    if args.out is not None:
        atomic_write_text(os.path.join(args.out, "devicepath.md"), md)
        atomic_write_text(os.path.join(args.out, "devicepath.json"), json.dumps(asdict(rep), indent=1))
    print(md)
    return 0
