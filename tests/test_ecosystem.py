"""Mixers as torch modules and torchvision v2 transforms; integer images; multi-label targets;
label smoothing.

The torchvision part ports what torchvision's own test suite expects of its v2 MixUp and CutMix
(input structures, collate functions, errors), in mixkit's terms. Where mixkit differs on
purpose, the test says so and checks mixkit's behaviour instead:

- pairing: torchvision mixes sample i with i - 1 (``roll``); mixkit's default is a random
  permutation, so a sample can be its own partner. With ``pairing="roll"`` every row mixes two
  labels, as torchvision's test requires.
- composing: both take soft labels in (torchvision since it accepts (B, C) labels), so
  ``v2.Compose([cutmix, mixup])`` works with either library's mixers and rows still sum to 1.
- ranks: torchvision takes (B, C, H, W) only; mixkit's mask methods also take 1-D and 3-D data and
  MixUp any (B, *) (the refusal checked here is for ranks no method supports).
- dicts: torchvision finds labels in dicts by key; mixkit takes (images, labels, *rest) only and
  says how to call it with a dict.
"""

import pickle

import grid
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

import mixkit

tv = pytest.importorskip("torchvision")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

C = 10


def _factories(**kw):
    """Every registered input mixer at its defaults, once per mode, with ``kw`` (tests/grid.py);
    without ``kw`` also the registered combinations and a RandomChoice."""
    return grid.modes(C, **kw)


FACTORIES = _factories()
PAIRWISE = grid.select(_factories(pairing="roll"), lambda m: m.pairwise)
MASKS = tuple(grid.select(_factories(label_smoothing=0.0), grid.regional))  # leaf mixers with a keep mask
PASTES = tuple(n for n in MASKS if not FACTORIES[n]().interpolates)  # copy values (SmoothMix blends)
ONE_OF = tuple(grid.select(FACTORIES, lambda m: getattr(m, "sequential", None) is False))  # RandomChoice, Alternate
INTERPOLATING = tuple(grid.select(FACTORIES, lambda m: grid.interpolating(m) and not grid.regional(m)))
BLENDING = (*INTERPOLATING, *(n for n in MASKS if n not in PASTES))
LABEL_MODES = tuple(grid.select(_factories(multilabel=True), lambda m: m.pairwise and not m.needs_masks))


def _batch(b=8, shape=(3, 12, 12), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, *shape), generator=g), torch.randperm(C, generator=g)[:b]


# ---------------------------------------------------------------------------------------------
# Modules


@pytest.mark.parametrize("name", FACTORIES)
def test_mixers_are_modules_that_nest_move_and_print(name):
    mixer = FACTORIES[name]()
    assert isinstance(mixer, nn.Module)
    assert list(mixer.parameters()) == [] and list(mixer.buffers()) == []
    tree = nn.Sequential(nn.Identity(), mixer)
    seen = []
    tree.apply(lambda m: seen.append(type(m).__name__))  # nn.Module.apply walks through the mixer
    assert type(mixer).__name__ in seen
    assert tree.to("cpu") is tree
    assert repr(mixer) in repr(tree) and "\n" not in repr(mixer)
    clone = pickle.loads(pickle.dumps(mixer))
    x, y = _batch()
    g = torch.Generator()
    torch.testing.assert_close(clone(x, y, generator=g.manual_seed(3)), mixer(x, y, generator=g.manual_seed(3)))
    # eval() changes nothing: mixers behave as torchvision's transforms, not as dropout
    mixer.eval()
    torch.testing.assert_close(mixer(x, y, generator=g.manual_seed(3)), clone(x, y, generator=g.manual_seed(3)))


def test_combinations_register_their_parts_and_alternate_checkpoints_its_position():
    alt = mixkit.Alternate([mixkit.MixUp(), mixkit.FMix()], num_classes=C)
    assert [type(m).__name__ for m in alt.children()] == ["ModuleList"]
    assert [type(m).__name__ for m in alt.mixers] == ["MixUp", "FMix"]
    x, y = _batch()
    for _ in range(3):
        alt(x, y)
    holder = nn.ModuleDict({"mix": alt})
    state = holder.state_dict()
    assert state["mix._extra_state"] == {"step": 3}
    fresh = nn.ModuleDict({"mix": mixkit.Alternate([mixkit.MixUp(), mixkit.FMix()], num_classes=C)})
    fresh.load_state_dict(state)
    assert fresh["mix"].step == 3
    assert repr(alt) == "Alternate([MixUp(), FMix()], num_classes=10)"


