"""mixkit.compat.timm against timm itself: the same arguments, statistically the same mixing.

Each sample of the test batch is a constant image (sample i holds the value 10 * (i + 1)), and
each has its own class, so an output row tells what happened to it: unchanged, a CutMix box
(every pixel is its own value or its partner's; lam = the share of its own pixels) or MixUp (one
value between the two; lam from where it lies). The target row gives the lam used for the labels.
Those observations are gathered over many batches from timm's ``Mixup`` (numpy's generator) and
from mixkit's (a torch generator) and compared: the share of each kind of mixing (within 4.5
standard errors), the distributions of lam (two-sample Kolmogorov-Smirnov at the 0.1% level),
and the structure each mode promises (one draw per batch, mirrored pairs, independent samples).
Both runs are seeded, so the test is deterministic; a real difference in the distributions fails.
"""

import math

import numpy as np
import pytest
import torch

import mixkit
from mixkit.compat.timm import FastCollateMixup, Mixup

timm_mixup = pytest.importorskip("timm.data.mixup")

B, S = 8, 16
VALUES = 10.0 * torch.arange(1, B + 1, dtype=torch.float32)
BATCHES = 300

CONFIGS = {
    "mixup": dict(mixup_alpha=0.8, cutmix_alpha=0.0),
    "cutmix": dict(mixup_alpha=0.0, cutmix_alpha=1.0),
    "switch": dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.7, switch_prob=0.4),
    "minmax": dict(mixup_alpha=0.0, cutmix_minmax=(0.2, 0.8)),
    "no-correct": dict(mixup_alpha=0.0, cutmix_alpha=0.5, correct_lam=False),
}


def _images(dtype=torch.float32):
    return VALUES.view(B, 1, 1, 1).expand(B, 3, S, S).to(dtype).contiguous()


def _observe(out: torch.Tensor, soft: torch.Tensor):
    """Per row: kind (0 unchanged, 1 CutMix, 2 MixUp), lam seen in the image, lam of the target."""
    out = out.double().reshape(B, -1)
    kinds, lam_img = [], []
    for i in range(B):
        own, partner = float(VALUES[i]), float(VALUES[B - 1 - i])
        row = out[i]
        is_own, is_partner = row == own, row == partner
        if bool(is_own.all()):
            kinds.append(0)
            lam_img.append(1.0)
        elif bool((is_own | is_partner).all()):
            kinds.append(1)
            lam_img.append(float(is_own.double().mean()))
        else:
            assert float(row.max() - row.min()) <= 1.0, "a row that is neither a box nor a blend"
            kinds.append(2)
            lam_img.append((float(row.mean()) - partner) / (own - partner))
    lam_target = soft.double()[torch.arange(B), torch.arange(B)]
    return np.array(kinds), np.array(lam_img), lam_target.numpy()


def _gather(call, rows):
    kinds, lam_img, lam_target = [], [], []
    for _ in range(BATCHES):
        k, li, lt = _observe(*call())
        kinds.append(k[rows])
        lam_img.append(li[rows])
        lam_target.append(lt[rows])
    return np.concatenate(kinds), np.concatenate(lam_img), np.concatenate(lam_target)


