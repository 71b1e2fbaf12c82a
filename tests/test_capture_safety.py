"""What a CUDA graph needs of a mixer, checked without a GPU (issue 24, item 3).

A captured graph replays its kernels with the values they had at capture: it cannot hold a host
read (``.item()``), an output whose shape depends on data (``nonzero``, boolean indexing), a
host-to-device copy of a fresh host tensor, or a decision made on the host (those are frozen into
the graph). Meta tensors stand in for CUDA ones: a host read or a data-dependent shape raises on
them, and a watcher sees every op that brings a host tensor to the device or computes on the host.
The capture itself runs in ``tests/test_cuda.py`` (``--device cuda``). docs/benchmarks.md, "CUDA
graphs", states the rules these tests back.
"""

import functools
import sys

import grid
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import mixkit

C = 10
SHAPE = (8, 3, 16, 16)


class Watch(TorchDispatchMode):
    """Records the ops that take a host tensor into a device (meta) op, and the ops that compute
    on the host only."""

    def __init__(self):
        super().__init__()
        self.to_device, self.on_host, self.ops, self.ops_on_device = [], [], 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        if any(t.device.type == "meta" for t in tensors):
            self.ops_on_device.append(str(func))
            if any(t.device.type == "cpu" for t in tensors):
                self.to_device.append(str(func))
        elif tensors:
            self.on_host.append(str(func))
        return out


def _meta_batch():
    return torch.empty(SHAPE, device="meta"), torch.empty(SHAPE[0], dtype=torch.int64, device="meta")


def _host_choice(mixer) -> bool:
    """Compositions whose choice of mixer is Python control flow (documented as not capturable
    as one graph: each branch is)."""
    return isinstance(mixer, (mixkit.RandomChoice, mixkit.Alternate))


_ONE_EACH = set(grid.one_per_method(grid.mixers(C)))  # the fast subset; the full suite runs every case


@pytest.mark.parametrize("name", [n if n in _ONE_EACH else pytest.param(n, marks=pytest.mark.slow)
                                  for n in grid.mixers(C)])
def test_apply_and_the_call_without_a_generator_stay_on_the_device(name):
    mixer = grid.mixers(C)[name]()
    x, y = _meta_batch()
    mixer(x, y)  # the warm-up a capture needs (fills the per-shape constants)
    params = mixer.sample(x)
    applied, called = Watch(), Watch()
    with applied:
        mixed, soft = mixer.apply(x, y, params)
    with called:
        mixer(x, y)
    assert applied.ops > 0 and mixed.device.type == "meta" and soft.device.type == "meta"
    assert applied.to_device == [] and applied.on_host == [], (applied.to_device, applied.on_host)
    assert called.to_device == [], called.to_device
    if _host_choice(mixer):
        return
    assert called.on_host == [], called.on_host


def test_a_host_choice_is_seen_on_the_host():
    # the watcher can fail: RandomChoice draws its choice on the host and reads it back
    choice = grid.mixers(C)["choice"]()
    x, y = _meta_batch()
    with Watch() as watch:
        choice(x, y)
    assert "aten._local_scalar_dense.default" in watch.on_host


def test_a_host_tensor_brought_to_the_device_is_seen():
    x, _ = _meta_batch()
    with Watch() as watch:
        x + torch.ones(SHAPE[1:]).to(x.device)  # a host tensor copied to the device
    assert watch.to_device


def test_a_generator_draws_on_the_host():
    # a torch.Generator on the CPU seeds the device draws from host draws: such calls are eager
    # only (the README); capture apply with parameters drawn outside, or call without one
    mixer = mixkit.MixUp(num_classes=C)
    x, y = _meta_batch()
    with Watch() as watch:
        mixer(x, y, generator=torch.Generator().manual_seed(0))
    assert watch.on_host


@pytest.mark.parametrize("cls", [mixkit.MixUp, mixkit.CutMix, mixkit.FMix])
def test_a_cpu_generator_draws_the_batch_lam_on_the_host_and_no_generator_on_the_device(cls):
    # with a CPU generator, a batch-level lam (and CutMix's box, FMix's k) is drawn on the host
    # (Python numbers, then one fill); without one every draw is a device op
    mixer = cls(num_classes=C)
    x, y = _meta_batch()
    mixer.sample(x, generator=torch.Generator().manual_seed(1))  # the caches filled
    with Watch() as given:
        mixer.sample(x, generator=torch.Generator().manual_seed(0))
    with Watch() as none:
        mixer.sample(x)
    assert "aten._standard_gamma.default" in given.on_host and given.to_device == []
    assert not any("gamma" in op for op in given.ops_on_device)
    assert none.on_host == [] and none.to_device == []


@pytest.mark.parametrize("name", [n for n in grid.one_per_method(grid.mixers(C))
                                  if not _host_choice(grid.mixers(C)[n]())])
def test_shapes_are_static(name):
    # every output and parameter shape follows from the input shapes alone (a host choice picks
    # between parameter records of different shapes: one graph per branch)
    mixer = grid.mixers(C)[name]()
    x, y = _meta_batch()
    shapes = []
    for _ in range(3):
        params = mixer.sample(x)
        mixed, soft = mixer.apply(x, y, params)
        shapes.append((tuple(mixed.shape), tuple(soft.shape), _param_shapes(params)))
    assert shapes[0][:2] == (SHAPE, (SHAPE[0], C))
    assert shapes.count(shapes[0]) == 3, shapes


def _param_shapes(params):
    if isinstance(params, mixkit.MixParams):
        return tuple((k, tuple(v.shape)) for k, v in params.tensors())
    return tuple(_param_shapes(p) for p in getattr(params, "parts", ()))


def _caches():
    """Every ``functools.lru_cache`` in mixkit's modules: its current size."""
    out = {}
    for mod_name, module in list(sys.modules.items()):
        if not mod_name.startswith("mixkit.") or "harness" in mod_name:
            continue
        for attr, value in vars(module).items():
            if isinstance(value, functools._lru_cache_wrapper):
                out[f"{mod_name}.{attr}"] = value.cache_info().currsize
    return out


@pytest.mark.parametrize("name", grid.one_per_method(grid.mixers(C)))
def test_one_warm_up_call_fills_every_cache(name):
    # a constant first made inside a capture would come from the graph's pool, unfilled until a
    # replay; after one eager call a second call makes none
    mixer = grid.mixers(C)[name]()
    x, y = _meta_batch()
    mixer(x, y)
    before = _caches()
    assert before, "no caches found: the check would pass vacuously"
    mixer(x, y)
    assert _caches() == before
