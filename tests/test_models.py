"""Tests of the mixkit model zoo (``mixkit.harness.models``): shapes, parameter counts against
torchvision references, the ``mixing_layers`` / ``feature_layer`` / ``head`` contract, the
hidden-layer methods on every model, gradient flow, and argument errors.

Inputs are kept small (batch 2-4, 8x8 to 32x32 images) so the file runs in seconds on 2 CPUs.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import mixkit
from mixkit.harness.models import MODELS, build_model, count_parameters

K = 10
# The smallest typical input of each model: (input_shape, batch).
SMALL = {
    "preact-resnet18": ((3, 8, 8), 2),
    "resnet18": ((3, 8, 8), 2),
    "resnet50": ((3, 8, 8), 2),
    "small-cnn": ((1, 8, 8), 4),
    "cnn1d": ((1, 40), 4),
    "small-vit": ((1, 8, 8), 4),
}


@functools.cache
def _model(name: str, shape: tuple[int, ...] | None = None) -> nn.Module:
    """One model per (name, shape), built once for the whole file (tests only zero its grads)."""
    torch.manual_seed(0)
    return build_model(name, num_classes=K, input_shape=shape or SMALL[name][0])


def _batch(name: str, seed: int = 0):
    shape, b = SMALL[name]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *shape, generator=g)
    y = torch.arange(b) % 2
    return x, y


def test_models_tuple():
    assert MODELS == ("preact-resnet18", "resnet18", "resnet50", "small-cnn", "cnn1d", "small-vit")


@pytest.mark.parametrize("name,shape,batch", [
    ("preact-resnet18", (3, 32, 32), 2),
    ("preact-resnet18", (1, 28, 28), 2),
    ("preact-resnet18", (1, 8, 8), 2),
    ("resnet18", (3, 32, 32), 2),
    ("resnet18", (1, 12, 10), 2),
    ("resnet50", (3, 16, 16), 2),
    ("small-cnn", (1, 28, 28), 2),
    ("small-cnn", (1, 8, 8), 3),
    ("small-cnn", (3, 9, 7), 2),
    ("cnn1d", (1, 40), 2),
    ("cnn1d", (2, 17), 3),
    ("small-vit", (1, 28, 28), 2),
    ("small-vit", (3, 32, 32), 2),
    ("small-vit", (2, 9, 7), 3),
])
def test_output_shape(name, shape, batch):
    model = _model(name, shape)
    assert isinstance(model, nn.Module)
    with torch.no_grad():
        out = model(torch.randn(batch, *shape))
    assert out.shape == (batch, K)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_num_classes_and_channels_are_used():
    m = build_model("resnet18", num_classes=7, input_shape=(1, 16, 16))
    assert m.conv1.weight.shape == (64, 1, 3, 3)
    assert m.fc.out_features == 7
    m = build_model("cnn1d", num_classes=3, input_shape=(5, 40))
    assert m.layer1[0].in_channels == 5 and m.fc.out_features == 3


# ---------------------------------------------------------------------------------------------
# parameter counts


PINNED = {
    "preact-resnet18": 11_172_170,
    "resnet18": 11_173_962,
    "resnet50": 23_520_842,
    "small-cnn": 35_674,
    "cnn1d": 53_098,
    "small-vit": 136_138,
}


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_pinned(name):
    model = _model(name)
    assert count_parameters(model) == PINNED[name]
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_count_parameters_skips_frozen():
    m = build_model("cnn1d", num_classes=K, input_shape=(1, 40))
    m.fc.weight.requires_grad_(False)
    assert count_parameters(m) == PINNED["cnn1d"] - m.fc.weight.numel()


def test_preact_resnet18_count_by_hand():
    # Conv weights (no biases), two BN parameters per channel, fc with bias.
    def conv(cin, cout, k):
        return cin * cout * k * k

    def bn(c):
        return 2 * c

    total = conv(3, 64, 3)
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for s in (stride, 1):
            total += bn(cin) + conv(cin, planes, 3) + bn(planes) + conv(planes, planes, 3)
            if s != 1 or cin != planes:
                total += conv(cin, planes, 1)
            cin = planes
    total += bn(512) + 512 * K + K
    assert total == PINNED["preact-resnet18"]
    # The CIFAR PreAct ResNet-18 without the final BN has the well-known 11,171,146.
    assert total - bn(512) == 11_171_146


def test_small_vit_count_by_hand_and_patch_grid():
    """Width 64, 4 blocks, MLP 128: the count from the layer shapes, for 2x2 patches of an 8x8
    image (16 patches + the class token) and 4x4 patches of a 28x28 one (49 + 1)."""
    def count(channels, tokens, d=64, hidden=128, depth=4):
        embed = channels * d * 2 * 2 + d if tokens == 17 else channels * d * 4 * 4 + d
        block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * hidden + hidden) + (hidden * d + d)
        return embed + d + tokens * d + depth * block + 2 * d + d * K + K

    small = _model("small-vit")
    assert small.patch_size == 2 and small.grid == (4, 4) and count_parameters(small) == count(1, 17)
    big = build_model("small-vit", num_classes=K, input_shape=(1, 28, 28))
    assert big.patch_size == 4 and big.grid == (7, 7) and count_parameters(big) == count(1, 50)
    with pytest.raises(ValueError, match=r"patch grid is \(7, 7\).*got shape \(2, 1, 32, 32\)"):
        big(torch.randn(2, 1, 32, 32))


def test_small_vit_transmix_reads_its_attention_layer():
    """The ViT names what TransMix needs: the attention row it reads sums to 1 over the tokens,
    lam_attn lies in [0, 1], and the loss trains every parameter."""
    model = _model("small-vit").train()
    model.zero_grad(set_to_none=True)
    x, y = _batch("small-vit", seed=6)
    tm = mixkit.TransMix(model, model.attention_layer, num_classes=K)
    try:
        loss = tm.loss(x, y, generator=torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss)
        lam = tm.last_lam_attn
        assert lam.shape == (x.shape[0],) and bool(((lam >= 0) & (lam <= 1)).all())
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert missing == []
    finally:
        tm.taps.remove()


def _torchvision_cifar(name: str) -> nn.Module:
    tvm = pytest.importorskip("torchvision.models")
    ref = getattr(tvm, name)(weights=None, num_classes=K)
    ref.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    ref.maxpool = nn.Identity()
    return ref


@pytest.mark.parametrize("name,size", [("resnet18", 16), ("resnet50", 8)])
def test_resnet_matches_torchvision(name, size):
    """Independent reference: torchvision's ResNet with the 3x3 stem and no max-pool has the
    same parameter count, loads into ours key for key, and computes the same logits."""
    ref = _torchvision_cifar(name).eval()
    ours = build_model(name, num_classes=K, input_shape=(3, size, size)).eval()
    assert count_parameters(ours) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_initialisation():
    torch.manual_seed(0)
    m = build_model("resnet18", num_classes=K, input_shape=(3, 32, 32))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.equal(mod.weight, torch.ones_like(mod.weight))
            assert torch.equal(mod.bias, torch.zeros_like(mod.bias))
    w = m.layer4[1].conv2.weight  # 512 x 512 x 3 x 3, Kaiming fan-out: std sqrt(2 / (512 * 9))
    assert abs(w.std().item() / (2.0 / (512 * 9)) ** 0.5 - 1.0) < 0.02
    # fc keeps PyTorch's default: uniform in +-1/sqrt(fan_in)
    assert m.fc.weight.abs().max().item() <= 512 ** -0.5


# ---------------------------------------------------------------------------------------------
# the layer contract


@pytest.mark.parametrize("name", MODELS)
def test_layer_attributes(name):
    model = _model(name)
    modules = dict(model.named_modules())
    assert isinstance(model.mixing_layers, list) and model.mixing_layers[0] == ""
    stages = ["blocks.0", "blocks.1"] if name == "small-vit" else ["layer1", "layer2"]
    assert model.mixing_layers == ["", *stages]
    assert all(n in modules for n in model.mixing_layers[1:])
    assert isinstance(model.feature_layer, str) and model.feature_layer in modules
    assert isinstance(model.head, str) and isinstance(modules[model.head], nn.Linear)
    assert modules[model.head].out_features == K


@pytest.mark.parametrize("name", MODELS)
def test_feature_hook_and_head_give_the_logits(name):
    model = _model(name).train()
    x, _ = _batch(name)
    store = {}
    handle = getattr(model, model.feature_layer).register_forward_hook(
        lambda mod, args, out: store.setdefault("h", out))
    try:
        with torch.no_grad():
            logits = model(x)
            h = store["h"]
            again = getattr(model, model.head)(h)
    finally:
        handle.remove()
    assert h.ndim == 2 and h.shape[0] == x.shape[0]
    assert h.shape[1] == getattr(model, model.head).in_features
    assert torch.equal(again, logits)


@pytest.mark.parametrize("name", MODELS)
def test_named_layers_run_once_per_forward(name):
    model = _model(name)
    x, _ = _batch(name)
    names = model.mixing_layers[1:] + [model.feature_layer, model.head]
    calls = dict.fromkeys(names, 0)
    modules = dict(model.named_modules())
    handles = []
    for n in names:
        def hook(mod, args, out, n=n):
            calls[n] += 1
        handles.append(modules[n].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    assert calls == dict.fromkeys(names, 1)


# ---------------------------------------------------------------------------------------------
# hidden-layer methods and gradients


# ResNet-50's hidden-layer passes take seconds on CPU: in the slow set.
HEAVY = [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n for n in MODELS]


@pytest.mark.parametrize("name", HEAVY)
def test_manifold_mixup_every_layer(name):
    model = _model(name).train()
    x, y = _batch(name)
    for layer in model.mixing_layers:
        model.zero_grad(set_to_none=True)
        mm = mixkit.ManifoldMixup(model, [layer], num_classes=K)
        loss = mm.loss(x, y, generator=torch.Generator().manual_seed(1))
        loss.backward()
        assert torch.isfinite(loss) and mm.last_layer == layer
        assert getattr(model, model.head).weight.grad is not None
    mm = mixkit.ManifoldMixup(model, model.mixing_layers, num_classes=K)
    mm.loss(x, y).backward()
    assert mm.last_layer in model.mixing_layers


@pytest.mark.parametrize("name", HEAVY)
def test_synermix(name):
    model = _model(name).train()
    model.zero_grad(set_to_none=True)
    x, y = _batch(name)
    syner = mixkit.SynerMix(model, model.feature_layer, model.head, num_classes=K, beta=0.1,
                            inter=mixkit.MixUp(alpha=1.0, num_classes=K))
    loss = syner.loss(x, x.flip(-1), y, generator=torch.Generator().manual_seed(2))
    loss.backward()
    assert torch.isfinite(loss)
    terms = syner.last_terms
    assert terms["intra"] == terms["intra"] and terms["inter"] == terms["inter"]  # not NaN


def test_synermix_with_manifold_inter():
    """The loss equals beta * L_intra + (1 - beta) * L_inter recomputed by hand from the same
    generator (intra weights first, then the Manifold Mixup draws), and trains every parameter."""
    model = _model("small-cnn").train()
    model.zero_grad(set_to_none=True)
    x, y = _batch("small-cnn")
    x_aug = x.flip(-1)
    inter = mixkit.ManifoldMixup(model, model.mixing_layers, num_classes=K)
    syner = mixkit.SynerMix(model, model.feature_layer, model.head, num_classes=K, beta=0.1, inter=inter)
    loss = syner.loss(x, x_aug, y, generator=torch.Generator().manual_seed(4))
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    layer_used = inter.last_layer

    # by hand: intra-class mixes of the originals' features through the head, then one Manifold
    # Mixup forward of the augmented images, both from the generator in that order
    g = torch.Generator().manual_seed(4)
    w = 1.0 - torch.rand(x.shape[0], generator=g)
    store = {}
    modules = dict(model.named_modules())
    handle = modules[model.feature_layer].register_forward_hook(lambda m, a, out: store.update(f=out))
    with torch.no_grad():
        model(x)
        handle.remove()
        feats = store["f"].flatten(1)
        head = modules[model.head]
        ces = []
        for c in y.unique():
            rows = y == c
            mixed = (feats[rows] * w[rows, None]).sum(0) / w[rows].sum()
            ces.append(nn.functional.cross_entropy(head(mixed[None]), c[None]))
        intra = torch.stack(ces).mean()
        inter_loss = inter.loss(x_aug, y, generator=g)
    assert inter.last_layer == layer_used
    terms = syner.last_terms
    assert terms["intra"] == pytest.approx(intra.item(), rel=1e-5, abs=1e-6)
    assert terms["inter"] == pytest.approx(inter_loss.item(), rel=1e-5, abs=1e-6)
    assert loss.item() == pytest.approx(0.1 * terms["intra"] + 0.9 * terms["inter"], rel=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model = _model(name).train()
    model.zero_grad(set_to_none=True)
    x, y = _batch(name, seed=5)
    nn.functional.cross_entropy(model(x), y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


# ---------------------------------------------------------------------------------------------
# errors


def test_unknown_name_lists_the_models():
    with pytest.raises(ValueError) as err:
        build_model("resnet19", num_classes=K, input_shape=(3, 32, 32))
    for n in MODELS:
        assert repr(n) in str(err.value)
    assert "'resnet19'" in str(err.value)


@pytest.mark.parametrize("name", ["preact-resnet18", "resnet18", "resnet50", "small-cnn", "small-vit"])
def test_image_model_given_a_signal_shape(name):
    with pytest.raises(ValueError, match=r"expected \(C, H, W\).*got \(1, 40\)"):
        build_model(name, num_classes=K, input_shape=(1, 40))


def test_signal_model_given_an_image_shape():
    with pytest.raises(ValueError, match=r"expected \(C, L\).*got \(1, 28, 28\)"):
        build_model("cnn1d", num_classes=K, input_shape=(1, 28, 28))


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 0, "input_shape": (1, 28, 28)}, "num_classes"),
    ({"num_classes": True, "input_shape": (1, 28, 28)}, "num_classes"),
    ({"num_classes": K, "input_shape": (0, 28, 28)}, "input_shape"),
    ({"num_classes": K, "input_shape": (1, 28.0, 28)}, "input_shape"),
    ({"num_classes": K, "input_shape": 28}, "input_shape"),
    ({"num_classes": K, "input_shape": (1, 3, 28)}, r"sizes >= 4"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model("small-cnn", **kwargs)


def test_docstring_example():
    import doctest

    import mixkit.harness.models

    result = doctest.testmod(mixkit.harness.models, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
