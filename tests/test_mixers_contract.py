"""The contract every mixer keeps, parametrised over mixers, modes, data ranks, dtypes and sizes.

Data is made on the CPU from a seeded CPU generator, then moved to the device of ``--device``
(``pytest --device cuda``); the mixers get CPU generators there too (valid for inputs on any
device).
"""

import pickle

import grid
import pytest
import torch

import mixkit

C = 7  # classes

# case id -> factory: every registered input mixer in each of its example configurations, the
# registered combinations and a RandomChoice (tests/grid.py, from mixkit.registry)
FACTORIES = grid.mixers(C)
INPLACE = set(grid.select(FACTORIES, grid.inplace))
ANY_RANK = list(grid.select(FACTORIES, grid.any_rank))

SHAPES = {
    "1d": (5, 2, 12),
    "2d": (5, 3, 8, 6),
    "3d": (3, 1, 4, 5, 6),
    "2d-batch1": (1, 3, 8, 8),
    "2d-odd": (9, 1, 7, 9),
}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _labels(b, gen, device="cpu"):
    return torch.randint(0, C, (b,), generator=gen).to(device)


def _rand(shape, gen, device="cpu"):
    return torch.rand(shape, generator=gen).to(device)


def _run(name, x, y, seed):
    mixer = FACTORIES[name]()
    return mixer(x, y, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", FACTORIES)
def test_shape_labels_and_no_write(name, shape, gen, device):
    x = _rand(shape, gen, device)
    y = _labels(shape[0], gen, device)
    before = x.clone()
    mixed, soft = _run(name, x, y, 0)
    assert mixed.shape == x.shape and mixed.dtype == x.dtype and mixed.device == x.device
    assert soft.shape == (shape[0], C) and soft.dtype == torch.float32
    assert bool((soft >= 0).all())
    torch.testing.assert_close(soft.sum(1), torch.ones(shape[0], device=device))
    assert torch.isfinite(mixed).all()
    if name in INPLACE:
        assert mixed.data_ptr() == x.data_ptr()
    else:
        assert torch.equal(x, before), "the input was modified without inplace=True"
    # every value is a convex combination of the batch's values
    assert mixed.min() >= before.min() - 1e-6 and mixed.max() <= before.max() + 1e-6


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", FACTORIES)
def test_dtypes_kept_labels_not_cast(name, dtype, gen, device):
    x = torch.rand(6, 3, 8, 8, generator=gen).to(device=device, dtype=dtype)
    y = _labels(6, gen, device)
    ref, ref_soft = _run(name, x.double(), y, 3)
    mixed, soft = _run(name, x, y, 3)
    assert mixed.dtype == dtype
    assert soft.dtype == torch.float32  # never the images' dtype
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2}.get(dtype, 1e-6)
    torch.testing.assert_close(mixed.double(), ref, atol=tol, rtol=0)
    torch.testing.assert_close(soft.double(), ref_soft.double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", FACTORIES)
def test_sample_then_apply_equals_call(name, gen, device):
    x = _rand((6, 3, 8, 8), gen, device)
    y = _labels(6, gen, device)
    direct = _run(name, x.clone(), y, 11)
    mixer = FACTORIES[name]()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(11))
    replay = mixer.apply(x.clone(), y, params)
    again = mixer.apply(x.clone(), y, params) if not isinstance(mixer, mixkit.Alternate) else replay
    for a, b in zip(direct, replay, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(replay, again, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_output_and_global_rng_untouched(name, gen, device):
    x = _rand((6, 3, 8, 8), gen, device)
    y = _labels(6, gen, device)
    state = torch.get_rng_state()
    a = _run(name, x.clone(), y, 5)
    b = _run(name, x.clone(), y, 5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = _run(name, x.clone(), y, 6)
    d = _run(name, x.clone(), y, 7)
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[0], d[0])), "seed has no effect"


def test_default_generator_is_torch_global(device):
    x, y = torch.rand(8, 3, 8, 8).to(device), torch.randint(0, C, (8,)).to(device)
    torch.manual_seed(3)
    a = mixkit.FMix(num_classes=C, mode="elem")(x, y)
    torch.manual_seed(3)
    b = mixkit.FMix(num_classes=C, mode="elem")(x, y)
    assert torch.equal(a[0], b[0])


# Every mixer through the copy-back path; the in-place mixers also through the cycle walk (an
# in-place path only, forced here at any size).
LAYOUT_CASES = [pytest.param(name, False, id=f"{name}-copy-back") for name in FACTORIES] + [
    pytest.param(name, True, id=f"{name}-cycle-walk") for name in FACTORIES if name in INPLACE]


@pytest.mark.parametrize("name, walk", LAYOUT_CASES)
def test_channels_last_and_non_contiguous(name, walk, gen, monkeypatch, device):
    from mixkit.functional import host

    if walk:
        monkeypatch.setattr(host, "WALK_MIN_NUMEL", 0)
    x = _rand((6, 3, 10, 8), gen, device)
    y = _labels(6, gen, device)
    ref = _run(name, x.clone(), y, 2)
    cl = x.clone().to(memory_format=torch.channels_last)
    out_cl = _run(name, cl, y, 2)
    torch.testing.assert_close(out_cl[0], ref[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out_cl[1], ref[1])
    if name not in INPLACE:
        assert out_cl[0].is_contiguous(memory_format=torch.channels_last)
    big = torch.zeros(6, 3, 10, 16, device=device)
    big[..., ::2] = x
    view = big[..., ::2]
    assert not view.is_contiguous()
    out_nc = _run(name, view, y, 2)
    torch.testing.assert_close(out_nc[0], ref[0], atol=1e-6, rtol=0)
    if name in INPLACE:
        torch.testing.assert_close(big[..., ::2], ref[0], atol=1e-6, rtol=0)
        assert torch.equal(big[..., 1::2], torch.zeros(6, 3, 10, 8, device=device))


@pytest.mark.parametrize("name", FACTORIES)
def test_soft_labels_in_soft_labels_out(name, gen, device):
    x = _rand((6, 3, 8, 8), gen, device)
    probs = torch.rand(6, C, generator=gen).softmax(1).double().to(device)
    mixed, soft = _run(name, x, probs, 4)
    assert soft.dtype == torch.float64
    torch.testing.assert_close(soft.sum(1), torch.ones(6, dtype=torch.float64, device=device))
    hard = _run(name, x, probs.argmax(1), 4)
    assert torch.equal(mixed, hard[0])


@pytest.mark.parametrize("name", FACTORIES)
def test_pickles(name, device):
    mixer = FACTORIES[name]()
    clone = pickle.loads(pickle.dumps(mixer))
    x, y = torch.rand(4, 1, 8, 8).to(device), torch.arange(4).to(device)
    a = mixer(x, y, generator=torch.Generator().manual_seed(0))
    b = clone(x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0])
    assert repr(clone) == repr(mixer)


@pytest.mark.parametrize("name", ANY_RANK)
def test_any_input_rank_for_non_mask_mixers(name, gen, device):
    for shape in [(9, 2), (4, 5), (3, 2, 2, 2, 2, 2)]:
        x = torch.randn(shape, generator=gen).to(device)
        mixed, soft = _run(name, x.clone(), _labels(shape[0], gen, device), 0)
        assert mixed.shape == x.shape and soft.shape == (shape[0], C)


def test_p_zero_is_identity(gen, device):
    x = _rand((5, 3, 8, 8), gen, device)
    y = _labels(5, gen, device)
    for m in [make() for make in grid.modes(C, p=0.0).values()]:
        mixed, soft = m(x, y, generator=gen)
        assert torch.equal(mixed, x)
        assert torch.equal(soft, torch.nn.functional.one_hot(y, C).float())


def test_p_elem_fraction_and_untouched_rows(gen, device):
    x = _rand((400, 1, 4, 4), gen, device)
    y = _labels(400, gen, device)
    m = mixkit.MixUp(num_classes=C, mode="elem", p=0.3)
    params = m.sample(x, generator=gen)
    frac = params.applied.float().mean().item()
    assert 0.2 < frac < 0.4
    mixed, _ = m.apply(x, y, params)
    keep = ~params.applied
    assert torch.equal(mixed[keep], x[keep])
    assert torch.equal(params.lam[keep], torch.ones(int(keep.sum()), device=params.lam.device))
