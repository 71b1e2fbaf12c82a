"""torch.compile: ``apply`` compiles with fullgraph=True for every mixer and mode, a whole call
without a generator traces without graph breaks, and the hidden-layer methods take a compiled
model by its plain layer names with few recompiles."""

import grid
import pytest
import torch
import torch._dynamo
from test_mixers_contract import FACTORIES, INPLACE, C
from torch import nn
from torch._dynamo.utils import counters

import mixkit


def _data(shape=(6, 3, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.randint(0, C, (shape[0],), generator=g)


# One variant of each mixer and combination compiles in the fast set (its first example
# configuration); the other variants (in-place, p < 1, other spectra and resampling) are slow.
# The fast subset splits the methods between the two tests below (each compiles in ~1-3 s); the
# full suite runs both on every method.
_ONE_EACH = grid.one_per_method(FACTORIES)
_FAST_APPLY, _FAST_CALL = set(_ONE_EACH[0::2]), set(_ONE_EACH[1::2])
GRID = [n if n in _FAST_APPLY else pytest.param(n, marks=pytest.mark.slow) for n in FACTORIES]
CALL_GRID = [n if n in _FAST_CALL else pytest.param(n, marks=pytest.mark.slow) for n in FACTORIES]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", GRID)
def test_apply_compiles_fullgraph_equal_to_eager(name):
    x, y = _data()
    mixer = FACTORIES[name]()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(1))
    eager = mixer.apply(x.clone(), y, params)
    compiled = torch.compile(mixer.apply, fullgraph=True, backend="eager")
    inp = x.clone()
    out = compiled(inp, y, params)
    assert torch.equal(out[0], eager[0]) and torch.equal(out[1], eager[1])
    if name in INPLACE:
        assert torch.equal(inp, eager[0])
    probs = torch.rand(6, C).softmax(1)
    torch.testing.assert_close(compiled(x.clone(), probs, params)[1], mixer.apply(x.clone(), probs, params)[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", grid.one_per_method(FACTORIES))
def test_apply_compiles_with_inductor_close_to_eager(name):
    x, y = _data((8, 3, 16, 16))
    mixer = FACTORIES[name]()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(1))
    eager = mixer.apply(x.clone(), y, params)
    out = torch.compile(mixer.apply, fullgraph=True)(x.clone(), y, params)
    torch.testing.assert_close(out[0], eager[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out[1], eager[1])


@pytest.mark.parametrize("name", CALL_GRID)
def test_whole_call_without_generator_has_no_graph_break(name):
    x, y = _data()
    mixer = FACTORIES[name]()
    report = torch._dynamo.explain(lambda a, b: mixer(a, b))(x, y)
    if isinstance(mixer, mixkit.RandomChoice):
        # Which mixer runs is Python control flow on a random draw: its value must be on the host
        # (Tensor.item()), which dynamo does not trace. This break is the only one.
        assert report.graph_break_count >= 1
        assert all("item()" in str(r.reason) for r in report.break_reasons)
    else:
        assert report.graph_break_count == 0, [str(r.reason)[:200] for r in report.break_reasons]


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, C)

    def forward(self, x):
        return self.fc(self.pool(self.layer2(self.layer1(self.stem(x)))).flatten(1))


def _frames_compiled_in_a_run(make_loss, model, steps=20):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    counters.clear()
    torch.manual_seed(0)
    for step in range(steps):
        x, y = _data((16, 3, 8, 8), seed=step)
        loss = make_loss(x, y)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return counters["frames"]["total"]


@pytest.mark.slow
def test_manifold_mixup_on_a_compiled_model_by_plain_names_recompiles_once_per_layer():
    net = _Net()
    compiled = torch.compile(net, backend="aot_eager")
    layers = ["", "layer1", "layer2"]
    mm = mixkit.ManifoldMixup(compiled, layers, alpha=1.0, num_classes=C)
    frames = _frames_compiled_in_a_run(lambda x, y: mm.loss(x, y), net)
    print(f"ManifoldMixup, compiled model, 20 steps, no generator: {frames} frames compiled")
    assert frames <= len(layers)  # one graph per layer chosen, none after
    # with a generator, dynamo breaks the graph at each draw that takes it (torch.Generator is not
    # traceable), so each layer's forward compiles in pieces; still bounded, not growing per step
    gen = torch.Generator().manual_seed(0)
    torch._dynamo.reset()
    first = _frames_compiled_in_a_run(lambda x, y: mm.loss(x, y, generator=gen), net)
    more = _frames_compiled_in_a_run(lambda x, y: mm.loss(x, y, generator=gen), net)
    print(f"ManifoldMixup, compiled model, 20 steps, with a generator: {first} frames compiled, "
          f"then {more} in 20 more steps")
    assert more == 0


@pytest.mark.slow
def test_synermix_on_a_compiled_model_recompiles_little():
    net = _Net()
    compiled = torch.compile(net, backend="aot_eager")
    inter = mixkit.ManifoldMixup(compiled, ["layer1", "layer2"], alpha=1.0, num_classes=C)
    syner = mixkit.SynerMix(compiled, "pool", "fc", beta=0.1, inter=inter, num_classes=C)
    frames = _frames_compiled_in_a_run(lambda x, y: syner.loss(x, x.flip(-1), y), net)
    print(f"SynerMix + ManifoldMixup, compiled model, 20 steps: {frames} frames compiled")
    assert frames <= 6
    assert _frames_compiled_in_a_run(lambda x, y: syner.loss(x, x.flip(-1), y), net) == 0