def _ks(a, b) -> float:
    """The two-sample Kolmogorov-Smirnov statistic."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def _ks_limit(n, m) -> float:
    return 1.95 * math.sqrt((n + m) / (n * m))  # alpha = 0.001


def _structure(call, mode):
    """Mode structure, checked on a few batches: batch = one draw, pair = mirrored rows."""
    for _ in range(20):
        kinds, lam_img, lam_target = _observe(*call())
        if mode == "batch":
            assert len(set(kinds)) == 1 and np.allclose(lam_target, lam_target[0])
        if mode == "pair":
            assert (kinds == kinds[::-1]).all() and np.allclose(lam_target, lam_target[::-1])


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("config", [c if c == "switch" else pytest.param(c, marks=pytest.mark.slow)
                                    for c in CONFIGS])
def test_mixing_statistics_match_timm(config, mode):
    kw = dict(CONFIGS[config], mode=mode, label_smoothing=0.0, num_classes=B)
    theirs = timm_mixup.Mixup(**kw)
    ours = Mixup(**kw, generator=torch.Generator().manual_seed(0))
    np.random.seed(0)
    rows = slice(0, 1) if mode == "batch" else slice(0, B // 2) if mode == "pair" else slice(0, B)

    def call_theirs():
        return theirs(_images(), torch.arange(B))

    def call_ours():
        return ours(_images(), torch.arange(B))

    t_kind, t_img, t_lam = _gather(call_theirs, rows)
    o_kind, o_img, o_lam = _gather(call_ours, rows)
    n, m = len(t_kind), len(o_kind)
    for kind in (0, 1, 2):
        p_t, p_o = (t_kind == kind).mean(), (o_kind == kind).mean()
        pooled = (p_t * n + p_o * m) / (n + m)
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n + 1 / m))
        assert abs(p_t - p_o) <= 4.5 * se + 1e-9, (kind, p_t, p_o)
    for kind in (1, 2):
        a, b = t_lam[t_kind == kind], o_lam[o_kind == kind]
        if min(len(a), len(b)) >= 30:
            assert _ks(a, b) <= _ks_limit(len(a), len(b)), (kind, _ks(a, b))
        # each implementation's own bookkeeping: MixUp's image lam is its target lam; CutMix's is
        # too where lam is corrected (always with cutmix_minmax)
        for kinds, img, lam in ((t_kind, t_img, t_lam), (o_kind, o_img, o_lam)):
            sel = kinds == kind
            if kind == 2 or CONFIGS[config].get("correct_lam", True):
                np.testing.assert_allclose(img[sel], lam[sel], atol=1e-5)
    if config == "no-correct":
        # without correction the target lam is the drawn one, not the area: both show the gap
        for kinds, img, lam in ((t_kind, t_img, t_lam), (o_kind, o_img, o_lam)):
            sel = kinds == 1
            assert np.abs(img[sel] - lam[sel]).max() > 0.05
    # the area of the boxes (the image lam) is distributed alike, too
    a, b = t_img[t_kind == 1], o_img[o_kind == 1]
    if min(len(a), len(b)) >= 30:
        assert _ks(a, b) <= _ks_limit(len(a), len(b))
    _structure(call_theirs, mode)
    _structure(call_ours, mode)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_targets_are_timms_formula(mode):
    ours = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode=mode, label_smoothing=0.1, num_classes=B,
                 generator=torch.Generator().manual_seed(1))
    plain = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode=mode, label_smoothing=0.0, num_classes=B,
                  generator=torch.Generator().manual_seed(1))
    for _ in range(10):
        _, soft = ours(_images(), torch.arange(B))
        _, unsmoothed = plain(_images(), torch.arange(B))
        lam = unsmoothed[torch.arange(B), torch.arange(B)].view(B, 1)  # same draws, no smoothing
        expected = timm_mixup.mixup_target(torch.arange(B), B, lam, 0.1)
        torch.testing.assert_close(soft, expected.float())


def test_disabled_and_never_mixing_give_smoothed_one_hot_like_timm():
    for kw in (dict(prob=0.0), dict()):
        ours = Mixup(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=B, **kw)
        theirs = timm_mixup.Mixup(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=B, **kw)
        if not kw:
            ours.mixup_enabled = theirs.mixup_enabled = False
        x = _images()
        out, soft = ours(x, torch.arange(B))
        ref_out, ref_soft = theirs(x.clone(), torch.arange(B))
        assert torch.equal(out, x) and torch.equal(out, ref_out)
        torch.testing.assert_close(soft, ref_soft)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_fast_collate_matches_timm_on_uint8_samples(mode):
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, mode=mode, label_smoothing=0.0, num_classes=B)
    theirs = timm_mixup.FastCollateMixup(**kw)
    ours = FastCollateMixup(**kw, generator=torch.Generator().manual_seed(0))
    np.random.seed(0)
    rows = slice(0, 1) if mode == "batch" else slice(0, B // 2) if mode == "pair" else slice(0, B)

    def samples():
        return [(np.full((3, S, S), int(VALUES[i]), dtype=np.uint8), i) for i in range(B)]

    def call_ours():
        out, soft = ours(samples())
        assert out.dtype == torch.uint8
        # MixUp rows hold the value rounded to the nearest integer
        for i in range(B):
            own, partner = float(VALUES[i]), float(VALUES[B - 1 - i])
            lam = float(soft[i, i])
            values = out[i].double().unique()
            if len(values) == 1 and float(values[0]) not in (own, partner):
                assert abs(float(values[0]) - (lam * own + (1 - lam) * partner)) <= 0.5 + 1e-4
        return out, soft

    t_kind, _, t_lam = _gather(lambda: theirs(samples()), rows)
    o_kind, _, o_lam = _gather(call_ours, rows)
    for kind in (1, 2):
        p_t, p_o = (t_kind == kind).mean(), (o_kind == kind).mean()
        se = math.sqrt(0.25 * (1 / len(t_kind) + 1 / len(o_kind)))
        assert abs(p_t - p_o) <= 4.5 * se, (kind, p_t, p_o)
        a, b = t_lam[t_kind == kind], o_lam[o_kind == kind]
        # MixUp lam read back from rounded pixels is coarse; targets carry the exact lam
        assert _ks(a, b) <= _ks_limit(len(a), len(b)), (kind, _ks(a, b))


def test_extra_mixers_join_the_switch():
    extra = [mixkit.FMix(alpha=1.0, pairing="flip")]  # pairs as timm does, so rows read back
    ours = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=B, extra=extra,
                 extra_prob=0.3, generator=torch.Generator().manual_seed(0))
    fmix_batches = 0
    for _ in range(400):
        out, soft = ours(_images(), torch.arange(B))
        torch.testing.assert_close(soft.sum(1), torch.ones(B))
        kinds, img, lam = _observe(out, soft)
        picked = kinds[kinds != 0]
        if len(picked) == 0:
            continue
        # a CutMix box is a rectangle; an FMix mask is not: count batches with a non-box row
        pasted = out[0, 0] != VALUES[0]
        rows_on, cols_on = pasted.any(1), pasted.any(0)
        rectangle = bool(pasted[rows_on][:, cols_on].all())  # also true when nothing was pasted
        fmix_batches += not rectangle
    assert 0.2 * 400 < fmix_batches < 0.4 * 400
    only = Mixup(mixup_alpha=0.0, cutmix_alpha=0.0, extra=[mixkit.ZetaMixup(gamma=2.0)], extra_prob=1.0,
                 num_classes=B, label_smoothing=0.0)
    out, soft = only(_images(), torch.arange(B))
    assert float(soft.diagonal().max()) < 1.0


def test_drop_in_train_step_runs_with_either_import():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * S * S, B))
    for cls in (timm_mixup.Mixup, Mixup):
        mixup_fn = cls(mixup_alpha=0.8, cutmix_alpha=1.0, cutmix_minmax=None, prob=1.0, switch_prob=0.5,
                       mode="elem", label_smoothing=0.1, num_classes=B)
        samples, targets = mixup_fn(torch.rand(B, 3, S, S), torch.arange(B))
        loss = torch.sum(-targets * torch.log_softmax(model(samples), dim=-1), dim=-1).mean()
        loss.backward()
        assert targets.shape == (B, B) and torch.isfinite(loss)


def _timm_epoch_start(loader, mixup_fn, epoch, mixup_off_epoch, prefetcher):
    """The first lines of timm's ``train_one_epoch`` (train.py), as timm writes them."""
    if mixup_off_epoch and epoch >= mixup_off_epoch:
        if prefetcher and loader.mixup_enabled:
            loader.mixup_enabled = False
        elif mixup_fn is not None:
            mixup_fn.mixup_enabled = False


