"""Mixers on a real CUDA device: no synchronisation (sync debug mode "error"), CPU and CUDA
generators, reproducibility, autocast dtypes and device-side label checks.

Run with ``python -m pytest tests/test_cuda.py --device cuda``; without ``--device cuda`` every
test here is skipped.
"""

import contextlib
import os
import subprocess
import sys

import pytest
import torch
from test_mixers_contract import FACTORIES, C
from torch import nn

import mixkit


@pytest.fixture(autouse=True)
def cuda(device):
    if device.type != "cuda":
        pytest.skip("CUDA tests: run with --device cuda on a machine with an NVIDIA GPU")
    return device


@contextlib.contextmanager
def sync_debug_error():
    """Any synchronising CUDA call inside raises (torch.cuda.set_sync_debug_mode("error"))."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def _generator(kind, device, seed=0):
    if kind == "none":
        return None
    if kind == "cpu":
        return torch.Generator().manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def _data(device, shape=(6, 3, 8, 8), seed=0):
    """Images, class ids and probability rows made on the CPU and moved to ``device`` (before any
    sync-debug region: a host-to-device copy from pageable memory synchronises)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    ids = torch.randint(0, C, (shape[0],), generator=g)
    probs = torch.rand(shape[0], C, generator=g).softmax(1)
    out = tuple(t.to(device) for t in (x, ids, probs))
    torch.cuda.synchronize(device)
    return out


def _check_outputs(mixed, soft, x_shape, device):
    assert mixed.device == device and soft.device == device
    assert mixed.shape == x_shape and soft.shape == (x_shape[0], C)
    assert soft.dtype == torch.float32
    assert bool(torch.isfinite(mixed).all())
    torch.testing.assert_close(soft.sum(1), torch.ones(x_shape[0], device=device))


# ---------------------------------------------------------------------------------------------
# (a) No synchronisation: the call, and sample + apply, under sync debug mode "error".


@pytest.mark.parametrize("generator", ["none", "cpu", "cuda"])
@pytest.mark.parametrize("name", FACTORIES)
def test_mixers_make_no_sync_under_sync_debug_error(name, generator, device):
    x, ids, probs = _data(device)
    mixer = FACTORIES[name]()
    gen = _generator(generator, device)
    outputs = []
    with sync_debug_error():
        for labels in (ids, probs):
            outputs.append(mixer(x.clone(), labels, generator=gen))
            params = mixer.sample(x, generator=gen)
            outputs.append(mixer.apply(x.clone(), labels, params))
    torch.cuda.synchronize(device)
    for mixed, soft in outputs:
        _check_outputs(mixed, soft, x.shape, device)


def test_sync_debug_mode_is_restored_and_catches_a_sync(device):
    before = torch.cuda.get_sync_debug_mode()
    t = torch.ones(3, device=device)
    with pytest.raises(RuntimeError, match="synchroniz"), sync_debug_error():
        t.sum().item()
    assert torch.cuda.get_sync_debug_mode() == before


# ---------------------------------------------------------------------------------------------
# (b) Mixing inside a model: ManifoldMixup and SynerMix, forward and backward, no sync.


def _small_cnn(device):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, C)).to(device)


def _warm_up(model, x, y):
    """One plain training step outside the sync-debug region: cuDNN and cuBLAS set themselves up
    on first use; the mixing code is first called inside the region."""
    nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()


@pytest.mark.parametrize("generator", ["none", "cpu", "cuda"])
@pytest.mark.parametrize("layers", [[""], ["2"], ["", "2"]], ids=["input", "middle", "input-or-middle"])
@pytest.mark.parametrize("mixer", ["mixup", "zeta"])
def test_manifold_mixup_makes_no_sync_under_sync_debug_error(mixer, layers, generator, device):
    model = _small_cnn(device)
    x, y, _ = _data(device, (8, 3, 8, 8))
    _warm_up(model, x, y)
    inner = mixkit.MixUp(num_classes=C) if mixer == "mixup" else mixkit.ZetaMixup(num_classes=C)
    mm = mixkit.ManifoldMixup(model, layers, num_classes=C, mixer=inner)
    gen = _generator(generator, device, seed=1)
    chosen, losses = [], []
    with sync_debug_error():
        for _ in range(4):
            loss = mm.loss(x, y, generator=gen)
            loss.backward()
            chosen.append(mm.last_layer)
            losses.append(loss.detach())
            logits, soft = mm(x, y, generator=gen)
    torch.cuda.synchronize(device)
    assert set(chosen) <= set(layers) and len(chosen) == 4
    assert logits.shape == (8, C) and soft.device == device
    torch.testing.assert_close(soft.sum(1), torch.ones(8, device=device))
    assert bool(torch.isfinite(torch.stack(losses)).all())
    assert bool(model[0].weight.grad.abs().sum() > 0)


