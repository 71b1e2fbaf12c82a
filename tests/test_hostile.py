"""Hostile input to the library (issue 27): every case asserts the rule, a clear error that names
the argument at fault (``params``, ``alpha``, ...) or a correct result, never a message verbatim
unless its words are the point.

Replay: ``apply`` checks the parameters it did not draw itself against the inputs (the shape they
were drawn for, the dtype and range of every field); a call (``mixer(x, y)``) draws and applies
without those checks. Hyperparameters: one checker per rule (``mixkit.checks``)."""

import math

import grid
import pytest
import torch

import mixkit
from mixkit import functional as F
from mixkit.functional import execution, mixing
from mixkit.params import MixParams

C = 5


def _batch(shape=(4, 3, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.randint(0, C, (shape[0],), generator=g)


def _drawn(mixer, shape=(4, 3, 16, 16)):
    x, _ = _batch(shape)
    return mixer.sample(x, generator=torch.Generator().manual_seed(1))


REGIONAL = grid.select(grid.modes(C), lambda m: grid.regional(m) and not m.needs_masks)


# ---------------------------------------------------------------------------------------------
# replay of parameters that do not fit


@pytest.mark.parametrize("name", list(REGIONAL))
def test_params_drawn_for_another_spatial_size_are_refused(name):
    mixer = REGIONAL[name]()
    params = _drawn(mixer, (4, 3, 16, 16))
    x, y = _batch((4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"^params: expected inputs of the batch size and spatial size"):
        mixer.apply(x, y, params)


@pytest.mark.parametrize("name", list(grid.modes(C)))
def test_params_drawn_for_another_batch_size_are_refused(name):
    mixer = grid.modes(C)[name]()
    x, y = _batch((6, 3, 16, 16))
    params = mixer.sample(x[:4], generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^params: expected"):
        mixer.apply(x, y, params)


BAD_FIELDS = {
    "lam 2.0": ("MixUp", lambda p: p.replace(lam=torch.full_like(p.lam, 2.0)), "lam with values in"),
    "lam nan": ("MixUp", lambda p: p.replace(lam=torch.full_like(p.lam, math.nan)), "lam with values in"),
    "lam of ints": ("MixUp", lambda p: p.replace(lam=torch.ones(4, dtype=torch.long)), "lam as a float tensor"),
    "index out of range": ("MixUp", lambda p: p.replace(index=torch.tensor([0, 1, 2, 9])), "index with partners in"),
    "index negative": ("CutMix", lambda p: p.replace(index=torch.tensor([0, -1, 2, 3])), "index with partners in"),
    "index of floats": ("MixUp", lambda p: p.replace(index=p.index.float()), "index as an integer tensor"),
    "index of wrong length": ("MixUp", lambda p: p.replace(index=p.index[:3]), "index as an integer tensor of shape"),
    "applied not bool": ("MixUp", lambda p: p.replace(applied=p.applied.long()), "applied as a bool tensor"),
    "weights rows summing to 4": ("ZetaMixup", lambda p: p.replace(weights=p.weights * 4), "weights with non-negative"),
    "weights negative": ("ZetaMixup", lambda p: p.replace(weights=p.weights - p.weights.mean()), "weights with"),
    "mask of 5": ("FMix", lambda p: p.replace(mask=p.mask * 5), "mask with values in"),
    "mask of the wrong shape": ("FMix", lambda p: p.replace(mask=p.mask[:, :8]), "mask as a float tensor of shape"),
    "reversed boxes": ("CutMix", lambda p: p.replace(boxes=torch.tensor([[[9, 2], [1, 5]]])), "boxes with"),
    "boxes outside": ("CutMix", lambda p: p.replace(boxes=torch.tensor([[[0, 40], [0, 5]]])), "boxes with"),
    "float boxes": ("CutMix", lambda p: p.replace(boxes=p.boxes.float()), "boxes as an integer tensor"),
    "boxes of the wrong rank": ("ResizeMix", lambda p: p.replace(boxes=torch.zeros(1, 3, 2, dtype=torch.long)),
                                "boxes as an integer tensor of shape"),
}


@pytest.mark.parametrize("case", BAD_FIELDS, ids=BAD_FIELDS.keys())
def test_replayed_fields_out_of_their_range_are_refused(case):
    cls, edit, message = BAD_FIELDS[case]
    mixer = getattr(mixkit, cls)(num_classes=C)
    params = edit(_drawn(mixer))
    x, y = _batch()
    with pytest.raises(ValueError, match=r"^params: expected " + message):
        mixer.apply(x, y, params)


def test_on_a_device_the_value_checks_are_async_asserts(monkeypatch):
    # on CPU torch._assert_async raises at once, with the message a CUDA user gets at the next sync
    from mixkit import params as params_module

    monkeypatch.setattr(params_module, "host_readable", lambda t: False)
    mixer = mixkit.MixUp(num_classes=C)
    params = _drawn(mixer)
    x, y = _batch()
    with pytest.raises(RuntimeError, match="params: expected lam with values in"):
        mixer.apply(x, y, params.replace(lam=torch.full_like(params.lam, 2.0)))


def test_params_on_the_meta_device_are_refused():
    mixer = mixkit.CutMix(num_classes=C)
    params = _drawn(mixer).to("meta")
    x, y = _batch()
    with pytest.raises(ValueError, match=r"^params: expected parameters on a real device .* got them on meta"):
        mixer.apply(x, y, params)


def test_combination_params_are_checked():
    x, y = _batch()
    choice = mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix()], num_classes=C)
    mixed = choice.sample(x, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"^params: expected ComposedParams .* got MixParams"):
        choice.apply(x, y, mixed.parts[0])
    with pytest.raises(TypeError, match=r"^params: expected MixParams .* got ComposedParams"):
        mixkit.MixUp(num_classes=C).apply(x, y, mixed)
    with pytest.raises(ValueError, match=r"^params: expected a choice in \[0, 1\], got 2"):
        choice.apply(x, y, mixkit.ComposedParams(choice=2, parts=mixed.parts))
    with pytest.raises(ValueError, match=r"^params: expected a choice in \[0, 1\], got 0.0"):
        choice.apply(x, y, mixkit.ComposedParams(choice=0.0, parts=mixed.parts))
    both = mixkit.Compose([mixkit.CutMix(), mixkit.MixUp()], num_classes=C)
    with pytest.raises(ValueError, match=r"^params: expected 2 parts, got 1"):
        both.apply(x, y, mixkit.ComposedParams(choice=None, parts=mixed.parts))


def test_parameters_made_by_hand_are_still_checked_by_value():
    x, y = _batch()
    params = MixParams(lam=torch.full((4,), 0.3), applied=torch.ones(4, dtype=torch.bool),
                       index=torch.tensor([1, 0, 3, 2]))
    mixed, soft = mixkit.MixUp(num_classes=C).apply(x, y, params)  # no drawn shape: values checked
    torch.testing.assert_close(mixed, 0.3 * x + 0.7 * x[[1, 0, 3, 2]])
    with pytest.raises(ValueError, match=r"^params: expected index with partners in \[0, 3\]"):
        mixkit.MixUp(num_classes=C).apply(x, y, params.replace(index=torch.tensor([1, 0, 3, 4])))


def test_a_call_draws_and_applies_without_the_replay_checks(monkeypatch):
    # the checks cost host reads: the call, whose parameters were drawn a moment ago, skips them
    from mixkit import base

    calls = []
    monkeypatch.setattr(base, "check_params", lambda *a, **k: calls.append(a))
    x, y = _batch()
    for mixer in grid.one_each(C):
        mixer(x, y, generator=torch.Generator().manual_seed(0))
    assert calls == []
    mixer = mixkit.CutMix(num_classes=C)
    mixer.apply(x, y, _drawn(mixer))
    assert len(calls) == 1


def test_replay_checks_run_on_the_host_only_for_host_tensors():
    assert execution.host_readable(torch.zeros(1))
    assert not execution.host_readable(torch.zeros(1, device="meta"))


# ---------------------------------------------------------------------------------------------
# hyperparameters


@pytest.mark.parametrize("value", [1e-320, 1e-45])
def test_subnormal_alpha_is_refused(value):
    for cls in (mixkit.MixUp, mixkit.CutMix, mixkit.FMix):
        with pytest.raises(ValueError, match=r"^alpha: expected a number >= 1.18e-38"):
            cls(alpha=value)


def test_tiny_but_normal_alpha_gives_finite_mixes():
    x, y = _batch()
    for cls in (mixkit.MixUp, mixkit.CutMix):
        mixed, soft = cls(alpha=1e-30, num_classes=C, mode="elem")(x, y, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(mixed).all() and torch.isfinite(soft).all()


@pytest.mark.parametrize("name, value", [("correct_lam", "false"), ("reformulate", "false"), ("correct_lam", 0)])
def test_booleans_are_bools(name, value):
    cls = mixkit.CutMix if name == "correct_lam" else mixkit.FMix
    with pytest.raises(TypeError, match=rf"^{name}: expected a bool, got"):
        cls(**{name: value})


@pytest.mark.parametrize("p", [[math.nan, 1.0], [math.nan, math.nan], [0.5, 0.6], [-0.5, 1.5], [1.0]])
def test_random_choice_probabilities(p):
    with pytest.raises(ValueError, match=r"^p: expected 2 non-negative probabilities summing to 1"):
        mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix()], p=p)


def test_random_choice_probabilities_of_the_wrong_kind():
    with pytest.raises(TypeError, match=r"^p: expected a sequence of 2 probabilities, got str"):
        mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix()], p="ab")


