"""``pairing=``: who each sample is mixed with. "permutation" (the papers'), "roll" (torchvision's
v2 MixUp/CutMix), "flip" (timm's Mixup); each exact, in every pairing mixer."""

import pytest
import torch

import mixkit
from mixkit.functional import sample_pairing
from mixkit.mixers import MixParams


@pytest.mark.parametrize("b", [1, 2, 5, 8])
def test_partner_index_of_each_kind(b):
    assert sample_pairing(b, kind="roll").tolist() == [(i - 1) % b for i in range(b)]
    assert sample_pairing(b, kind="flip").tolist() == [b - 1 - i for i in range(b)]
    perm = sample_pairing(b, kind="permutation", generator=torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(b))
    assert perm.tolist() == torch.randperm(b, generator=torch.Generator().manual_seed(0)).tolist()


def test_roll_and_flip_draw_nothing_and_leave_nobody_unmixed():
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    for kind in ("roll", "flip"):
        idx = sample_pairing(8, kind=kind, generator=g)
        assert (idx != torch.arange(8)).all()
    assert torch.equal(g.get_state(), state)
    # a permutation leaves some samples as their own partner, about 1 in B on average
    fixed = [int((sample_pairing(8, generator=torch.Generator().manual_seed(s)) == torch.arange(8)).sum())
             for s in range(400)]
    assert 0.8 < sum(fixed) / len(fixed) < 1.2


def test_bad_pairing_is_a_clear_error():
    for cls in (mixkit.MixUp, mixkit.CutMix, mixkit.FMix):
        with pytest.raises(ValueError, match="pairing: expected one of 'permutation', 'roll', 'flip', got 'shift'"):
            cls(num_classes=3, pairing="shift")


@pytest.mark.parametrize("cls", [mixkit.MixUp, mixkit.CutMix, mixkit.FMix])
@pytest.mark.parametrize("kind", ["roll", "flip"])
def test_each_mixer_pairs_as_asked(cls, kind):
    x = torch.rand(6, 3, 16, 16)
    y = torch.arange(6) % 4
    mixer = cls(alpha=1.0, num_classes=4, pairing=kind)
    params = mixer.sample(x, generator=torch.Generator().manual_seed(1))
    assert params.index.tolist() == sample_pairing(6, kind=kind).tolist()
    mixed, soft = mixer.apply(x, y, params)
    partner = params.index
    # every value of a mixed sample lies between its own and its partner's (mask methods: equals one)
    lo, hi = torch.minimum(x, x[partner]), torch.maximum(x, x[partner])
    assert ((mixed >= lo - 1e-6) & (mixed <= hi + 1e-6)).all()
    lam = params.lam[:, None]
    expected = lam * torch.nn.functional.one_hot(y, 4) + (1 - lam) * torch.nn.functional.one_hot(y[partner], 4)
    assert torch.allclose(soft, expected.float(), atol=1e-6)


def test_roll_equals_torchvision_v2_mixup():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    x, y = torch.rand(8, 3, 12, 12), torch.randint(0, 5, (8,))
    torch.manual_seed(11)
    tv_x, tv_y = v2.MixUp(alpha=0.8, num_classes=5)(x, y)
    # torchvision's lam: one draw of Beta(0.8, 0.8) from the global generator
    torch.manual_seed(11)
    lam = float(torch.distributions.Beta(torch.tensor([0.8]), torch.tensor([0.8])).sample(()))
    params = MixParams(lam=torch.full((8,), lam), applied=torch.ones(8, dtype=torch.bool),
                       index=sample_pairing(8, kind="roll"))
    mx, my = mixkit.MixUp(alpha=0.8, num_classes=5, pairing="roll").apply(x, y, params)
    assert torch.allclose(mx, tv_x, atol=1e-6) and torch.allclose(my, tv_y, atol=1e-6)


def test_flip_is_timms_pairing():
    """timm's batch MixUp: ``x * lam + x.flip(0) * (1 - lam)``, targets likewise."""
    x, y = torch.rand(7, 3, 8, 8), torch.arange(7) % 3
    lam = 0.3
    params = MixParams(lam=torch.full((7,), lam), applied=torch.ones(7, dtype=torch.bool),
                       index=sample_pairing(7, kind="flip"))
    mx, my = mixkit.MixUp(num_classes=3, pairing="flip").apply(x, y, params)
    one_hot = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(mx, x * lam + x.flip(0) * (1 - lam), atol=1e-6)
    assert torch.allclose(my, one_hot * lam + one_hot.flip(0) * (1 - lam), atol=1e-6)
    assert torch.equal(mx[3], x[3])                      # the middle of an odd batch is its own partner


def test_repr_shows_a_non_default_pairing():
    assert "pairing='roll'" in repr(mixkit.CutMix(num_classes=3, pairing="roll"))
    assert "pairing" not in repr(mixkit.CutMix(num_classes=3))
