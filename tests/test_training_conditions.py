"""Mixers where users train: autograd at hidden-layer sizes, autocast, no host reads of device
data, torch.compile. Each mixer's gradient is checked against a slow per-sample reference."""

import math

import grid
import pytest
import torch
from test_mixers_contract import FACTORIES, INPLACE, C
from torch import nn

import mixkit
from mixkit.compose import ComposedParams
from mixkit.functional import labels as labels_module

# ---------------------------------------------------------------------------------------------
# The slow, obviously correct reference: one sample at a time, float64, from the parameters.


def _box_mask_loop(box, spatial):
    mask = torch.ones(spatial, dtype=torch.float64)
    region = tuple(slice(int(lo), int(hi)) for lo, hi in box.tolist())
    mask[region] = 0.0
    return mask


def _resize_axis(t, dim, size, resample):
    """``t`` resized along ``dim`` to ``size`` at pixel centres (F.interpolate's convention),
    coordinates in Python floats (F.interpolate itself rounds its scale to float32)."""
    n = t.shape[dim]
    picks = []
    for p in range(size):
        if resample == "nearest":
            k = min(((2 * p + 1) * n) // (2 * size), n - 1)
            picks.append(t.select(dim, k))
            continue
        c = min(max((p + 0.5) * n / size - 0.5, 0.0), n - 1)
        k = math.floor(c)
        w = c - k
        picks.append((1 - w) * t.select(dim, k) + w * t.select(dim, min(k + 1, n - 1)))
    return torch.stack(picks, dim=dim)


def _resized_into_box(x, i, j, box, resample):
    """ResizeMix's row i: x[i] with the whole of x[j] resized into ``box``, axis by axis."""
    region = tuple(slice(int(lo), int(hi)) for lo, hi in box.tolist())
    row = x[i].clone()
    if min(r.stop - r.start for r in region) > 0:
        small = x[j]
        for axis, r in enumerate(region):
            small = _resize_axis(small, axis + 1, r.stop - r.start, resample)
        row[(slice(None),) + region] = small
    return row


def reference_mix(x, params, mixer=None):
    """``x`` mixed by ``params`` (MixParams or ComposedParams), sample by sample; ``mixer`` says
    how (needed for ResizeMix, whose boxes hold a resized partner)."""
    if isinstance(params, ComposedParams):
        parts = [mixer.mixers[params.choice]] if params.choice is not None else list(mixer.mixers)
        for part, sub in zip(params.parts, parts, strict=True):
            x = reference_mix(x, part, sub)
        return x
    b = x.shape[0]
    rows = []
    for i in range(b):
        if isinstance(mixer, mixkit.ResizeMix):
            box = params.boxes[i if params.boxes.shape[0] > 1 else 0]
            rows.append(_resized_into_box(x, i, int(params.index[i]), box, mixer.resample))
            continue
        if params.weights is not None:
            rows.append(sum(params.weights[i, j].double() * x[j] for j in range(b)))
            continue
        j = int(params.index[i])
        if params.mask is not None or params.boxes is not None:
            if params.mask is not None:
                m = params.mask[i if params.mask.shape[0] > 1 else 0].double()
            else:
                box = params.boxes[i if params.boxes.shape[0] > 1 else 0]
                m = _box_mask_loop(box, tuple(x.shape[2:]))
            rows.append(m * x[i] + (1 - m) * x[j])
        else:
            lam = params.lam[i].double()
            rows.append(lam * x[i] + (1 - lam) * x[j])
    return torch.stack(rows)


HIDDEN_SHAPES = {
    "2d-64x32x32": (4, 64, 32, 32),
    "1d-64x1024": (4, 64, 1024),
    "3d-16x16x16x16": (2, 16, 16, 16, 16),
    "2d-small": (4, 3, 8, 8),
    "2d-b16": (16, 4, 16, 16),
}


def _mixer_and_params(name, x, seed=0):
    mixer = FACTORIES[name]()
    params = mixer.sample(x.detach(), generator=torch.Generator().manual_seed(seed))
    return mixer, params


@pytest.mark.parametrize("shape", HIDDEN_SHAPES.values(), ids=HIDDEN_SHAPES.keys())
@pytest.mark.parametrize("name", FACTORIES)
def test_gradients_equal_the_reference_at_hidden_layer_sizes(name, shape):
    g = torch.Generator().manual_seed(1)
    leaf = torch.randn(shape, generator=g, requires_grad=True)
    y = torch.randint(0, C, (shape[0],), generator=g)
    upstream = torch.randn(shape, generator=g, dtype=torch.float64)
    mixer, params = _mixer_and_params(name, leaf)
    hidden = leaf * 1.0  # a non-leaf, as a layer's output is (in-place mixers may write to it)
    mixed, soft = mixer.apply(hidden, y, params)
    assert mixed.requires_grad and soft.shape == (shape[0], C)
    (mixed.double() * upstream).sum().backward()

    ref_leaf = leaf.detach().double().requires_grad_(True)
    ref = reference_mix(ref_leaf, params, mixer)
    torch.testing.assert_close(mixed.detach().double(), ref.detach(), atol=1e-5, rtol=1e-5)
    (ref * upstream).sum().backward()
    torch.testing.assert_close(leaf.grad.double(), ref_leaf.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", HIDDEN_SHAPES.values(), ids=HIDDEN_SHAPES.keys())
@pytest.mark.parametrize("name", FACTORIES)
def test_host_fast_paths_equal_the_reference(name, shape):
    # Without autograd, CPU tensors take the host paths (row loops, cycle walks, region copies).
    g = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=g)
    y = torch.randint(0, C, (shape[0],), generator=g)
    mixer, params = _mixer_and_params(name, x, seed=3)
    inp = x.clone()
    mixed, _ = mixer.apply(inp, y, params)
    torch.testing.assert_close(mixed.double(), reference_mix(x.double(), params, mixer), atol=1e-5, rtol=1e-5)
    if name in INPLACE:
        assert mixed.data_ptr() == inp.data_ptr()


@pytest.mark.parametrize("shape", [(4, 64, 32, 32), (4, 3, 8, 8)], ids=["hidden", "small"])
@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_on_a_leaf_that_requires_grad_is_torchs_error(name, shape):
    leaf = torch.rand(shape, requires_grad=True)
    mixer, params = _mixer_and_params(name, leaf)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        mixer.apply(leaf, torch.arange(shape[0]) % C, params)


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_manifold_cutmix_and_compose_at_a_hidden_layer_of_a_cifar_stem_resnet():
    from torchvision.models import resnet18

    model = resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)  # CIFAR stem: layer1 is 64x32x32
    model.maxpool = nn.Identity()
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for mixer in [*grid.select(grid.modes(10), grid.regional).values(),
                  mixkit.Compose([mixkit.CutMix(), mixkit.ZetaMixup()], num_classes=10)]:
        mixer = mixer() if not isinstance(mixer, torch.nn.Module) else mixer
        mm = mixkit.ManifoldMixup(model, ["layer1"], mixer=mixer)
        model.zero_grad()
        mm.loss(x, y, generator=torch.Generator().manual_seed(0)).backward()
        assert model.conv1.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Autocast: outputs keep the input's dtype, soft labels stay float32 with rows summing to 1.


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", FACTORIES)
def test_autocast_keeps_dtypes_and_values(name, amp):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8, generator=g), torch.randint(0, C, (6,), generator=g)
    eager = FACTORIES[name]()(x.clone(), y, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=amp):
        mixed, soft = FACTORIES[name]()(x.clone(), y, generator=torch.Generator().manual_seed(2))
        # a second mixer after it takes its soft labels as they come
        again, soft2 = mixkit.MixUp(num_classes=C)(mixed, soft)
    assert mixed.dtype == torch.float32 and soft.dtype == torch.float32 and soft2.dtype == torch.float32
    assert torch.equal(mixed, eager[0]) and torch.equal(soft, eager[1])
    torch.testing.assert_close(soft2.sum(1), torch.ones(6))
    with torch.autocast("cpu", dtype=amp):
        half, soft_h = FACTORIES[name]()(x.to(amp), y, generator=torch.Generator().manual_seed(2))
    assert half.dtype == amp and soft_h.dtype == torch.float32