def test_fmix_decay_that_overflows_float32_is_refused_at_sample_time():
    fmix = mixkit.FMix(decay_power=30, num_classes=C)
    x, y = _batch((4, 1, 32, 32))
    with pytest.raises(ValueError, match=r"^decay_power: expected at most 24.6 for inputs of spatial shape \(32, 32\)"):
        fmix(x, y)
    # the largest decay allowed still gives masks of the drawn share
    params = mixkit.FMix(decay_power=24, num_classes=C, mode="elem").sample(x, generator=torch.Generator())
    assert 0 < float(params.lam.mean()) < 1


# ---------------------------------------------------------------------------------------------
# valid input that used to crash, and states from elsewhere


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_class_ids_of_any_integer_dtype(dtype):
    x, y = _batch()
    for mixer in grid.one_each(C):
        _, soft = mixer(x, y.to(dtype), generator=torch.Generator().manual_seed(0))
        _, ref = mixer(x, y, generator=torch.Generator().manual_seed(0)) if not isinstance(
            mixer, mixkit.Alternate) else (None, soft)
        torch.testing.assert_close(soft, ref)


def test_inplace_on_an_expanded_batch_is_refused():
    x = torch.rand(1, 3, 8, 8).expand(4, 3, 8, 8)
    for mixer in grid.select(grid.modes(C, inplace=True), lambda m: m.supports_inplace).values():
        with pytest.raises(ValueError, match=r"^inplace: expected inputs whose elements each have their own memory"):
            mixer()(x, torch.arange(4) % C)


