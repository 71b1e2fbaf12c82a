"""Hidden-layer mixing: ManifoldMixup, SynerMix and intra_class_mix (mixkit.hidden)."""

import gc
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mixkit
from mixkit import MixUp, ZetaMixup, soft_target_cross_entropy
from mixkit.functional import to_soft_labels
from mixkit.hidden import ManifoldMixup, SynerMix, intra_class_mix

C = 3


class TinyNet(nn.Module):
    """A small model of ours: stem (with batch norm) -> block -> pool -> fc."""

    def __init__(self, num_classes=C, bn=True):
        super().__init__()
        norm = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), norm, nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.block(self.stem(x))).flatten(1))


def hooks_left(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def data(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, 6, 6, generator=g)
    y = torch.arange(b) % C
    return x, y


def seeded(seed=7):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# ManifoldMixup


def test_hidden_mix_equals_manual_forward_with_replayed_params():
    torch.manual_seed(0)
    model = TinyNet()
    x, y = data()
    mm = ManifoldMixup(model, ["stem"], alpha=2.0, num_classes=C)
    logits, soft = mm(x, y, generator=seeded())
    # Replay: the layer draw, then the mixer's draws on the hidden tensor.
    g = seeded()
    torch.randint(1, (1,), generator=g)
    h = model.stem(x)
    params = mm.mixer.sample(h, generator=g)
    lam, idx = params.lam[:, None, None, None], params.index
    ref = model.fc(model.pool(model.block(lam * h + (1 - lam) * h[idx])).flatten(1))
    onehot = F.one_hot(y, C).float()
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(soft, params.lam[:, None] * onehot + (1 - params.lam[:, None]) * onehot[idx])
    assert mm.last_layer == "stem"
    assert not torch.allclose(logits, model(x))  # it did mix


def test_input_layer_mixes_the_input():
    model = TinyNet()
    x, y = data()
    mm = ManifoldMixup(model, [""], alpha=1.0, num_classes=C)
    logits, soft = mm(x, y, generator=seeded())
    g = seeded()
    torch.randint(1, (1,), generator=g)
    mixed, ref_soft = MixUp(alpha=1.0, num_classes=C)(x, y, generator=g)
    torch.testing.assert_close(logits, model(mixed))
    torch.testing.assert_close(soft, ref_soft)


def test_zeta_mixup_at_a_hidden_layer():
    model = TinyNet()
    x, y = data()
    zeta = ZetaMixup(gamma=2.0, num_classes=C)
    mm = ManifoldMixup(model, ["block"], mixer=zeta)
    assert mm.num_classes == C  # taken from the mixer
    logits, soft = mm(x, y, generator=seeded())
    g = seeded()
    torch.randint(1, (1,), generator=g)
    h = model.block(model.stem(x))
    w = zeta.sample(h, generator=g).weights
    ref = model.fc(model.pool((w @ h.reshape(len(x), -1)).view_as(h)).flatten(1))
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(soft, w @ F.one_hot(y, C).float())


def test_layer_chosen_uniformly():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, C))
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    mm = ManifoldMixup(model, ["", "0", "2"], num_classes=C)
    g = seeded()
    counts = {"": 0, "0": 0, "2": 0}
    with torch.no_grad():
        for _ in range(300):
            mm(x, y, generator=g)
            counts[mm.last_layer] += 1
    # Binomial(300, 1/3): mean 100, sd 8.2; 70..130 is beyond 3.6 sd.
    assert all(70 <= v <= 130 for v in counts.values()), counts


def test_eval_never_mixes():
    model = TinyNet().eval()
    x, y = data()
    mm = ManifoldMixup(model, ["", "stem", "block"], num_classes=C)
    for seed in range(5):
        logits, soft = mm(x, y, generator=seeded(seed))
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(soft, F.one_hot(y, C).float())
        assert mm.last_layer is None


def test_hooks_removed_with_the_mixer_or_by_remove():
    model = TinyNet()
    mm = ManifoldMixup(model, ["", "stem", "block"], num_classes=C)
    assert hooks_left(model) == 2  # one idle hook per hidden layer
    del mm
    gc.collect()
    assert hooks_left(model) == 0
    mm = ManifoldMixup(model, ["stem"], num_classes=C)
    mm.taps.remove()
    assert hooks_left(model) == 0
    with pytest.raises(RuntimeError, match="hooks were removed"):
        mm(*data(), generator=seeded())


