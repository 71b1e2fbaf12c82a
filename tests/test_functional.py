"""Exactness of the functional layer: every vectorised path against a slow per-sample reference,
the papers' formulas, and statistical checks over many draws (no pinned random values)."""

import math

import grid
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mixkit
from mixkit import functional as F
from mixkit.functional import mixing

# ---------------------------------------------------------------------------------------------
# Slow, obviously-correct references.


def ref_blend_pairs(x, index, lam):
    return torch.stack([lam[i] * x[i] + (1 - lam[i]) * x[index[i]] for i in range(x.shape[0])])


def ref_blend_matrix(x, W):
    out = torch.zeros_like(x)
    for p in range(x.shape[0]):
        for i in range(x.shape[0]):
            out[p] += W[p, i] * x[i]
    return out


def ref_blend_mask(x, index, mask):
    rows = []
    for i in range(x.shape[0]):
        m = mask[0] if mask.shape[0] == 1 else mask[i]
        rows.append(m * x[i] + (1 - m) * x[index[i]])
    return torch.stack(rows)


def ref_box_keep(boxes, spatial):
    out = torch.ones((boxes.shape[0],) + tuple(spatial))
    for b in range(boxes.shape[0]):
        region = tuple(slice(int(lo), int(hi)) for lo, hi in boxes[b])
        out[b][region] = 0
    return out


def ref_binarise(noise, k, soft=None):
    """Per sample: sort descending, set the first k to 1 (or a ramp of 2*soft ranks around k)."""
    out = torch.zeros(noise.shape[0], noise[0].numel(), dtype=torch.float64)
    for b in range(noise.shape[0]):
        order = torch.sort(noise[b].flatten(), descending=True).indices
        s = 0 if soft is None else int(soft[b])
        if s == 0:
            out[b, order[: int(k[b])]] = 1
        else:
            lo, hi = int(k[b]) - s, int(k[b]) + s
            out[b, order[:hi]] = 1
            out[b, order[lo:hi]] = torch.linspace(1, 0, hi - lo, dtype=torch.float64)
    return out.view(noise.shape)


# ---------------------------------------------------------------------------------------------
# Pairing blends.


@pytest.fixture(params=["copy-back", "cycle-walk"])
def inplace_path(request, monkeypatch):
    """Run in-place tests through both in-place strategies (small samples copy back through a
    temporary, large ones walk the permutation's cycles)."""
    from mixkit.functional import host

    monkeypatch.setattr(host, "WALK_MIN_NUMEL", 1 << 30 if request.param == "copy-back" else 0)
    return request.param


@pytest.mark.parametrize("b", [1, 2, 3, 8, 17])
def test_blend_pairs_matches_reference_inplace_and_not(b, gen, inplace_path):
    x = torch.randn(b, 3, 5, generator=gen, dtype=torch.float64)
    for _ in range(5):
        index = torch.randperm(b, generator=gen)
        lam = torch.rand(b, generator=gen, dtype=torch.float64)
        ref = ref_blend_pairs(x, index, lam)
        torch.testing.assert_close(F.blend_pairs(x, index, lam), ref)
        y = x.clone()
        out = F.blend_pairs(y, index, lam, inplace=True)
        assert out.data_ptr() == y.data_ptr()
        torch.testing.assert_close(y, ref)


def test_blend_pairs_inplace_special_permutations(gen, inplace_path):
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    lam = torch.full((10,), 0.3, dtype=torch.float64)
    for index in [torch.arange(10), torch.arange(10).flip(0), torch.roll(torch.arange(10), 1),
                  torch.tensor([1, 0, 3, 2, 5, 4, 7, 6, 9, 8])]:
        y = x.clone()
        F.blend_pairs(y, index, lam, inplace=True)
        torch.testing.assert_close(y, ref_blend_pairs(x, index, lam))


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 40), seed=st.integers(0, 2**31 - 1), walk=st.booleans())
def test_property_inplace_pairs_equal_out_of_place(b, seed, walk):
    from mixkit.functional import host

    old = host.WALK_MIN_NUMEL
    host.WALK_MIN_NUMEL = 0 if walk else 1 << 30
    try:
        _check_inplace_pairs(b, seed)
    finally:
        host.WALK_MIN_NUMEL = old


