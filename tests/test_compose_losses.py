"""Combinations of mixers and the soft-target losses."""

import grid
import pytest
import torch
import torch.nn.functional as F

import mixkit


def test_alternate_cycles_and_resumes():
    mu, fm = mixkit.MixUp(), mixkit.FMix()
    alt = mixkit.Alternate([mu, fm], num_classes=3)
    x = torch.rand(4, 1, 8, 8)
    choices = [alt.sample(x).choice for _ in range(5)]
    assert choices == [0, 1, 0, 1, 0]
    state = alt.state_dict()
    other = mixkit.Alternate([mixkit.MixUp(), mixkit.FMix()], num_classes=3)
    other.load_state_dict(state)
    assert other.sample(x).choice == alt.sample(x).choice == 1


@pytest.mark.slow
def test_random_choice_frequencies(gen):
    pick = mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix(), mixkit.FMix()], p=[0.2, 0.5, 0.3],
                               num_classes=3)
    x = torch.rand(2, 1, 4, 4)
    counts = torch.zeros(3)
    for _ in range(3000):
        counts[pick.sample(x, generator=gen).choice] += 1
    freq = counts / 3000
    assert torch.allclose(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.03)


def test_compose_equals_manual_sequence(gen):
    cut, zeta = mixkit.CutMix(mode="elem"), mixkit.ZetaMixup(gamma=2.0)
    both = mixkit.Compose([cut, zeta], num_classes=5)
    x = torch.rand(6, 3, 8, 8, generator=gen)
    y = torch.randint(0, 5, (6,), generator=gen)
    params = both.sample(x, generator=gen)
    mixed, soft = both.apply(x, y, params)
    step1, soft1 = cut.apply(x, F.one_hot(y, 5).float(), params.parts[0])
    step2, soft2 = zeta.apply(step1, soft1, params.parts[1])
    assert torch.equal(mixed, step2) and torch.equal(soft, soft2)
    torch.testing.assert_close(soft.sum(1), torch.ones(6))
    # the zeta weights act on the CutMix result: reference by explicit sums
    W = params.parts[1].weights
    torch.testing.assert_close(mixed, torch.einsum("pi,i...->p...", W, step1))


def test_soft_ce_equals_papers_form(gen):
    logits = torch.randn(8, 5, generator=gen)
    a = torch.randint(0, 5, (8,), generator=gen)
    b = torch.randint(0, 5, (8,), generator=gen)
    lam = torch.rand(8, generator=gen)
    soft = lam[:, None] * F.one_hot(a, 5) + (1 - lam[:, None]) * F.one_hot(b, 5)
    torch.testing.assert_close(mixkit.soft_target_cross_entropy(logits, soft),
                               mixkit.mixed_cross_entropy(logits, a, b, lam))
    # with one-hot targets it is the ordinary cross-entropy, smoothing included
    torch.testing.assert_close(mixkit.soft_target_cross_entropy(logits, F.one_hot(a, 5).float(), 0.1),
                               F.cross_entropy(logits, a, label_smoothing=0.1))
    torch.testing.assert_close(mixkit.soft_target_cross_entropy(logits, a, 0.1),
                               F.cross_entropy(logits, a, label_smoothing=0.1))
    per = mixkit.soft_target_cross_entropy(logits, soft, reduction="none")
    assert per.shape == (8,)
    torch.testing.assert_close(mixkit.SoftTargetCrossEntropy(reduction="sum")(logits, soft), per.sum())


def test_soft_ce_half_logits_computed_in_float32(gen):
    logits = torch.randn(8, 5, generator=gen)
    y = torch.randint(0, 5, (8,), generator=gen)
    loss = mixkit.soft_target_cross_entropy(logits.half(), y)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(F.cross_entropy(logits.half().float(), y).item(), rel=1e-5)


def test_zeta_loss_is_weighted_sum_of_ce(gen):
    # soft CE with zeta labels = sum_i W[p, i] CE(z_p, y_i)
    z = mixkit.ZetaMixup(gamma=2.8, num_classes=4)
    x = torch.rand(5, 3, generator=gen)
    y = torch.randint(0, 4, (5,), generator=gen)
    params = z.sample(x, generator=gen)
    _, soft = z.apply(x, y, params)
    logits = torch.randn(5, 4, generator=gen)
    ce = torch.stack([F.cross_entropy(logits, y[i].expand(5), reduction="none") for i in range(5)], 1)
    expected = (params.weights * ce).sum(1).mean()
    torch.testing.assert_close(mixkit.soft_target_cross_entropy(logits, soft), expected)


def test_loss_errors():
    with pytest.raises(ValueError, match=r"targets: expected class ids \(2,\) or probabilities \(2, 3\), got "
                       r"torch.float32 of shape \(2, 4\)"):
        mixkit.soft_target_cross_entropy(torch.randn(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, C\) or \(B, C, \*spatial\), got \(2,\)"):
        mixkit.soft_target_cross_entropy(torch.randn(2), torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"targets: expected class ids \(2, 1\) or probabilities \(2, 3, 1\)"):
        mixkit.soft_target_cross_entropy(torch.randn(2, 3, 1), torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"targets: expected 2 rows \(one per logit row\), got 3"):
        mixkit.soft_target_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"label_smoothing: expected a value in \[0, 1\], got 2"):
        mixkit.soft_target_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), label_smoothing=2)


def test_gradients_flow_through_mixing(gen):
    x = torch.rand(6, 2, 8, 8, generator=gen, requires_grad=True)
    y = torch.randint(0, 3, (6,), generator=gen)
    for m in [*grid.one_each(3), mixkit.FMix(num_classes=3, max_soft=0.1)]:
        mixed, _ = m(x, y, generator=gen)
        (g,) = torch.autograd.grad(mixed.sum(), x)
        # each output is a convex combination, so the total weight per output element is 1
        torch.testing.assert_close(g.sum(), torch.tensor(float(x.numel())))