# ---------------------------------------------------------------------------------------------
# Call forms (torchvision's test_supported_input_structure, in mixkit's terms)


class _Unique(torch.utils.data.Dataset):
    """Every sample a different class, so a mixed row has two non-zero entries exactly when the
    sample was paired with another (torchvision's test dataset does the same)."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.rand(3, 20, 20), i


def _check_rows(images, soft, b=8, pairs_exactly=True):
    assert images.shape == (b, 3, 20, 20)
    assert soft.shape == (b, C) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(b))
    nonzero = (soft != 0).sum(1)
    if pairs_exactly:
        assert bool((nonzero == 2).all()), nonzero
    else:
        assert bool(((nonzero == 1) | (nonzero == 2)).all()), nonzero


@pytest.mark.parametrize("name", PAIRWISE)
def test_supported_input_structures_with_torchvision_pairing(name):
    mixer = PAIRWISE[name]()
    # Seeded: a lam drawn within 1/400 of 1 leaves an empty box or an all-ones mask (one label)
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(_Unique(), batch_size=8)
    images, labels = next(iter(loader))
    _check_rows(*mixer(images, labels, generator=g))
    packed = next(iter(loader))
    assert isinstance(packed, list)
    out = mixer(packed, generator=g)
    assert isinstance(out, list) and len(out) == 2
    _check_rows(*out)
    _check_rows(*mixer(tuple(packed), generator=g))
    for collate in (lambda batch: mixer(default_collate(batch), generator=g),
                    lambda batch: mixer(*default_collate(batch), generator=g)):
        _check_rows(*next(iter(DataLoader(_Unique(), batch_size=8, collate_fn=collate))))


# the pairing is the same code for every pairwise mixer: three in the fast subset, all when slow
@pytest.mark.parametrize("name", [n if i < 3 else pytest.param(n, marks=pytest.mark.slow)
                                  for i, n in enumerate(PAIRWISE)])
def test_default_permutation_pairing_may_leave_a_row_unmixed(name):
    # The documented difference from torchvision: a random permutation has fixed points.
    mixer = FACTORIES[name]()
    images, labels = next(iter(DataLoader(_Unique(), batch_size=8)))
    unmixed = 0
    for seed in range(200):
        mixed, soft = mixer(images, labels, generator=torch.Generator().manual_seed(seed))
        _check_rows(mixed, soft, pairs_exactly=False)
        unmixed += int(((soft != 0).sum(1) == 1).sum())
    # about one row in B per batch is its own partner: 200 batches -> ~200 rows
    assert 120 < unmixed < 300


def test_extra_items_pass_through_in_both_call_forms():
    mixer = mixkit.MixUp(num_classes=C)
    x, y = _batch()
    names = ["a"] * 8
    mixed, soft, rest = mixer(x, y, names)
    assert rest is names and soft.shape == (8, C)
    out = mixer([x, y, names, 7])
    assert isinstance(out, list) and out[2] is names and out[3] == 7


def test_inside_v2_compose_and_random_choice():
    x, y = _batch()
    x = tv_tensors.Image(x)
    pipe = v2.Compose([mixkit.CutMix(num_classes=C), mixkit.MixUp(num_classes=C)])
    mixed, soft = pipe(x, y)
    assert isinstance(mixed, tv_tensors.Image)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    # torchvision's own two in a row work too (its mixers take (B, C) soft labels): the README
    # says so, and this checks it on the installed torchvision
    theirs, their_soft = v2.Compose([v2.CutMix(num_classes=C), v2.MixUp(num_classes=C)])(x, y)
    assert their_soft.shape == (8, C) and not torch.equal(theirs, x)
    torch.testing.assert_close(their_soft.sum(1), torch.ones(8))
    mixed, soft = pipe((x, y))
    assert isinstance(mixed, tv_tensors.Image)
    pick = v2.RandomChoice([mixkit.CutMix(num_classes=C), mixkit.MixUp(num_classes=C)])
    for _ in range(4):
        mixed, soft = pick(x, y)
        assert isinstance(mixed, tv_tensors.Image) and soft.shape == (8, C)
    # and torchvision's transforms before a mixer in one Compose, packed
    both = v2.Compose([v2.RandomHorizontalFlip(p=1.0), mixkit.MixUp(num_classes=C, pairing="roll")])
    mixed, soft = both((x, y))
    assert isinstance(mixed, tv_tensors.Image) and soft.shape == (8, C)


# ---------------------------------------------------------------------------------------------
# Errors (torchvision's test_error, in mixkit's words)


@pytest.mark.parametrize("name", FACTORIES)
def test_errors_of_torchvisions_suite(name):
    mixer = FACTORIES[name]()
    x, _ = _batch(9)
    for bad in (tv_tensors.Mask(torch.randint(0, 2, (9, 12, 12))),
                tv_tensors.BoundingBoxes(torch.rand(2, 4), format="XYXY", canvas_size=(12, 12))):
        # ValueError, as torchvision's own MixUp/CutMix raise for these inputs
        with pytest.raises(ValueError, match=r"got a tv_tensors\.(Mask|BoundingBoxes) as the batch"):
            mixer(bad)
        with pytest.raises(ValueError, match=r"got a tv_tensors\.(Mask|BoundingBoxes) as the images"):
            mixer(bad, torch.arange(9))
        with pytest.raises(ValueError, match=r"among the passed-through items"):
            mixer(x, torch.arange(9), bad)
        with pytest.raises(ValueError):
            v2.CutMix(num_classes=C)(bad, torch.arange(9))
    pil = v2.functional.to_pil_image(x[0])
    with pytest.raises(TypeError, match="labels are missing"):
        mixer(pil)
    with pytest.raises(TypeError, match="inputs: expected a torch.Tensor, got Image"):
        mixer(pil, torch.arange(1))
    with pytest.raises(ValueError, match=r"expected a dict with an image key .*got keys \['Nothing_else', 'img'\]"):
        mixer({"img": x, "Nothing_else": 3})
    with pytest.raises(TypeError, match="got a Tensor alone; the labels are missing"):
        mixer(x)
    with pytest.raises(TypeError, match="labels: expected a torch.Tensor, got str"):
        mixer(x, "not_a_tensor")
    with pytest.raises(ValueError, match=r"labels: expected 9 labels \(one per input\), got 2"):
        mixer(x, torch.randint(0, 2, size=(2, 3)))
    with pytest.raises(ValueError, match=r"multilabel=True"):
        mixer(x, torch.randint(0, 2, size=(9, C)))
    with pytest.raises(ValueError, match=r"labels: expected 9 labels \(one per input\), got 10"):
        mixer(x, torch.randint(0, C, size=(10,)))
    with pytest.raises(TypeError, match="got no inputs"):
        mixer()


@pytest.mark.parametrize("name", MASKS)
def test_unsupported_ranks_are_refused(name):
    x = torch.rand(2, 1, 3, 4, 5, 6)
    with pytest.raises(ValueError, match=r"inputs: expected \(B, C, L\), \(B, C, H, W\) or \(B, C, D, H, W\)"):
        FACTORIES[name]()(x, torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------
# tv_tensors


@pytest.mark.parametrize("name", FACTORIES)
def test_image_type_is_kept(name):
    x, y = _batch()
    image = tv_tensors.Image(x)
    mixed, soft = FACTORIES[name]()(image, y, generator=torch.Generator().manual_seed(0))
    assert type(mixed) is tv_tensors.Image and type(soft) is torch.Tensor
    plain, _ = FACTORIES[name]()(x, y, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed.as_subclass(torch.Tensor), plain)


@pytest.mark.parametrize("name", [*MASKS, *INTERPOLATING])
def test_video_type_is_kept_and_time_is_not_spatial(name):
    b, t, c, h, w = 6, 4, 3, 10, 12
    # every value of sample i is i: what a pixel holds tells which sample it came from
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, t, c, h, w).contiguous()
    video = tv_tensors.Video(x)
    mixed, soft = FACTORIES[name]()(video, torch.arange(b), generator=torch.Generator().manual_seed(1))
    assert type(mixed) is tv_tensors.Video and mixed.shape == (b, t, c, h, w)
    plain = mixed.as_subclass(torch.Tensor)
    # one mask through all frames and channels: every (t, c) slice of a sample is the same picture
    torch.testing.assert_close(plain, plain[:, :1, :1].expand_as(plain))
    if name in MASKS:
        # and the picture is not uniform for some sample (a box or mask was pasted in (H, W))
        assert bool((plain.amax((1, 2, 3, 4)) != plain.amin((1, 2, 3, 4))).any())


def test_video_inplace_writes_the_original_even_when_not_contiguous():
    b, t, c, h, w = 4, 3, 2, 8, 8
    base = torch.rand(b, h, w, t, c)
    x = base.permute(0, 3, 4, 1, 2)  # (B, T, C, H, W), not contiguous
    video = tv_tensors.Video(x)
    expected, _ = mixkit.CutMix(num_classes=C)(video.clone(), torch.arange(b),
                                               generator=torch.Generator().manual_seed(2))
    out, _ = mixkit.CutMix(num_classes=C, inplace=True)(video, torch.arange(b),
                                                        generator=torch.Generator().manual_seed(2))
    assert out is video
    torch.testing.assert_close(video.as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor))


def test_a_non_batched_video_is_refused_by_mask_methods():
    with pytest.raises(ValueError, match=r"expected a batched tv_tensors.Video \(B, T, C, H, W\)"):
        mixkit.CutMix(num_classes=C)(tv_tensors.Video(torch.rand(4, 3, 8, 8)), torch.arange(4))


# ---------------------------------------------------------------------------------------------
# Integer images


def _uint8(b=8, shape=(3, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, *shape), generator=g, dtype=torch.uint8), torch.arange(b) % C


@pytest.mark.parametrize("name", [*PASTES, *ONE_OF])
def test_uint8_mask_methods_copy_exact_values(name):
    x, y = _uint8()
    mixer = FACTORIES[name]()
    for seed in range(5):
        params = mixer.sample(x, generator=torch.Generator().manual_seed(seed))
        mixed, soft = mixer.apply(x, y, params)
        assert mixed.dtype == torch.uint8
        part = params.parts[0] if isinstance(params, mixkit.ComposedParams) else params
        index = part.index
        from_partner = mixed == x[index]
        from_self = mixed == x
        if part.mask is None and part.boxes is None:  # MixUp chosen by a combination
            continue
        assert bool((from_self | from_partner).all())
        # and the float mixer with the same parameters picks the same sources
        ref, _ = mixer.apply(x.double(), y, params)
        torch.testing.assert_close(mixed.double(), ref)


@pytest.mark.parametrize("name", BLENDING)
def test_uint8_interpolating_methods_round_to_nearest(name):
    x, y = _uint8()
    mixer = FACTORIES[name]()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(4))
    mixed, soft = mixer.apply(x, y, params)
    exact, soft64 = mixer.apply(x.double(), y, params)
    assert mixed.dtype == torch.uint8
    assert float((mixed.double() - exact).abs().max()) <= 0.5 + 1e-4
    torch.testing.assert_close(soft, soft64.float())


def test_uint8_soft_fmix_rounds_and_int16_volumes_work():
    x, y = _uint8()
    fmix = mixkit.FMix(num_classes=C, max_soft=0.2)
    params = fmix.sample(x, generator=torch.Generator().manual_seed(0))
    mixed, _ = fmix.apply(x, y, params)
    exact, _ = fmix.apply(x.double(), y, params)
    assert float((mixed.double() - exact).abs().max()) <= 0.5 + 1e-4
    vol = torch.randint(-1000, 3000, (4, 1, 6, 8, 8), dtype=torch.int16)
    for mixer in (mixkit.CutMix(num_classes=2), mixkit.MixUp(num_classes=2)):
        out, _ = mixer(vol, torch.tensor([0, 1, 0, 1]))
        assert out.dtype == torch.int16 and int(out.min()) >= -1000 and int(out.max()) < 3000


def test_uint8_inplace_is_exact_for_masks_and_refused_for_blends():
    x, y = _uint8()
    for mixer in (mixkit.CutMix(num_classes=C, inplace=True, mode="elem"), mixkit.FMix(num_classes=C, inplace=True)):
        params = mixer.sample(x, generator=torch.Generator().manual_seed(0))
        expected, _ = type(mixer)(num_classes=C, mode=mixer.mode).apply(x.clone(), y, params)
        target = x.clone()
        out, _ = mixer.apply(target, y, params)
        assert out is target
        assert torch.equal(target, expected)
    for mixer in (mixkit.MixUp(num_classes=C, inplace=True), mixkit.FMix(num_classes=C, max_soft=0.1, inplace=True)):
        with pytest.raises(ValueError, match=r"inplace: expected inplace=False for torch.uint8 inputs: "
                                             rf"{type(mixer).__name__} interpolates"):
            mixer(x, y)


def test_uint8_in_dataloader_workers_like_a_fast_collate():
    data = torch.utils.data.TensorDataset(*_uint8(32))
    collate = mixkit.MixingCollate(mixkit.CutMix(num_classes=C, mode="elem"),
                                   generator=torch.Generator().manual_seed(0))
    for mixed, soft in DataLoader(data, batch_size=8, num_workers=2, collate_fn=collate):
        assert mixed.dtype == torch.uint8 and soft.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# Multi-label targets


def _multi_hot(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    hot = torch.rand(b, C, generator=g) < 0.3
    hot[:, 0] |= ~hot.any(1)
    return hot.float()


@pytest.mark.parametrize("name", LABEL_MODES)
def test_multilabel_rows_are_mixed_as_they_are(name):
    x, _ = _batch()
    y = _multi_hot()
    mixer = _factories(multilabel=True)[name]()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(0))
    _, soft = mixer.apply(x, y, params)
    lam = params.lam[:, None]
    torch.testing.assert_close(soft, lam * y + (1 - lam) * y[params.index])
    assert float((soft.sum(1) - 1).abs().max()) > 0.5  # not renormalised
    # bool multi-hot is accepted as the same targets
    torch.testing.assert_close(mixer.apply(x, y.bool(), params)[1], soft)


def test_multilabel_zeta_and_combinations():
    x, _ = _batch()
    y = _multi_hot()
    zeta = mixkit.ZetaMixup(num_classes=C, multilabel=True)
    params = zeta.sample(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(zeta.apply(x, y, params)[1], params.weights @ y)
    both = mixkit.Compose([mixkit.CutMix(multilabel=True), mixkit.MixUp(multilabel=True)])
    assert both.multilabel
    _, soft = both(x, y)
    assert bool((soft >= 0).all() & (soft <= 1).all())
    # a part left at the default does not disagree: the combination converts labels, once
    assert mixkit.Compose([mixkit.CutMix(multilabel=True), mixkit.MixUp()]).multilabel
    assert not mixkit.Compose([mixkit.CutMix(multilabel=True), mixkit.MixUp()], multilabel=False).multilabel


def test_multilabel_smoothing_goes_towards_one_half_per_class():
    x, _ = _batch()
    y = _multi_hot()
    mixer = mixkit.CutMix(multilabel=True, label_smoothing=0.2)
    params = mixer.sample(x, generator=torch.Generator().manual_seed(0))
    _, soft = mixer.apply(x, y, params)
    t = y * 0.8 + 0.1
    lam = params.lam[:, None]
    torch.testing.assert_close(soft, lam * t + (1 - lam) * t[params.index])


def test_multilabel_errors():
    x, _ = _batch()
    with pytest.raises(ValueError, match=r"rows off by up to .*; for multi-hot \(multi-label\) targets pass multilabel=True"):
        mixkit.MixUp(num_classes=C)(x, _multi_hot())
    with pytest.raises(ValueError, match=r"expected multi-hot targets with values in \[0, 1\], got values in \[0, 2\]"):
        mixkit.MixUp(num_classes=C, multilabel=True)(x, 2 * _multi_hot())
    with pytest.raises(TypeError, match="multilabel: expected a bool, got str"):
        mixkit.CutMix(multilabel="yes")


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_binary_cross_entropy_helper_matches_torch_and_trains_a_multilabel_model():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, C, generator=g, dtype=torch.float16)
    targets = torch.rand(8, C, generator=g)
    expected = nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)
    torch.testing.assert_close(mixkit.soft_target_binary_cross_entropy(logits, targets), expected)
    pos = torch.linspace(0.5, 2.0, C)
    torch.testing.assert_close(
        mixkit.SoftTargetBinaryCrossEntropy(pos_weight=pos, reduction="none")(logits, targets),
        nn.functional.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=pos, reduction="none"))
    with pytest.raises(ValueError, match=r"targets: expected a \(B, C\) tensor shaped like the logits \(8, 10\), got \(8,\)"):
        mixkit.soft_target_binary_cross_entropy(logits, torch.zeros(8))
    # a linear model learns multi-hot targets through mixed batches
    x = torch.randn(256, 16, generator=g)
    w = torch.randn(16, C, generator=g)
    y = (x @ w > 0.5).float()
    model = nn.Linear(16, C)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    mixer = mixkit.MixUp(alpha=0.4, multilabel=True)
    first = None
    for step in range(150):
        xm, ym = mixer(x, y, generator=torch.Generator().manual_seed(step))
        loss = mixkit.soft_target_binary_cross_entropy(model(xm), ym)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    accuracy = float(((model(x) > 0) == y.bool()).float().mean())
    assert accuracy > 0.85, (first, float(loss), accuracy)


# ---------------------------------------------------------------------------------------------
# Label smoothing


def _smooth(onehot, eps):
    return onehot * (1 - eps) + eps / onehot.shape[1]


@pytest.mark.parametrize("name", list(_factories(label_smoothing=0.1)))
def test_label_smoothing_smooths_then_mixes(name):
    x, y = _batch()
    eps = 0.1
    mixer = (_factories(label_smoothing=eps)[name])()
    params = mixer.sample(x, generator=torch.Generator().manual_seed(0))
    _, soft = mixer.apply(x, y, params)
    target = _smooth(nn.functional.one_hot(y, C).float(), eps)
    if params.weights is not None:
        expected = params.weights @ target
    else:
        lam = params.lam[:, None]
        expected = lam * target + (1 - lam) * target[params.index]
    torch.testing.assert_close(soft, expected)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    assert float(soft.min()) >= eps / C - 1e-7


def test_combinations_smooth_once():
    x, y = _batch()
    eps = 0.2
    both = mixkit.Compose([mixkit.CutMix(label_smoothing=eps), mixkit.MixUp(label_smoothing=eps)],
                          num_classes=C)
    assert both.label_smoothing == eps
    params = both.sample(x, generator=torch.Generator().manual_seed(0))
    _, soft = both.apply(x, y, params)
    plain = mixkit.Compose([mixkit.CutMix(), mixkit.MixUp()], num_classes=C)
    _, unsmoothed = plain.apply(x, y, params)
    # mixing is linear in the targets, so smoothing once before = smoothing once after
    torch.testing.assert_close(soft, _smooth(unsmoothed, eps))
    nested = mixkit.RandomChoice([both, mixkit.FMix(label_smoothing=eps)])
    assert nested.label_smoothing == eps
    _, soft = nested(x, y)
    assert float(soft.min()) >= eps / C - 1e-7 and float(soft.min()) < 2 * eps / C
    with pytest.raises(ValueError, match=r"label_smoothing: expected one value across mixers, got \[0.1, 0.2\]"):
        mixkit.Alternate([mixkit.MixUp(label_smoothing=0.1), mixkit.FMix(label_smoothing=0.2)])


def test_label_smoothing_reaches_manifold_mixup_and_is_checked():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 16), nn.ReLU(), nn.Linear(16, C))
    mm = mixkit.ManifoldMixup(net, ["1"], mixer=mixkit.MixUp(num_classes=C, label_smoothing=0.1))
    x, y = _batch()
    _, soft = mm(x, y)
    assert float(soft.min()) >= 0.01 - 1e-7
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    for bad, err in ((1.0, ValueError), (-0.1, ValueError), (True, TypeError)):
        with pytest.raises(err, match="label_smoothing: expected a number in"):
            mixkit.MixUp(label_smoothing=bad)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixup", "cutmix-elem"])
def test_a_compiled_mixer_module_traces_whole_calls_in_both_forms(name):
    mixer = _factories(label_smoothing=0.1)[name]()
    compiled = torch.compile(mixer, fullgraph=True)  # no graph break in forward, packed or not
    x, y = _batch()
    for call in (lambda: compiled(x, y), lambda: compiled((x, y))):
        mixed, soft = call()
        assert mixed.shape == x.shape and soft.shape == (8, C)
        torch.testing.assert_close(soft.sum(1), torch.ones(8))
        assert float(soft.min()) >= 0.01 - 1e-7