def _check_inplace_pairs(b, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 2, 3, generator=g)
    index = torch.randperm(b, generator=g)
    lam = torch.rand(b, generator=g)
    expected = F.blend_pairs(x, index, lam)
    y = x.clone()
    F.blend_pairs(y, index, lam, inplace=True)
    assert torch.equal(y, expected)  # same lerp formula on both paths: bitwise equal


# ---------------------------------------------------------------------------------------------
# zeta-mixup.


@pytest.mark.parametrize("b,n", [(1, None), (2, None), (7, None), (32, None), (32, 4), (9, 2), (5, 1)])
@pytest.mark.parametrize("gamma", [1.0, 2.8, 4.0])
def test_zeta_matrix_rows_are_the_p_series(b, n, gamma, gen):
    W, order = F.zeta_weight_matrix(b, gamma, n, generator=gen, dtype=torch.float64)
    N = b if n is None else min(n, b)
    series = F.zeta_weights(N, gamma)
    k = torch.arange(1, N + 1, dtype=torch.float64)
    torch.testing.assert_close(series, k.pow(-gamma) / k.pow(-gamma).sum())
    for p in range(b):
        row = W[p]
        assert int((row > 0).sum()) == N
        torch.testing.assert_close(row.sort(descending=True).values[:N], series)
        assert int(row.argmax()) == p
        assert int(order[p, 0]) == p
    torch.testing.assert_close(W.sum(1), torch.ones(b, dtype=torch.float64))


def test_zeta_matrix_cached_series_is_keyed_and_untouched(gen):
    # The matrix draws keep the p-series per (N, gamma, dtype, device): alternating keys, each
    # row must hold exactly the uncached series of its own key, draw after draw.
    for _ in range(2):
        for gamma, dtype in [(2.8, torch.float32), (2.8, torch.float64), (5.0, torch.float32)]:
            W, order = F.zeta_weight_matrix(6, gamma, 3, generator=gen, dtype=dtype)
            series = F.zeta_weights(3, gamma, dtype=dtype)
            assert W.dtype == dtype
            assert torch.equal(W.gather(1, order), series.expand(6, 3))


def test_zeta_other_ranks_uniform(gen):
    # Over many draws, the sample holding rank 2 in row 0 is uniform over the 7 others.
    counts = torch.zeros(8)
    draws = 7000
    for _ in range(draws):
        _, order = F.zeta_weight_matrix(8, 2.8, generator=gen)
        counts[order[0, 1]] += 1
    assert counts[0] == 0
    expected = draws / 7
    assert ((counts[1:] - expected).abs() < 5 * math.sqrt(expected)).all()


def test_zeta_blend_matches_reference(gen):
    x = torch.randn(6, 2, 3, 3, generator=gen, dtype=torch.float64)
    W, _ = F.zeta_weight_matrix(6, 2.0, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(F.blend_matrix(x, W), ref_blend_matrix(x, W))
    xc = x.to(memory_format=torch.channels_last)
    out = F.blend_matrix(xc, W)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref_blend_matrix(x, W))


def test_mixup_is_zeta_with_two_samples():
    for lam in [0.55, 0.7, 0.9, 0.99]:
        gamma = F.zeta_gamma_for_lambda(lam)
        assert gamma == pytest.approx(math.log2(lam / (1 - lam)))
        w = F.zeta_weights(2, gamma)
        torch.testing.assert_close(w, torch.tensor([lam, 1 - lam], dtype=torch.float64))
    # and the mixer: with B = 2, zeta-mixup mixes the pair exactly as mixup with that lam
    x = torch.randn(2, 5, dtype=torch.float64)
    lam = 0.8
    z = mixkit.ZetaMixup(gamma=F.zeta_gamma_for_lambda(lam), num_classes=2)
    mixed, soft = z(x, torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed, ref_blend_pairs(x, torch.tensor([1, 0]), torch.tensor([lam, lam])))
    torch.testing.assert_close(soft.double(), torch.tensor([[lam, 1 - lam], [1 - lam, lam]], dtype=torch.float64))