@pytest.mark.parametrize("generator", ["none", "cpu", "cuda"])
@pytest.mark.parametrize("single_pass", [False, True], ids=["two-pass", "single-pass"])
@pytest.mark.parametrize("inter", ["none", "mixup", "manifold"])
def test_synermix_makes_no_sync_under_sync_debug_error(inter, single_pass, generator, device):
    model = _small_cnn(device)
    x, y, _ = _data(device, (8, 3, 8, 8))
    augmented = x.flip(-1)
    _warm_up(model, x, y)
    inter_mixer = {"none": None, "mixup": mixkit.MixUp(num_classes=C),
                   "manifold": mixkit.ManifoldMixup(model, ["2"], num_classes=C)}[inter]
    syner = mixkit.SynerMix(model, "6", "7", beta=0.1, num_classes=C, inter=inter_mixer,
                            single_pass=single_pass)
    gen = _generator(generator, device, seed=2)
    with sync_debug_error():
        for _ in range(3):
            loss = syner.loss(x, augmented, y, generator=gen)
            loss.backward()
    torch.cuda.synchronize(device)
    assert loss.device == device and loss.dtype == torch.float32 and bool(torch.isfinite(loss))
    terms = syner.last_terms  # read back only now, outside the region
    assert all(v == v for v in terms.values()), terms
    assert bool(model[0].weight.grad.abs().sum() > 0)


# ---------------------------------------------------------------------------------------------
# (c) Reproducible on the device from a CPU generator; the global RNGs untouched.


@pytest.mark.parametrize("name", FACTORIES)
def test_same_cpu_seed_same_cuda_output_and_global_rngs_untouched(name, device):
    x, ids, probs = _data(device)
    cpu_state, cuda_state = torch.get_rng_state(), torch.cuda.get_rng_state(device)

    def run(seed, labels=ids):
        return FACTORIES[name]()(x.clone(), labels, generator=torch.Generator().manual_seed(seed))

    a, b = run(5), run(5)
    pa, pb = run(5, probs), run(5, probs)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(torch.cuda.get_rng_state(device), cuda_state), \
        "a CPU generator was given, yet the global CUDA generator moved"
    assert a[0].device == device
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(pa[0], pb[0]) and torch.equal(pa[1], pb[1])
    c, d = run(6), run(7)
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[0], d[0])), "the seed has no effect"