def test_hooks_idle_and_plain_forward_unmixed_after_mixed_forward():
    model = TinyNet()
    x, y = data()
    before = model(x)
    mm = ManifoldMixup(model, ["stem", "block"], num_classes=C)
    logits, _ = mm(x, y, generator=seeded())
    assert not torch.allclose(logits, before)
    assert mm.taps._armed is None  # hooks stay registered but idle
    torch.testing.assert_close(model(x), before)


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.armed = True

    def forward(self, x):
        if self.armed:
            raise RuntimeError("boom")
        return x


def test_exception_inside_forward_leaves_no_hook():
    model = nn.Sequential(nn.Linear(4, 5), Boom(), nn.Linear(5, C))
    x, y = torch.randn(4, 4), torch.tensor([0, 1, 2, 0])
    mm = ManifoldMixup(model, ["0"], num_classes=C)
    with pytest.raises(RuntimeError, match="boom"):
        mm(x, y, generator=seeded())
    assert mm.taps._armed is None  # hooks stay registered but idle
    model[1].armed = False
    before = model(x)
    mm(x, y, generator=seeded())
    torch.testing.assert_close(model(x), before)


def test_layer_called_twice_is_an_error_and_leaves_no_hook():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.act = nn.ReLU()
            self.out = nn.Linear(4, C)

        def forward(self, x):
            return self.out(self.act(self.lin(self.act(x))))

    model = Twice()
    mm = ManifoldMixup(model, ["act"], num_classes=C)
    with pytest.raises(ValueError, match="expected layer 'act' to run once per forward"):
        mm(torch.randn(4, 4), torch.tensor([0, 1, 2, 0]), generator=seeded())
    assert mm.taps._armed is None  # hooks stay registered but idle


def test_unused_layer_is_an_error():
    model = TinyNet()
    model.spare = nn.Linear(2, 2)
    mm = ManifoldMixup(model, ["spare"], num_classes=C)
    x, y = data()
    with pytest.raises(ValueError, match="expected layer 'spare' to run during the forward"):
        mm(x, y)
    assert mm.taps._armed is None  # hooks stay registered but idle


def test_gradients_reach_layers_before_and_after_the_mixing_layer():
    model = TinyNet()
    x, y = data()
    mm = ManifoldMixup(model, ["block"], num_classes=C)
    mm.loss(x, y, generator=seeded()).backward()
    for name in ["stem.0.weight", "block.0.weight", "fc.weight"]:
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_loss_is_soft_target_cross_entropy_of_the_call():
    model = TinyNet()
    x, y = data()
    mm = ManifoldMixup(model, ["stem", "block"], num_classes=C)
    logits, soft = mm(x, y, generator=seeded(3))
    torch.testing.assert_close(mm.loss(x, y, generator=seeded(3)), soft_target_cross_entropy(logits, soft))


def test_manifold_errors():
    model = TinyNet()
    with pytest.raises(ValueError, match=r"layers: expected the name of a submodule .*'stem'.*got 'layer9'"):
        ManifoldMixup(model, ["stem", "layer9"], num_classes=C)
    with pytest.raises(ValueError, match="layers: expected a non-empty list"):
        ManifoldMixup(model, [], num_classes=C)
    with pytest.raises(ValueError, match="layers: expected distinct names"):
        ManifoldMixup(model, ["stem", "stem"], num_classes=C)
    with pytest.raises(TypeError, match="mixer: expected a mixer with sample"):
        ManifoldMixup(model, ["stem"], mixer=object())
    with pytest.raises(ValueError, match="mixer: expected inplace=False"):
        ManifoldMixup(model, ["stem"], mixer=MixUp(num_classes=C, inplace=True))
    with pytest.raises(ValueError, match=r"num_classes: expected the mixer's num_classes \(3\), got 5"):
        ManifoldMixup(model, ["stem"], num_classes=5, mixer=MixUp(num_classes=3))
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        ManifoldMixup(lambda x: x, ["stem"])