def test_zeta_dominance_gamma():
    g = F.ZETA_DOMINANCE_GAMMA
    # zeta(g*) = 2: the first term is half the infinite series
    big = torch.arange(1, 2_000_001, dtype=torch.float64).pow(-g).sum().item()
    assert big == pytest.approx(2.0, abs=2e-3)
    for n in [2, 3, 10, 128, 100_000]:
        assert F.zeta_weights(n, g)[0] >= 0.5  # own weight >= all others together
    # just below g*, large N breaks dominance
    assert F.zeta_weights(100_000, 1.6)[0] < 0.5
    # the dominant weights for m = 128 quoted from the paper's code
    for gamma, w in [(1.7286, 0.51), (2.0, 0.61), (2.4, 0.72), (2.8, 0.80), (4.0, 0.92)]:
        assert F.zeta_weights(128, gamma)[0].item() == pytest.approx(w, abs=0.006)


# ---------------------------------------------------------------------------------------------
# Beta draws and boxes.


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.2, 0.2), (2.0, 2.0), (2.0, 1.0), (0.05, 0.05)])
def test_beta_moments(a, b, gen):
    s = F.sample_beta(a, b, size=40000, generator=gen).double()
    assert torch.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    assert s.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / 40000) + 1e-4)
    assert s.var().item() == pytest.approx(var, rel=0.05)


def test_mixup_lambda_statistics(gen):
    m = mixkit.MixUp(alpha=0.4, num_classes=3, mode="elem")
    lam = m.sample(torch.zeros(20000, 1), generator=gen).lam.double()
    var = 0.4 * 0.4 / (0.8**2 * 1.8)
    assert lam.mean().item() == pytest.approx(0.5, abs=0.01)
    assert lam.var().item() == pytest.approx(var, rel=0.05)


def test_box_keep_mask_matches_reference(gen):
    for spatial in [(13,), (7, 9), (4, 5, 6)]:
        lam = torch.rand(20, generator=gen)
        boxes = F.sample_boxes(lam, spatial, generator=gen)
        keep = F.box_keep_mask(boxes, spatial)
        torch.testing.assert_close(keep, ref_box_keep(boxes, spatial))
        # corrected lambda is exactly the kept fraction
        torch.testing.assert_close(F.boxes_lambda(boxes, spatial), keep.flatten(1).mean(1))


def test_box_size_matches_lambda_when_inside(gen):
    # a box away from the borders has volume fraction 1 - lam up to rounding of each side
    spatial = (64, 64)
    lam = torch.full((4000,), 0.75)
    boxes = F.sample_boxes(lam, spatial, generator=gen)
    side = boxes[..., 1] - boxes[..., 0]
    inside = (boxes[..., 0] > 0).all(1) & (boxes[..., 1] < 64).all(1)
    assert inside.sum() > 700  # about (32/64)^2 of the draws
    assert (side[inside] == 32).all()


def test_box_centres_uniform_up_to_borders(gen):
    # 1-D, side 8 of 32: pixel i is covered by centres c with c - 4 <= i < c + 4, c uniform in [0, 32)
    n, draws = 32, 40000
    lam = torch.full((draws,), 0.75)
    boxes = F.sample_boxes(lam, (n,), generator=gen)
    keep = F.box_keep_mask(boxes, (n,))
    cover = (1 - keep).mean(0).double()
    expected = torch.tensor(
        [sum(1 for c in range(n) if c - 4 <= i < c + 4) / n for i in range(n)], dtype=torch.float64
    )
    assert (cover - expected).abs().max() < 0.012
    assert expected[0] < expected[16]  # clipping at the border is real