def test_alternate_refuses_a_foreign_state():
    alt = mixkit.Alternate([mixkit.MixUp(), mixkit.FMix()])
    for state in ({"foo": 1}, {"step": -1}, {"step": "2"}, [1]):
        with pytest.raises(ValueError, match=r"^state: expected Alternate's state"):
            alt.load_state_dict({"_extra_state": state})
    alt.load_state_dict({"_extra_state": {"step": 3}})
    assert alt.step == 3


def test_synermix_refuses_an_empty_batch():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.ReLU(), torch.nn.Linear(4, C))
    syner = mixkit.SynerMix(net, "2", "3", beta=0.5, num_classes=C)
    empty = torch.zeros(0, 3, 2, 2)
    with pytest.raises(ValueError, match=r"^originals: expected a batch of at least one sample"):
        syner.loss(empty, empty, torch.zeros(0, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# non-finite inputs stay where they are


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", list(grid.modes(C, p=0.5)))
def test_a_non_finite_sample_reaches_only_the_samples_mixed_with_it(name, bad):
    mixer = grid.modes(C, p=0.5)[name]()
    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2, 0, 1, 1] = bad
    for seed in range(6):
        params = mixer.sample(x, generator=torch.Generator().manual_seed(seed))
        mixed, _ = mixer.apply(x, y, params)
        for i in range(8):
            if not bool(params.applied[i]):      # not mixed: as it came, bit for bit
                assert torch.equal(mixed[i].nan_to_num(posinf=7.0), x[i].nan_to_num(posinf=7.0)), (i, seed)
            elif params.index is not None and i != 2 and int(params.index[i]) != 2:
                assert torch.isfinite(mixed[i]).all(), (i, seed)   # mixed, but not with sample 2
            elif params.weights is not None and i != 2 and float(params.weights[i, 2]) == 0.0:
                assert torch.isfinite(mixed[i]).all(), (i, seed)


INPLACE_BLENDS = grid.select(grid.modes(C, p=0.5, inplace=True), lambda m: m.interpolates and grid.inplace(m))


@pytest.mark.parametrize("device_path", [False, True], ids=["host", "device-path"])
@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", list(INPLACE_BLENDS))
def test_unmixed_rows_come_out_as_they_came_when_blended_in_place(name, bad, device_path):
    from mixkit.harness.bench import devicepath as dp

    mixer = INPLACE_BLENDS[name]()
    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2, 0, 1, 1] = bad
    unmixed = 0
    for seed in range(6):
        params = mixer.sample(x, generator=torch.Generator().manual_seed(seed))
        work = x.clone()
        with dp.forced_device_path() if device_path else _nothing():
            mixed, _ = mixer.apply(work, y, params)
        assert mixed.data_ptr() == work.data_ptr()          # written in place
        for i in range(8):
            if not bool(params.applied[i]):
                unmixed += 1
                assert torch.equal(mixed[i].nan_to_num(posinf=7.0), x[i].nan_to_num(posinf=7.0)), (i, seed)
            elif i != 2 and int(params.index[i]) != 2:
                assert torch.isfinite(mixed[i]).all(), (i, seed)
    assert unmixed > 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