def test_layer_with_non_tensor_output_is_an_error():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()
            self.fc = nn.Linear(4, C)

        def forward(self, x):
            return self.fc(self.pair(x)[0])

    model = Net()
    mm = ManifoldMixup(model, ["pair"], num_classes=C)
    with pytest.raises(TypeError, match="expected layer 'pair' to output a tensor, got tuple"):
        mm(torch.randn(4, 4), torch.tensor([0, 1, 2, 0]))
    assert mm.taps._armed is None  # hooks stay registered but idle


# ---------------------------------------------------------------------------------------------
# intra_class_mix


def slow_intra_mix(features, labels, weights):
    """Obviously-correct reference: a loop over the classes present."""
    rows, classes = [], []
    for c in sorted(set(labels.tolist())):
        sel = labels == c
        w = weights[sel] / weights[sel].sum()
        rows.append((w[:, None] * features[sel]).sum(0))
        classes.append(c)
    return torch.stack(rows), torch.tensor(classes)


@pytest.mark.parametrize("seed", range(5))
def test_intra_class_mix_matches_per_class_reference(seed):
    g = seeded(seed)
    b = 40
    labels = torch.randint(0, 9, (b,), generator=g)  # some classes absent, some singletons
    features = torch.randn(b, 5, generator=g, dtype=torch.float64)
    weights = torch.rand(b, generator=g, dtype=torch.float64) + 0.01
    mixed, classes = intra_class_mix(features, labels, weights=weights)
    ref, ref_classes = slow_intra_mix(features, labels, weights)
    assert torch.equal(classes, ref_classes)
    torch.testing.assert_close(mixed, ref)