def test_paste_box_and_mask_blends_match_reference(gen, inplace_path):
    x = torch.randn(6, 2, 9, 7, generator=gen, dtype=torch.float64)
    index = torch.randperm(6, generator=gen)
    box = torch.tensor([[2, 6], [1, 7]])
    keep = F.box_keep_mask(box[None], (9, 7), dtype=torch.float64)
    ref = ref_blend_mask(x, index, keep)
    torch.testing.assert_close(F.paste_box(x, index, box), ref)
    y = x.clone()
    F.paste_box(y, index, box, inplace=True)
    torch.testing.assert_close(y, ref)
    for mask in [keep, torch.rand(6, 9, 7, generator=gen, dtype=torch.float64),
                 (torch.rand(1, 9, 7, generator=gen) > 0.5).double(),
                 (torch.rand(6, 9, 7, generator=gen) > 0.5).double()]:
        ref = ref_blend_mask(x, index, mask)
        torch.testing.assert_close(F.blend_mask(x, index, mask), ref)
        y = x.clone()
        F.blend_mask(y, index, mask, inplace=True)
        torch.testing.assert_close(y, ref)
        assert torch.equal(y, F.blend_mask(x, index, mask))  # bit for bit


# ---------------------------------------------------------------------------------------------
# Fourier masks.


@pytest.mark.parametrize("spatial", [(40,), (28, 28), (9, 13), (8, 6, 10)])
def test_binarise_matches_reference_and_mask_mean_is_lambda(spatial, gen):
    noise = F.fourier_noise(12, spatial, 3.0, generator=gen)
    lam = torch.rand(12, generator=gen)
    g1 = torch.Generator().manual_seed(9)
    mask = F.binarise_noise(noise, lam, generator=g1, dtype=torch.float64)
    up = torch.rand(12, generator=torch.Generator().manual_seed(9)) > 0.5
    n = math.prod(spatial)
    k = torch.where(up, torch.ceil(lam.double() * n), torch.floor(lam.double() * n))
    torch.testing.assert_close(mask, ref_binarise(noise, k))
    assert ((mask.flatten(1).mean(1) - lam.double()).abs() <= 1.0 / n + 1e-9).all()


def test_binarise_soft_ramp_matches_reference(gen):
    spatial = (16, 16)
    noise = F.fourier_noise(10, spatial, 3.0, generator=gen)
    lam = torch.rand(10, generator=gen)
    mask = F.binarise_noise(noise, lam, max_soft=0.1, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)
    up = torch.rand(10, generator=torch.Generator().manual_seed(1)) > 0.5
    n = 256
    lam64 = lam.double()
    k = torch.where(up, torch.ceil(lam64 * n), torch.floor(lam64 * n))
    soft = torch.floor(n * torch.minimum(torch.minimum(lam64, 1 - lam64), torch.tensor(0.1)))
    torch.testing.assert_close(mask, ref_binarise(noise, k, soft))
    assert ((mask.flatten(1).mean(1) - lam64).abs() <= 1.0 / n + 1e-9).all()


def _axis_energy(noise, axis, min_freq):
    """Share of spectral power at |frequency| >= min_freq along ``axis`` of 2-D noise."""
    p = torch.fft.fft2(noise.double()).abs().pow(2).mean(0)
    f = torch.fft.fftfreq(p.shape[axis]) * p.shape[axis]
    sel = f.abs() >= min_freq
    part = p.index_select(axis, sel.nonzero().flatten()).sum()
    return (part / p.sum()).item()


def test_paper_spectrum_is_isotropic_official_is_stripes(gen):
    noise = F.fourier_noise(300, (32, 32), 3.0, generator=gen)
    vert, horiz = _axis_energy(noise, 0, 2), _axis_energy(noise, 1, 2)
    assert vert > 0.005 and horiz > 0.005
    assert 0.8 < vert / horiz < 1.25
    off = F.fourier_noise(300, (32, 32), 3.0, generator=gen, spectrum="official")
    assert _axis_energy(off, 1, 2) < 1e-12  # horizontal frequencies >= 2 absent: stripes
    assert _axis_energy(off, 0, 2) > 0.005
    # each thresholded row of an official mask is one circular segment (<= 2 transitions)
    masks = F.binarise_noise(off, torch.full((300,), 0.5), generator=gen)
    flips = (masks != masks.roll(1, dims=2)).sum(2)
    assert flips.max() <= 2
    iso = F.binarise_noise(noise, torch.full((300,), 0.5), generator=gen)
    assert ((iso != iso.roll(1, dims=2)).sum(2) > 2).float().mean() > 0.005