@pytest.mark.parametrize("name", FACTORIES)
def test_same_cuda_generator_seed_same_output(name, device):
    x, ids, _ = _data(device)
    cpu_state = torch.get_rng_state()
    outs = [FACTORIES[name]()(x.clone(), ids, generator=torch.Generator(device=device).manual_seed(9))
            for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


# ---------------------------------------------------------------------------------------------
# (d) Autocast does not change dtypes: float32 in, float32 out, float32 soft labels.


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", FACTORIES)
def test_autocast_keeps_dtypes_on_cuda(name, amp, device):
    x, ids, probs = _data(device)
    for labels in (ids, probs):
        eager = FACTORIES[name]()(x.clone(), labels, generator=torch.Generator().manual_seed(2))
        with torch.autocast("cuda", dtype=amp):
            mixed, soft = FACTORIES[name]()(x.clone(), labels, generator=torch.Generator().manual_seed(2))
            again, soft2 = mixkit.MixUp(num_classes=C)(mixed, soft, generator=torch.Generator())
        assert mixed.dtype == torch.float32 and soft.dtype == torch.float32
        assert again.dtype == torch.float32 and soft2.dtype == torch.float32
        torch.testing.assert_close(soft.sum(1), torch.ones(6, device=device))
        torch.testing.assert_close(soft2.sum(1), torch.ones(6, device=device))
        assert torch.equal(mixed, eager[0]) and torch.equal(soft, eager[1])
        with torch.autocast("cuda", dtype=amp):
            half, soft_h = FACTORIES[name]()(x.to(amp), labels, generator=torch.Generator().manual_seed(2))
        assert half.dtype == amp and soft_h.dtype == torch.float32
        torch.testing.assert_close(soft_h.sum(1), torch.ones(6, device=device))


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_hidden_layer_methods_on_cuda(amp, device):
    model = _small_cnn(device)
    x, y, _ = _data(device, (8, 3, 8, 8))
    for mixer in [None, mixkit.ZetaMixup(num_classes=C), mixkit.CutMix(num_classes=C)]:
        mm = mixkit.ManifoldMixup(model, ["", "2", "4"], num_classes=C, mixer=mixer)
        for seed in range(3):
            with torch.autocast("cuda", dtype=amp):
                logits, soft = mm(x, y, generator=torch.Generator().manual_seed(seed))
            assert logits.dtype == amp and soft.dtype == torch.float32
            torch.testing.assert_close(soft.sum(1), torch.ones(8, device=device))
    syner = mixkit.SynerMix(model, "6", "7", beta=0.1, num_classes=C,
                            inter=mixkit.ManifoldMixup(model, ["2"], mixer=mixkit.ZetaMixup(num_classes=C)))
    with torch.autocast("cuda", dtype=amp):
        loss = syner.loss(x, x.flip(-1), y, generator=torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and bool(torch.isfinite(loss))
    loss.backward()


# ---------------------------------------------------------------------------------------------
# (e) Bad labels on CUDA: no error at the call (nothing is read back), a device-side assert at
# the next synchronisation. In a subprocess: a device-side assert leaves the CUDA context unusable.

_BAD_LABELS = r"""
import os, sys
import torch
import mixkit

device = torch.device(sys.argv[1])
kind = sys.argv[2]
x = torch.rand(4, 3, 8, 8).to(device)
if kind == "ids":
    labels = torch.tensor([0, 1, 2, 7]).to(device)       # 7 classes: ids 0..6
else:
    labels = torch.full((4, 7), 0.5).to(device)          # rows sum to 3.5
torch.cuda.synchronize(device)
mixed, soft = mixkit.MixUp(num_classes=7)(x, labels, generator=torch.Generator().manual_seed(0))
print("CALL RETURNED", flush=True)
try:
    torch.cuda.synchronize(device)
except RuntimeError as err:
    print(f"RAISED {type(err).__name__} at synchronize: {err}", file=sys.stderr, flush=True)
    os._exit(3)
print("SYNCHRONIZED WITHOUT ERROR", flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("kind", ["ids", "probs"])
def test_bad_labels_raise_a_device_side_assert_at_the_next_synchronize(kind, device):
    env = dict(os.environ)
    env.pop("CUDA_LAUNCH_BLOCKING", None)
    src = os.path.dirname(os.path.dirname(os.path.abspath(mixkit.__file__)))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _BAD_LABELS, str(device), kind], capture_output=True,
                          text=True, env=env, timeout=300)
    report = f"returncode {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert "CALL RETURNED" in proc.stdout, "the call itself should not raise:\n" + report
    assert "SYNCHRONIZED WITHOUT ERROR" not in proc.stdout, report
    assert proc.returncode == 3, "expected a RuntimeError at torch.cuda.synchronize():\n" + report
    assert "RAISED" in proc.stderr and "device-side assert" in proc.stderr.lower(), report



# ---------------------------------------------------------------------------------------------
# CUDA graphs: apply, and a whole call without a generator, captured and replayed
# (the rules are checked without a GPU in tests/test_capture_safety.py)

_CAPTURED = [n for n in FACTORIES if not isinstance(FACTORIES[n](), (mixkit.RandomChoice, mixkit.Alternate))]


def _capture(fn, device):
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn()  # warm-up: fills the per-shape constants outside the capture
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


@pytest.mark.parametrize("name", _CAPTURED)
def test_apply_is_captured_in_a_cuda_graph_and_replays_equal_to_eager(name, device):
    x, ids, _ = _data(device)
    mixer = FACTORIES[name]()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(0))
    static_x = x.clone()
    graph, (mixed, soft) = _capture(lambda: mixer.apply(static_x.clone(), ids, params), device)
    for seed in (1, 2):
        fresh = _data(device, seed=seed)[0]
        static_x.copy_(fresh)
        graph.replay()
        want_mixed, want_soft = mixer.apply(fresh.clone(), ids, params)
        torch.testing.assert_close(mixed, want_mixed, rtol=0, atol=0)
        torch.testing.assert_close(soft, want_soft, rtol=0, atol=0)


@pytest.mark.parametrize("name", _CAPTURED)
def test_a_call_without_a_generator_is_captured_and_draws_anew_each_replay(name, device):
    x, ids, _ = _data(device, shape=(16, 3, 8, 8))
    mixer = FACTORIES[name]()
    graph, (mixed, soft) = _capture(lambda: mixer(x.clone(), ids), device)
    seen = []
    for _ in range(4):
        graph.replay()
        _check_outputs(mixed, soft, x.shape, device)
        seen.append(soft.clone())
    if getattr(mixer, "p", None) == 1.0:  # (with p < 1 four replays may all leave the batch alone)
        assert any(not torch.equal(seen[0], s) for s in seen[1:]), "every replay drew the same parameters"