def test_intra_class_mix_draws_weights_from_generator():
    features, labels = torch.randn(10, 3), torch.tensor([0, 0, 1, 1, 1, 4, 4, 4, 4, 2])
    a, _ = intra_class_mix(features, labels, generator=seeded(1))
    b, _ = intra_class_mix(features, labels, generator=seeded(1))
    c, _ = intra_class_mix(features, labels, generator=seeded(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    weights = 1.0 - torch.rand(10, generator=seeded(1))
    torch.testing.assert_close(a, slow_intra_mix(features, labels, weights)[0])
    # a singleton class keeps its sample's features
    torch.testing.assert_close(a[2], features[9])


def test_intra_class_mix_errors():
    with pytest.raises(ValueError, match=r"expected shapes \(B, D\) and \(B,\)"):
        intra_class_mix(torch.randn(4, 2, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="weights: expected 4 positive weights"):
        intra_class_mix(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), weights=torch.zeros(4))


# ---------------------------------------------------------------------------------------------
# SynerMix


def features_of(model, x):
    return model.pool(model.block(model.stem(x))).flatten(1)


def reference_intra(model, x, y, weights):
    mixed, classes = slow_intra_mix(features_of(model, x), y, weights)
    return F.cross_entropy(model.fc(mixed), classes)


def test_synermix_intra_term_matches_reference():
    model = TinyNet()
    x, y = data(9)
    syner = SynerMix(model, "pool", "fc", beta=1.0, num_classes=C)
    loss = syner.loss(x, x.flip(-1), y, generator=seeded())
    weights = 1.0 - torch.rand(9, generator=seeded())  # drawn first, documented
    ref = reference_intra(model, x, y, weights)
    torch.testing.assert_close(loss, ref)
    assert math.isclose(syner.last_terms["intra"], float(ref.detach()), rel_tol=1e-5)
    assert math.isnan(syner.last_terms["inter"])  # beta = 1: not computed


def test_synermix_combines_terms_with_beta():
    model = TinyNet()
    x, y = data(9)
    aug = x.flip(-1)
    beta = 0.3
    syner = SynerMix(model, "pool", model.fc, beta=beta, num_classes=C)
    loss = syner.loss(x, aug, y, generator=seeded())
    weights = 1.0 - torch.rand(9, generator=seeded())
    intra = reference_intra(model, x, y, weights)
    inter = F.cross_entropy(model(aug), y)
    torch.testing.assert_close(loss, beta * intra + (1 - beta) * inter)
    assert math.isclose(syner.last_terms["inter"], float(inter.detach()), rel_tol=1e-5)


def test_synermix_inter_with_input_mixup_matches_replay():
    model = TinyNet()
    x, y = data(8)
    aug = x + 0.1
    mix = MixUp(alpha=1.0, num_classes=C)
    syner = SynerMix(model, "pool", "fc", beta=0.1, inter=mix, num_classes=C)
    loss = syner.loss(x, aug, y, generator=seeded())
    g = seeded()
    weights = 1.0 - torch.rand(8, generator=g)
    mixed, soft = mix(aug, y, generator=g)
    ref = 0.1 * reference_intra(model, x, y, weights) + 0.9 * soft_target_cross_entropy(model(mixed), soft)
    torch.testing.assert_close(loss, ref)


def test_synermix_intra_alone_published_setting():
    model = TinyNet()
    x, y = data(8)
    syner = SynerMix(model, "pool", "fc", beta=0.5, num_classes=C)  # SynerMix-Intra
    loss = syner.loss(x, x, y, generator=seeded())
    terms = syner.last_terms
    assert math.isclose(float(loss.detach()), 0.5 * terms["intra"] + 0.5 * terms["inter"], rel_tol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 0.0])
def test_gradients_from_each_synermix_term(beta):
    model = TinyNet()
    x, y = data(8)
    inter = ManifoldMixup(model, ["block"], num_classes=C)  # mixing layer in the middle
    syner = SynerMix(model, "pool", "fc", beta=beta, inter=inter, num_classes=C)
    syner.loss(x, x.flip(-1), y, generator=seeded()).backward()
    # before the mixing layer (stem), at it (block) and after it (fc, also the intra head)
    for name in ["stem.0.weight", "block.0.weight", "fc.weight", "fc.bias"]:
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, (beta, name)
    assert syner.taps._armed is None and inter.taps._armed is None  # hooks stay registered but idle


@pytest.mark.parametrize("inter_kind", ["none", "mixup", "manifold", "zeta-hidden"])
def test_single_pass_equals_two_passes_without_batch_norm(inter_kind):
    model = TinyNet(bn=False)
    x, y = data(8)
    aug = x.flip(-2)

    def make(single):
        inter = {
            "none": None,
            "mixup": MixUp(alpha=1.0, num_classes=C),
            "manifold": ManifoldMixup(model, ["", "stem", "block"], num_classes=C),
            "zeta-hidden": ManifoldMixup(model, ["block"], mixer=ZetaMixup(gamma=2.0, num_classes=C)),
        }[inter_kind]
        return SynerMix(model, "pool", "fc", beta=0.1, inter=inter, num_classes=C, single_pass=single)

    for seed in range(3):
        two = make(False).loss(x, aug, y, generator=seeded(seed))
        one = make(True).loss(x, aug, y, generator=seeded(seed))
        torch.testing.assert_close(one, two)


def test_single_pass_changes_batch_norm_statistics():
    model = TinyNet(bn=True)
    x, y = data(8)
    aug = 3 * x + 1  # other statistics than the originals
    two = SynerMix(model, "pool", "fc", beta=0.5, num_classes=C).loss(x, aug, y, generator=seeded())
    one = SynerMix(model, "pool", "fc", beta=0.5, num_classes=C, single_pass=True).loss(
        x, aug, y, generator=seeded())
    assert not torch.allclose(one, two)


def test_synermix_exception_leaves_no_hook():
    model = nn.Sequential(nn.Linear(4, 5), Boom(), nn.Linear(5, C))
    syner = SynerMix(model, "0", "2", beta=0.5, num_classes=C)
    x, y = torch.randn(4, 4), torch.tensor([0, 0, 1, 1])
    for single in (False, True):
        syner.single_pass = single
        with pytest.raises(RuntimeError, match="boom"):
            syner.loss(x, x, y)
        assert syner.taps._armed is None  # hooks stay registered but idle


def test_synermix_errors():
    model = TinyNet()
    x, y = data(4)
    with pytest.raises(ValueError, match="feature_layer: expected the name of a submodule .*got 'penult'"):
        SynerMix(model, "penult", "fc", num_classes=C)
    with pytest.raises(ValueError, match="head: expected the name of a submodule .*got 'classifier'"):
        SynerMix(model, "pool", "classifier", num_classes=C)
    with pytest.raises(TypeError, match="head: expected a layer name or a callable, got int"):
        SynerMix(model, "pool", 3, num_classes=C)
    with pytest.raises(ValueError, match=r"beta: expected a number in \[0, 1\], got 1.5"):
        SynerMix(model, "pool", "fc", beta=1.5, num_classes=C)
    with pytest.raises(ValueError, match="num_classes: expected an integer >= 1, got 0"):
        SynerMix(model, "pool", "fc", num_classes=0)
    with pytest.raises(ValueError, match="inter: expected a ManifoldMixup of the same model"):
        SynerMix(model, "pool", "fc", num_classes=C, inter=ManifoldMixup(TinyNet(), ["stem"], num_classes=C))
    with pytest.raises(TypeError, match="inter: expected None, a ManifoldMixup or a mixer"):
        SynerMix(model, "pool", "fc", num_classes=C, inter="mixup")
    with pytest.raises(ValueError, match="inter: expected num_classes=3, got a mixer with 5"):
        SynerMix(model, "pool", "fc", num_classes=C, inter=MixUp(num_classes=5))
    syner = SynerMix(model, "pool", "fc", num_classes=C)
    with pytest.raises(ValueError, match=r"labels: expected integer class ids of shape \(B,\)"):
        syner.loss(x, x, F.one_hot(y, C).float())
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 2\], got values in \[0, 7\]"):
        syner.loss(x, x, torch.tensor([0, 7, 1, 1]))
    with pytest.raises(ValueError, match="augmented: expected 4 samples"):
        syner.loss(x, x[:3], y)
    single = SynerMix(model, "pool", "fc", num_classes=C, single_pass=True)
    with pytest.raises(ValueError, match="augmented: expected the shape of originals"):
        single.loss(x, torch.randn(4, 1, 8, 8), y)