def test_spectrum_scale_law(gen):
    # mean power at frequency f follows 1 / max(f, 1/n)^(2 delta)
    n, delta = 64, 2.0
    noise = F.fourier_noise(400, (n,), delta, generator=gen)
    p = torch.fft.rfft(noise.double()).abs().pow(2).mean(0)
    f = torch.fft.rfftfreq(n).double()
    expected = 1.0 / f.clamp_min(1.0 / n).pow(2 * delta)
    ratio = (p[1:20] / expected[1:20]) / (p[1] / expected[1])
    assert ((ratio > 0.6) & (ratio < 1.6)).all()


def test_fmix_params_lam_is_mask_mean(gen):
    for shape in [(8, 1, 50), (8, 3, 28, 28), (4, 1, 6, 7, 8)]:
        fm = mixkit.FMix(num_classes=3, mode="elem")
        x = torch.rand(shape, generator=gen)
        params = fm.sample(x, generator=gen)
        n = math.prod(shape[2:])
        mean = params.mask.flatten(1).double().mean(1)
        torch.testing.assert_close(params.lam.double(), mean, atol=1e-6, rtol=0)
        mixed, _ = fm.apply(x, torch.zeros(shape[0], dtype=torch.long), params)
        torch.testing.assert_close(mixed, ref_blend_mask(x, params.index, params.mask))
        assert n > 0


def test_fmix_reformulate_lambda_and_labels(gen):
    fm = mixkit.FMix(alpha=1.0, num_classes=4, reformulate=True, mode="elem")
    x = torch.rand(6000, 1, 4, 4)
    lam = fm.sample(x, generator=gen).lam.double()
    assert lam.mean().item() == pytest.approx(2 / 3, abs=0.02)  # Beta(2, 1) mean, up to rounding
    y = torch.randint(0, 4, (6,), generator=gen)
    _, soft = fm(torch.rand(6, 1, 8, 8), y, generator=gen)
    assert torch.equal(soft, torch.nn.functional.one_hot(y, 4).float())


def test_cutmix_corrected_lambda_is_pasted_fraction(gen):
    x = torch.arange(6, dtype=torch.float64).view(6, 1, 1, 1).expand(6, 1, 12, 10).contiguous()
    for mode in ["batch", "elem"]:
        cm = mixkit.CutMix(num_classes=6, mode=mode)
        params = cm.sample(x, generator=gen)
        mixed, soft = cm.apply(x, torch.arange(6), params)
        own = (mixed == x).flatten(1).double().mean(1)
        self_paired = params.index == torch.arange(6)
        torch.testing.assert_close(own[~self_paired], params.lam.double()[~self_paired])
        torch.testing.assert_close(soft.diagonal().double()[~self_paired], params.lam.double()[~self_paired])


def test_top_k_mask_exact_with_ties(gen):
    # many ties: values from a handful of levels; every row keeps exactly k of its largest
    values = torch.randint(0, 4, (30, 50), generator=gen).float()
    k = torch.randint(0, 51, (30,), generator=gen)
    keep = F.top_k_mask(values, k)
    assert torch.equal(keep.sum(1), k)
    for b in range(30):
        if 0 < k[b] < 50:
            assert values[b][keep[b]].min() >= values[b][~keep[b]].max()


def test_top_k_mask_matches_sort_reference(gen):
    values = torch.randn(40, 77, generator=gen, dtype=torch.float64)
    k = torch.randint(0, 78, (40,), generator=gen)
    keep = F.top_k_mask(values, k)
    ref = torch.zeros_like(keep)
    for b in range(40):
        ref[b, values[b].argsort(descending=True)[: int(k[b])]] = True
    assert torch.equal(keep, ref)