BLENDS = grid.select(grid.modes(C), lambda m: m.interpolates and not isinstance(m, mixkit.ZetaMixup)
                     and type(m).__name__ not in ("RandomChoice",) and hasattr(m, "mode"))


@pytest.mark.parametrize("inplace", [False, True], ids=["out-of-place", "inplace"])
@pytest.mark.parametrize("name", list(BLENDS))
def test_a_drawn_weight_of_zero_leaves_the_row_as_it_came(name, inplace):
    # lam exactly 1 (1.7 % of MixUp's draws at alpha 0.2 in float32; every row of an all-ones
    # mask): weight 0 on the partner, and on the CPU the row comes out bit for bit, whatever
    # the partner holds
    mixer = BLENDS[name]()
    if inplace and not mixer.supports_inplace:
        pytest.skip("no inplace option")
    mixer.inplace = inplace
    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2] = math.inf
    params = mixer.sample(x, generator=torch.Generator().manual_seed(0))
    index = torch.full((8,), 2)
    index[2] = 0
    ones = torch.zeros(8, dtype=torch.bool)
    ones[[1, 2, 5]] = True                                   # 2: the non-finite sample itself
    lam = torch.where(ones, 1.0, params.lam.clamp(0.2, 0.8))
    fields = dict(lam=lam, index=index)
    if params.mask is not None:
        mask = params.mask.expand(8, 6, 6).clamp(0.2, 0.8)
        fields["mask"] = torch.where(ones.view(8, 1, 1), 1.0, mask)
        fields["lam"] = fields["mask"].flatten(1).mean(1)
    if params.boxes is not None:
        boxes = params.boxes.expand(8, 2, 2).clone()
        boxes[ones] = 0
        boxes[~ones] = torch.tensor([[1, 4], [1, 4]])
        fields["boxes"] = boxes
        fields["lam"] = torch.where(ones, 1.0, 1 - 9 / 36)
    mixed, soft = mixer.apply(x.clone(), y, params.replace(**fields))
    for i in range(8):
        if bool(ones[i]):
            assert torch.equal(mixed[i].nan_to_num(posinf=7.0), x[i].nan_to_num(posinf=7.0)), i
        else:
            assert not torch.isfinite(mixed[i]).all(), i       # mixed with sample 2: it shows