def test_feature_layer_not_b_by_d_is_an_error():
    class MeanAll(nn.Module):
        def forward(self, x):
            return x.mean(dim=(1, 2, 3))  # (B,): not (B, D)

    class Net(TinyNet):
        def __init__(self):
            super().__init__()
            self.squash = MeanAll()

        def forward(self, x):
            h = self.block(self.stem(x))
            self.squash(h)
            return self.fc(self.pool(h).flatten(1))

    model = Net()
    x, y = data(4)
    syner = SynerMix(model, "squash", "fc", beta=0.5, num_classes=C)
    with pytest.raises(ValueError, match=r"feature_layer: expected layer 'squash' to output \(B, D\) after "
                                         r"flattening, with B = 4, got \(4,\)"):
        syner.loss(x, x, y)
    assert syner.taps._armed is None  # hooks stay registered but idle


def test_head_that_does_not_map_d_to_num_classes_is_an_error():
    model = TinyNet()
    x, y = data(4)
    # features are (B, 6 * 6 * 6) at "block": fc expects 6 inputs
    with pytest.raises(ValueError, match=r"head: expected a map from features \(K, 216\) to logits \(K, 3\)"):
        SynerMix(model, "block", "fc", beta=1.0, num_classes=C).loss(x, x, y)
    # right input size, wrong number of classes
    with pytest.raises(ValueError, match=r"head: expected logits of shape \(5, 5\) for features of shape "
                                         r"\(5, 6\), got \(5, 3\)"):
        SynerMix(model, "pool", "fc", beta=1.0, num_classes=5).loss(x, x, y)
    with pytest.raises(ValueError, match=r"head: expected logits of shape \(3, 3\)"):
        SynerMix(model, "pool", lambda h: h.sum(1), beta=1.0, num_classes=C).loss(x, x, y)


# ---------------------------------------------------------------------------------------------
# Third-party models, by layer names