# every registered mixer in each example configuration (tests/grid.py); combinations' params are
# their parts'
PROPERTY_CASES = grid.select(grid.mixers(3), lambda m: getattr(m, "mixers", None) is None)


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 9),
    spatial=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    seed=st.integers(0, 2**31 - 1),
    which=st.sampled_from(sorted(PROPERTY_CASES)),
)
def test_property_mixers_keep_invariants(b, spatial, seed, which):
    make = PROPERTY_CASES[which]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, 2, *spatial), generator=g)
    y = torch.randint(0, 3, (b,), generator=g)
    m = make()
    if getattr(m, "spectrum", None) == "official" and spatial[0] < 2:  # the official spectrum's rule
        with pytest.raises(ValueError, match="expected a first spatial size >= 2 for spectrum='official'"):
            m.sample(x, generator=g)
        return
    params = m.sample(x, generator=g)
    mixed, soft = m.apply(x, y, params)
    assert mixed.shape == x.shape
    assert ((params.lam >= 0) & (params.lam <= 1)).all()
    torch.testing.assert_close(soft.sum(1), torch.ones(b))
    assert (soft >= 0).all()
    # own-label weight is at least lam (the partner may share the class)
    own = soft.gather(1, y[:, None]).squeeze(1)
    assert (own >= params.lam - 1e-6).all()
    if params.mask is not None:
        n = math.prod(spatial)
        assert ((params.mask.flatten(1).mean(1) - params.lam[: params.mask.shape[0]]).abs() <= 1 / n + 1e-6).all()


# ---------------------------------------------------------------------------------------------
# Every host fast path (functional/host.py) equals the tensor path it stands in for, bit for bit:
# the same call with the host paths switched off is the reference.

HOST_CALLS = {
    "blend_pairs batch lam": lambda x, i, g, inplace: F.blend_pairs(
        x, i, torch.full((1,), 0.3).expand(x.shape[0]), inplace=inplace),
    "blend_pairs per-sample lam": lambda x, i, g, inplace: F.blend_pairs(
        x, i, torch.rand(x.shape[0], generator=g), inplace=inplace),
    "blend_mask per-sample": lambda x, i, g, inplace: F.blend_mask(
        x, i, torch.rand((x.shape[0], *x.shape[2:]), generator=g), inplace=inplace),
    "blend_mask one mask": lambda x, i, g, inplace: F.blend_mask(
        x, i, torch.rand((1, *x.shape[2:]), generator=g), inplace=inplace),
    "paste_boxes per-sample": lambda x, i, g, inplace: mixing.paste_boxes(
        x, i, F.sample_boxes(torch.rand(x.shape[0], generator=g), tuple(x.shape[2:]), generator=g),
        inplace=inplace),
    "paste_boxes one box": lambda x, i, g, inplace: mixing.paste_boxes(
        x, i, F.sample_boxes(torch.rand(1, generator=g), tuple(x.shape[2:]), generator=g), inplace=inplace),
}


@pytest.mark.parametrize("inplace", [False, True], ids=["out-of-place", "in-place"])
@pytest.mark.parametrize("call", HOST_CALLS, ids=HOST_CALLS.keys())
def test_host_fast_paths_equal_the_tensor_paths(call, inplace, monkeypatch):
    from mixkit.functional import host

    def run(fast):
        g = torch.Generator().manual_seed(3)
        x = torch.rand(6, 3, 40, 40, generator=g)  # 4,800 elements per sample
        index = torch.randperm(6, generator=g)
        with monkeypatch.context() as m:
            m.setattr(host, "WALK_MIN_NUMEL", 0 if fast else 1 << 40)
            m.setattr(host, "REGION_MIN_NUMEL", 0 if fast else 1 << 40)
            if not fast:
                m.setattr(host, "regions_ok", lambda x, boxes: False)
            return HOST_CALLS[call](x, index, g, inplace)

    assert torch.equal(run(fast=True), run(fast=False))