def _small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, C))


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_hidden_layer_methods(amp):
    model = _small_cnn()
    x, y = torch.rand(8, 3, 8, 8), torch.arange(8) % C
    for mixer in [None, mixkit.ZetaMixup(num_classes=C), mixkit.CutMix(num_classes=C)]:
        mm = mixkit.ManifoldMixup(model, ["", "2", "4"], num_classes=C, mixer=mixer)
        for seed in range(3):
            with torch.autocast("cpu", dtype=amp):
                logits, soft = mm(x, y, generator=torch.Generator().manual_seed(seed))
            assert logits.dtype == amp and soft.dtype == torch.float32
            torch.testing.assert_close(soft.sum(1), torch.ones(8))
    syner = mixkit.SynerMix(model, "6", "7", beta=0.1, num_classes=C,
                            inter=mixkit.ManifoldMixup(model, ["2"], mixer=mixkit.ZetaMixup(num_classes=C)))
    with torch.autocast("cpu", dtype=amp):
        loss = syner.loss(x, x.flip(-1), y, generator=torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()


# ---------------------------------------------------------------------------------------------
# No host reads of device data. Meta tensors stand in for an accelerator: they hold no values,
# so any read on the host (.item(), bool(t), .tolist(), a data-dependent shape) raises.


@pytest.mark.parametrize("generator", ["none", "cpu"])
@pytest.mark.parametrize("name", FACTORIES)
def test_no_host_reads_on_a_device(name, generator):
    x = torch.empty(6, 3, 8, 8, device="meta")
    ids = torch.empty(6, dtype=torch.long, device="meta")
    probs = torch.empty(6, C, device="meta")
    gen = torch.Generator().manual_seed(0) if generator == "cpu" else None
    mixer = FACTORIES[name]()
    for labels in (ids, probs):
        mixed, soft = mixer(x, labels, generator=gen)
        assert mixed.device.type == "meta" and mixed.shape == x.shape and soft.shape == (6, C)
        params = mixer.sample(x, generator=gen)
        mixer.apply(x, labels, params)


def test_the_meta_check_catches_a_host_read(monkeypatch):
    # Pretending meta data were readable on the host sends the labels down the CPU path with its
    # exact error messages, which read values: the meta tensors must make that fail.
    monkeypatch.setattr(labels_module, "host_readable", lambda t: True)
    with pytest.raises(RuntimeError, match="meta"):
        mixkit.MixUp(num_classes=C)(torch.empty(4, 3, 8, 8, device="meta"),
                                    torch.empty(4, dtype=torch.long, device="meta"))


def test_hidden_layer_methods_make_no_host_reads_on_a_device():
    model = _small_cnn().to("meta")
    x = torch.empty(8, 3, 8, 8, device="meta")
    y = torch.empty(8, dtype=torch.long, device="meta")
    gen = torch.Generator().manual_seed(0)
    for mixer in [None, mixkit.ZetaMixup(num_classes=C), mixkit.FMix(num_classes=C, mode="elem")]:
        mm = mixkit.ManifoldMixup(model, ["", "2", "4"], num_classes=C, mixer=mixer)
        for _ in range(4):
            logits, soft = mm(x, y, generator=gen)
            assert logits.shape == (8, C) and soft.shape == (8, C)
    for inter in [None, mixkit.MixUp(num_classes=C), mixkit.ManifoldMixup(model, ["2"], num_classes=C)]:
        for single in (False, True):
            syner = mixkit.SynerMix(model, "6", "7", beta=0.1, num_classes=C, inter=inter, single_pass=single)
            assert syner.loss(x, x, y, generator=gen).device.type == "meta"


@pytest.mark.parametrize("labels, message", [
    (torch.tensor([0, 1, 2, C]), "expected class ids in"),
    (torch.full((4, C), 0.5), "probability rows summing to 1"),
])
def test_device_path_validation_is_an_async_assert(monkeypatch, labels, message):
    # On a device the checks are torch._assert_async; on CPU that raises at once, which shows the
    # message a CUDA user gets (there: at the next synchronisation, as a device-side assert).
    monkeypatch.setattr(labels_module, "host_readable", lambda t: False)
    with pytest.raises(RuntimeError, match=message):
        mixkit.MixUp(num_classes=C)(torch.rand(4, 3, 8, 8), labels)


def test_cpu_generator_drives_device_draws_without_touching_the_global_rng():
    state = torch.get_rng_state()
    x = torch.empty(6, 3, 8, 8, device="meta")
    mixkit.FMix(num_classes=C, mode="elem")(x, torch.empty(6, dtype=torch.long, device="meta"),
                                            generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="expected a CPU generator or one on the inputs' device"):
        mixkit.MixUp(num_classes=C)(torch.rand(4, 2), torch.arange(4) % C,
                                    generator=_FakeGen())


class _FakeGen(torch.Generator):
    """A generator that claims another device (no accelerator here to make a real one)."""

    @property
    def device(self):
        return torch.device("cuda")


# ---------------------------------------------------------------------------------------------
# Host shortcuts for one batch-level draw on CPU: the same draws and formula on Python numbers,
# checked against the tensor path that accelerators and torch.compile take.


def _tensor_path(monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.2, 0.2), (2.0, 1.0), (0.05, 0.05), (8.0, 0.5)])
def test_host_beta_equals_tensor_beta(monkeypatch, alpha, beta):
    from mixkit.functional import sampling

    host = [sampling.sample_beta(alpha, beta, generator=torch.Generator().manual_seed(s)) for s in range(300)]
    _tensor_path(monkeypatch)
    tensor = [sampling.sample_beta(alpha, beta, generator=torch.Generator().manual_seed(s)) for s in range(300)]
    torch.testing.assert_close(torch.cat(host), torch.cat(tensor), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("spatial", [(37,), (32, 32), (7, 9), (224, 224), (5, 6, 7)], ids=str)
def test_host_box_equals_tensor_box(monkeypatch, spatial):
    from mixkit.functional import masks

    lams = torch.rand(2000, generator=torch.Generator().manual_seed(0))
    lams[:3] = torch.tensor([0.0, 1.0, 0.5])

    def draw():
        boxes = [masks.sample_boxes(lams[i:i + 1], spatial, generator=torch.Generator().manual_seed(i))
                 for i in range(len(lams))]
        return torch.cat(boxes), torch.cat([masks.boxes_lambda(b, spatial) for b in boxes])

    host_boxes, host_lam = draw()
    _tensor_path(monkeypatch)
    tensor_boxes, tensor_lam = draw()
    assert torch.equal(host_boxes, tensor_boxes)
    assert torch.equal(host_lam, tensor_lam)


def test_labels_on_another_device_than_the_inputs_is_an_error():
    with pytest.raises(ValueError, match=r"labels: expected a tensor on the inputs' device \(cpu\), got one on meta"):
        mixkit.CutMix(num_classes=C)(torch.rand(4, 3, 8, 8), torch.empty(4, dtype=torch.long, device="meta"))


# ---------------------------------------------------------------------------------------------
# Through the command: the fast subset's one run of the training loop. The family it stands for
# (every method, compare, resume after kill -9, two gloo processes) is in tests/test_harness_e2e.py,
# marked slow.


def test_one_cli_training_run_in_the_fast_subset(tmp_path, capsys):
    import json
    import os

    from mixkit.harness.cli import main

    out = str(tmp_path / "synermix")
    argv = ["train", "--dataset", "digits", "--train-size", "120", "--test-size", "60", "--batch-size", "32",
            "--model", "small-cnn", "--method", "synermix", "--epochs", "1", "--seed", "0", "--out", out]
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    with open(os.path.join(out, "final.json")) as f:
        final = json.load(f)
    assert final["method"] == "synermix" and final["n_test"] == 60
    assert 0.0 <= final["test_error"] <= 1.0 and final["nll"] == final["nll"]
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "config.yaml", "final.json", "metrics.jsonl"]
    assert "test error" in capsys.readouterr().out
    assert main(argv) == 2                                  # the same directory again, no --resume
    assert "already holds a run; pass --resume" in capsys.readouterr().err