def check_third_party(model, mix_layers, feature_layer, head):
    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.tensor([0, 0, 1, 1])
    plain = model(x)
    mm = ManifoldMixup(model, mix_layers, alpha=2.0, num_classes=10)
    for name in mix_layers:
        single = ManifoldMixup(model, [name], alpha=2.0, num_classes=10)
        logits, soft = single(x, y, generator=seeded(1))
        assert logits.shape == (4, 10) and soft.shape == (4, 10)
        torch.testing.assert_close(soft.sum(1), torch.ones(4))
        assert not torch.allclose(logits, plain)
    assert mm.taps._armed is None  # hooks stay registered but idle
    torch.testing.assert_close(model(x), plain)
    syner = SynerMix(model, feature_layer, head, beta=0.1, inter=mm, num_classes=10)
    model.zero_grad()
    loss = syner.loss(x, x.flip(-1), y, generator=seeded(2))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(gr is not None for gr in grads)
    assert mm.taps._armed is None and syner.taps._armed is None  # hooks stay registered but idle
    model.eval()
    logits, _ = mm(x, y)
    torch.testing.assert_close(logits, model(x))


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_torchvision_resnet18_by_layer_names():
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    check_third_party(models.resnet18(num_classes=10), ["", "layer1", "layer2"], "avgpool", "fc")


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_timm_resnet_by_layer_names():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    check_third_party(model, ["", "layer1", "layer2"], "global_pool", "fc")


def test_torchvision_basic_block_relu_is_rejected_clearly():
    models = pytest.importorskip("torchvision.models")
    model = models.resnet18(num_classes=10)
    mm = ManifoldMixup(model, ["layer1.0.relu"], num_classes=10)  # called twice in BasicBlock
    with pytest.raises(ValueError, match="to run once per forward"):
        mm(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert mm.taps._armed is None  # hooks stay registered but idle


def test_labels_may_be_probabilities():
    model = TinyNet()
    x, y = data(6)
    probs = to_soft_labels(y, C) * 0.8 + 0.2 / C
    mm = ManifoldMixup(model, ["stem"], num_classes=C)
    _, soft = mm(x, probs, generator=seeded())
    torch.testing.assert_close(soft.sum(1), torch.ones(6))
    assert bool((soft >= 0.2 / C - 1e-6).all())


# ---------------------------------------------------------------------------------------------
# Model-aware methods pickle and deep-copy with their model (spawn workers, copy.deepcopy); the
# copy registers its own hooks on the copied model, and a copied model alone keeps idle hooks.


def _model_aware_methods():
    import torch.nn as nn

    def vit():
        from torchvision.models import VisionTransformer
        return VisionTransformer(image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=16,
                                 mlp_dim=32, num_classes=3)

    def mlp():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 3))

    m1, m2, m3 = mlp(), mlp(), vit()
    return [
        mixkit.ManifoldMixup(m1, ["", "0"], num_classes=3),
        mixkit.SynerMix(m2, "2", "3", beta=0.1, num_classes=3, inter=mixkit.ManifoldMixup(m2, ["0"], num_classes=3)),
        mixkit.TransMix(m3, "encoder.layers.encoder_layer_0.self_attention", num_classes=3),
    ]


@pytest.mark.parametrize("index", range(3), ids=["manifold", "synermix", "transmix"])
def test_model_aware_methods_pickle_and_deepcopy(index):
    import copy
    import pickle

    method = _model_aware_methods()[index]
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 0, 1, 1, 2, 2])

    def loss(m):
        if m.needs_originals:
            return m.loss(x, x.flip(-1), y, generator=torch.Generator().manual_seed(0))
        return m.loss(x, y, generator=torch.Generator().manual_seed(0))

    expected = loss(method)
    for clone in (pickle.loads(pickle.dumps(method)), copy.deepcopy(method)):
        assert clone.model is not method.model
        torch.testing.assert_close(loss(clone), expected)
        assert repr(clone) == repr(method)
    # the copy's hooks are its own: removing the original's leaves it working
    clone = copy.deepcopy(method)
    method.taps.remove()
    torch.testing.assert_close(loss(clone), expected)
    # a deep copy of the model alone (an EMA copy) runs as a plain model: its copied hooks are idle
    twin = copy.deepcopy(clone.model)
    torch.testing.assert_close(twin(x), clone.model(x))