def test_zeta_mixup_identity_rows_stay_as_they_came_beside_two_non_finite_samples():
    x, y = _batch((6, 2, 4, 4), seed=3)
    x[1, 0, 0, 0], x[4, 1, 2, 2] = math.inf, math.nan
    zeta = mixkit.ZetaMixup(num_classes=C, p=0.5)
    params = zeta.sample(x, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(6)
    weights = params.weights.clone() if params.weights is not None else eye
    weights[[1, 3]] = eye[[1, 3]]                              # 1: non-finite itself; 3: clean
    weights[0] = torch.tensor([0.5, 0.0, 0.0, 0.0, 0.5, 0.0])
    weights[2] = torch.tensor([0.0, 0.0, 0.7, 0.3, 0.0, 0.0])
    for w in (weights, params.weights):
        fields = dict(weights=w, lam=w.diagonal().clone())
        mixed, _ = zeta.apply(x, y, params.replace(**fields))
        for i in range(6):
            if bool((w[i] != 0).sum() == 1) and float(w[i, i]) == 1.0:
                assert torch.equal(mixed[i].nan_to_num(posinf=7.0), x[i].nan_to_num(posinf=7.0)), i


@pytest.mark.parametrize("p", [0.5, 1.0])
@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_pasted_regions_carry_a_non_finite_partner_only_where_they_paste(bad, p):
    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2] = bad
    pasting = grid.select(grid.modes(C, p=p), lambda m: grid.regional(m) and not m.interpolates)
    assert {"CutMix", "FMix"} <= {type(m()).__name__ for m in pasting.values()}
    for mixer in pasting.values():
        mixer = mixer()
        for seed in range(3):
            params = mixer.sample(x, generator=torch.Generator().manual_seed(seed))
            mixed, _ = mixer.apply(x, y, params)
            keep = mixer.keep_mask(params, (6, 6)).bool().expand(8, 6, 6)
            for i in [i for i in range(8) if i != 2]:
                own = keep[i].unsqueeze(0).expand_as(x[i])
                if p == 1.0 and isinstance(mixer, mixkit.base.MaskMixer):
                    # every row mixed: on the CPU a binary mask blends (no finiteness check), so a
                    # kept pixel turns NaN where the partner is non-finite, and only there
                    own = own & torch.isfinite(x[params.index[i]])
                assert torch.equal(mixed[i][own], x[i][own]), (type(mixer).__name__, i, seed)


def test_binary_masks_select_exactly_when_asked_or_on_the_device_path(monkeypatch):
    x, _ = _batch((8, 2, 6, 6), seed=3)
    x[2] = math.nan
    index = torch.arange(8).roll(1)
    mask = (torch.rand(8, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    keep = mask.bool().unsqueeze(1).expand_as(x)
    exact = F.blend_mask(x, index, mask, binary=True)              # the functional default
    assert torch.equal(exact[3][keep[3]], x[3][keep[3]])
    fast = F.blend_mask(x, index, mask, binary=True, exact=False)  # the plain blend on the CPU
    assert torch.isnan(fast[3][keep[3]]).all()
    assert not torch.equal(fast.nan_to_num(), exact.nan_to_num())
    monkeypatch.setattr(mixing, "host_readable", lambda t: False)  # the path accelerators take
    device = F.blend_mask(x, index, mask, binary=True, exact=False)
    assert torch.equal(device[3][keep[3]], x[3][keep[3]])


def test_zeta_mixup_rows_without_weight_on_a_non_finite_sample_stay_finite():
    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2, 0, 0, 0] = math.inf
    zeta = mixkit.ZetaMixup(num_classes=C, n_mix=2)
    params = zeta.sample(x, generator=torch.Generator().manual_seed(0))
    mixed, _ = zeta.apply(x, y, params)
    for i in range(8):
        assert bool(torch.isfinite(mixed[i]).all()) == (float(params.weights[i, 2]) == 0.0), i
    # with finite inputs the product is the plain one, bit for bit
    clean, _ = _batch((8, 2, 6, 6), seed=3)
    torch.testing.assert_close(zeta.apply(clean, y, params)[0],
                               (params.weights @ clean.reshape(8, -1)).view_as(clean), rtol=0, atol=0)


@pytest.mark.parametrize("options", [dict(gamma=50.0), dict(gamma=2.8, p=0.5), dict(gamma=2.8, n_mix=3)],
                         ids=["underflowing-weights", "p", "n_mix"])
def test_zeta_mixup_weights_with_zeros_keep_a_non_finite_sample_to_its_rows(options):
    # gamma=50 with N = B: 8^-50 underflows to 0 in float32, so some rows give sample 2 no weight
    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2, 0, 0, 0] = math.nan
    zeta = mixkit.ZetaMixup(num_classes=C, **options)
    zeros = 0
    for seed in range(4):
        params = zeta.sample(x, generator=torch.Generator().manual_seed(seed))
        mixed, _ = zeta.apply(x, y, params)
        for i in range(8):
            given = float(params.weights[i, 2]) != 0.0
            zeros += not given
            assert bool(torch.isfinite(mixed[i]).all()) == (not given), (i, seed)
    assert zeros > 0