class _Uint8Samples(torch.utils.data.Dataset):
    """(uint8 image, class) samples: sample i is a constant image of value 10 * (i % B + 1)."""

    def __len__(self):
        return 4 * B

    def __getitem__(self, i):
        return np.full((3, S, S), int(VALUES[i % B]), dtype=np.uint8), i % B


def test_prefetch_loader_switch_stops_the_fast_collate_mixing():
    """timm's PrefetchLoader reads and sets ``mixup_enabled`` only through
    ``isinstance(collate_fn, timm.data.FastCollateMixup)``; with mixkit's collate the switch
    must work, so that timm's ``--mixup-off-epoch`` ends the mixing."""
    from timm.data import FastCollateMixup as TimmFastCollateMixup
    from timm.data.loader import PrefetchLoader

    collate = FastCollateMixup(mixup_alpha=1.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=B,
                               generator=torch.Generator().manual_seed(0))
    assert isinstance(collate, TimmFastCollateMixup) and isinstance(collate, timm_mixup.Mixup)
    base = torch.utils.data.DataLoader(_Uint8Samples(), batch_size=B, collate_fn=collate)
    loader = PrefetchLoader(base, mean=(0.0,) * 3, std=(1.0,) * 3, device=torch.device("cpu"))
    assert loader.mixup_enabled is True
    mixed_per_epoch = []
    for epoch in range(3):
        _timm_epoch_start(loader, None, epoch, mixup_off_epoch=2, prefetcher=True)
        mixed = 0
        for x, target in loader:
            assert x.dtype == torch.float32 and target.shape == (B, B)
            torch.testing.assert_close(target.sum(1), torch.ones(B))
            mixed += int((target.max(1).values < 1).sum())       # rows with a partner's share
        mixed_per_epoch.append(mixed)
    assert mixed_per_epoch[0] > 0 and mixed_per_epoch[1] > 0     # mixing on before the off epoch
    assert mixed_per_epoch[2] == 0 and collate.mixup_enabled is False and loader.mixup_enabled is False
    for x, target in loader:                                     # unmixed: each image as it came
        assert torch.equal(target, torch.eye(B))
        torch.testing.assert_close(x[:, 0, 0, 0] * 255, VALUES)    # timm scales std by 255