def test_zeta_mixup_n_mix_keeps_a_non_finite_sample_to_its_rows_on_the_device_path():
    # accelerators (forced here on the CPU: nothing is read back) take the exact product too
    from mixkit.harness.bench import devicepath as dp

    x, y = _batch((8, 2, 6, 6), seed=3)
    x[2, 0, 0, 0] = math.inf
    zeta = mixkit.ZetaMixup(num_classes=C, n_mix=2)
    params = zeta.sample(x, generator=torch.Generator().manual_seed(0))
    with dp.forced_device_path():
        mixed, _ = zeta.apply(x, y, params)
        clean, _ = _batch((8, 2, 6, 6), seed=3)
        plain = zeta.apply(clean, y, params)[0]
    for i in range(8):
        assert bool(torch.isfinite(mixed[i]).all()) == (float(params.weights[i, 2]) == 0.0), i
    torch.testing.assert_close(plain, (params.weights @ clean.reshape(8, -1)).view_as(clean), rtol=0, atol=0)
    # N = B: every row gives every sample weight, so the single product is already exact
    full = mixkit.ZetaMixup(num_classes=C)
    assert full._exact(x) is False and zeta._exact(x) is True


def test_inplace_on_a_self_overlapping_view_is_refused():
    x = torch.rand(200).as_strided((4, 3, 8, 8), (3, 1, 1, 1))
    with pytest.raises(ValueError, match=r"^inplace: expected inputs whose elements each have their own memory"):
        mixkit.CutMix(num_classes=C, inplace=True)(x, torch.arange(4) % C)
    # views that do not overlap stay writable in place
    big = torch.rand(4, 3, 8, 16)
    mixkit.CutMix(num_classes=C, inplace=True)(big[..., ::2], torch.arange(4) % C)


def test_lightning_mixbatch_refuses_a_malformed_generator_state():
    pytest.importorskip("lightning")
    from mixkit.compat.lightning import MixBatch

    mb = MixBatch(mixkit.MixUp(num_classes=C), seed=0)
    for state in ({"generator": [1, 2, 3]}, {"generator": "abc"}, {"generator": None, "batches": -1}):
        with pytest.raises(ValueError, match=r"^state_dict: expected"):
            mb.load_state_dict(state)
    good = {"generator": torch.Generator().manual_seed(3).get_state().tolist(), "batches": 2}
    mb.load_state_dict(good)
    assert mb.batches == 2


def test_the_overlap_check_fast_exit_agrees_with_the_stride_walk():
    # _may_overlap returns at once for contiguous tensors; the stride walk says the same for them
    from mixkit import base

    def walk(t):
        span = 0
        for stride, size in sorted((abs(st), n) for st, n in zip(t.stride(), t.shape, strict=True) if n > 1):
            if stride <= span:
                return True
            span += stride * (size - 1)
        return False

    for shape in [(4, 3, 8, 8), (1, 3, 1, 5), (2, 1), (3, 1, 1, 1, 2)]:
        t = torch.rand(shape)
        assert base._may_overlap(t) is False and walk(t) is False
    expanded = torch.rand(1, 3, 4, 4).expand(4, 3, 4, 4)
    assert base._may_overlap(expanded) and walk(expanded)