def test_train_loop_switch_without_prefetcher_stops_mixup():
    mixup_fn = Mixup(mixup_alpha=1.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=B,
                     generator=torch.Generator().manual_seed(0))
    assert isinstance(mixup_fn, timm_mixup.Mixup)
    for epoch in range(3):
        _timm_epoch_start(None, mixup_fn, epoch, mixup_off_epoch=2, prefetcher=False)
        out, soft = mixup_fn(_images(), torch.arange(B))
        assert torch.equal(out, _images()) == (epoch >= 2)
        assert torch.equal(soft, torch.eye(B)) == (epoch >= 2)


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_without_timm_the_classes_stand_alone():
    import subprocess
    import sys
    code = ("import sys; sys.modules['timm'] = None\n"            # import timm -> ImportError
            "import torch\n"
            "from mixkit.compat.timm import Mixup, FastCollateMixup\n"
            "assert Mixup.__mro__[1:] == (object,) and FastCollateMixup.__mro__[1:] == (Mixup, object)\n"
            "x, t = Mixup(num_classes=4)(torch.rand(4, 3, 8, 8), torch.arange(4))\n"
            "print(tuple(t.shape))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "(4, 4)", p.stderr[-2000:]


def test_odd_batches_multi_label_and_devices():
    ours = Mixup(mixup_alpha=1.0, cutmix_alpha=1.0, mode="pair", num_classes=4)
    x = torch.rand(7, 3, 8, 8)
    out, soft = ours(x, torch.arange(7) % 4)
    assert torch.equal(out[3], x[3])  # the middle sample pairs with itself
    hot = (torch.rand(6, 4) < 0.5).float()
    ml = Mixup(mixup_alpha=1.0, num_classes=4, multi_label=True, label_smoothing=0.2)
    _, soft = ml(torch.rand(6, 3, 8, 8), hot)
    t = hot * 0.8 + 0.1  # smoothed towards 0.5 per class, then mixed with the flipped rows
    differ = t != t.flip(0)
    assert bool(differ.any())
    lam = ((soft - t.flip(0)) / (t - t.flip(0)))[differ]
    torch.testing.assert_close(lam, lam[:1].expand_as(lam))  # one lam explains every entry
    expected = timm_mixup.mixup_target(hot, 4, float(lam[0]), 0.2, multi_label=True)
    torch.testing.assert_close(soft, expected.float(), atol=1e-5, rtol=0)


def test_errors():
    with pytest.raises(ValueError, match=r"mixup_alpha, cutmix_alpha: expected at least one > 0"):
        Mixup(mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match=r"mode: expected one of 'batch', 'pair', 'elem', got 'half'"):
        Mixup(mode="half")
    with pytest.raises(ValueError, match=r"cutmix_minmax: expected None or \(min, max\) with 0 < min < max <= 1"):
        Mixup(cutmix_minmax=(0.8, 0.2))
    with pytest.raises(ValueError, match=r"prob: expected a number in \[0, 1\], got 2"):
        Mixup(prob=2)
    with pytest.raises(ValueError, match=r"label_smoothing: expected a number in \[0, 1\), got 1.0"):
        Mixup(label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"num_classes: expected an integer >= 1, got 0"):
        Mixup(num_classes=0)
    with pytest.raises(TypeError, match=r"extra: expected mixkit mixers or combinations, got str"):
        Mixup(extra=["fmix"], extra_prob=0.5)
    with pytest.raises(ValueError, match=r"extra_prob: expected 0 when no extra mixers are given"):
        Mixup(extra_prob=0.5)
    with pytest.raises(ValueError, match=r"generator: expected None or a CPU torch.Generator"):
        Mixup(generator=3)
    m = Mixup(num_classes=4)
    with pytest.raises(ValueError, match=r"x: expected images \(B, C, H, W\) with B >= 1, got shape \(4, 8, 8\)"):
        m(torch.rand(4, 8, 8), torch.arange(4))
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 3\], got values in \[0, 7\]"):
        m(torch.rand(8, 3, 4, 4), torch.arange(8))
    with pytest.raises(ValueError, match=r"target: expected multi-hot rows \(4, 4\) with multi_label=True, got \(4,\)"):
        Mixup(num_classes=4, multi_label=True)(torch.rand(4, 3, 4, 4), torch.arange(4))
    fast = FastCollateMixup(num_classes=4)
    with pytest.raises(TypeError, match=r"batch: expected uint8 images \(timm's fast collate\), got torch.float32"):
        fast([(torch.rand(3, 4, 4), 0), (torch.rand(3, 4, 4), 1)])
    with pytest.raises(ValueError, match=r"batch: expected a non-empty list of \(image, target\) samples, got a list of 0"):
        fast([])
    assert repr(Mixup(mixup_alpha=0.8, prob=0.5)) == "Mixup(mixup_alpha=0.8, prob=0.5)"
