"""Every user error gives a clear message naming what was expected and what came."""

import pytest
import torch

import mixkit
from mixkit.functional import to_soft_labels

X = torch.rand(4, 3, 8, 8)
Y = torch.tensor([0, 1, 2, 3])


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: mixkit.MixUp(alpha=0.0), r"alpha: expected a finite number > 0, got 0.0"),
        (lambda: mixkit.MixUp(alpha=-1), r"alpha: expected a finite number > 0, got -1"),
        (lambda: mixkit.CutMix(alpha=float("inf")), r"alpha: expected a finite number > 0, got inf"),
        (lambda: mixkit.ZetaMixup(gamma=0), r"gamma: expected a finite number > 0, got 0"),
        (lambda: mixkit.FMix(decay_power=-2.0), r"decay_power: expected a finite number > 0, got -2.0"),
        (lambda: mixkit.MixUp(p=1.5), r"p: expected a probability in \[0, 1\], got 1.5"),
        (lambda: mixkit.FMix(p=-0.1), r"p: expected a probability in \[0, 1\], got -0.1"),
        (lambda: mixkit.ZetaMixup(n_mix=0), r"n_mix: expected None or an integer >= 1, got 0"),
        (lambda: mixkit.MixUp(mode="pair"), r"mode: expected 'batch' or 'elem', got 'pair'"),
        (lambda: mixkit.FMix(max_soft=0.7), r"max_soft: expected a number in \[0, 0.5\], got 0.7"),
        (lambda: mixkit.FMix(spectrum="stripes"), r"spectrum: expected 'paper' or 'official'"),
        (lambda: mixkit.MixUp(num_classes=0), r"num_classes: expected None or an integer >= 1, got 0"),
        (lambda: mixkit.RandomChoice([mixkit.MixUp()], p=[0.5]), r"p: expected 1 non-negative"),
        (lambda: mixkit.Compose([]), r"mixers: expected a non-empty list"),
        (lambda: mixkit.Compose([mixkit.MixUp(num_classes=3), mixkit.CutMix(num_classes=4)]),
         r"num_classes: expected one value across mixers, got \[3, 4\]"),
    ],
)
def test_bad_hyperparameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_bad_types():
    with pytest.raises(TypeError, match=r"alpha: expected a number > 0, got str"):
        mixkit.MixUp(alpha="1")
    with pytest.raises(TypeError, match=r"inplace: expected a bool, got int"):
        mixkit.MixUp(inplace=1)
    with pytest.raises(TypeError, match=r"mixers: expected mixkit mixers or combinations \(with sample\(\) and apply_soft\(\)\), got int"):
        mixkit.Alternate([1])
    with pytest.raises(TypeError, match=r"generator: expected a torch.Generator or None, got int"):
        mixkit.MixUp(num_classes=4)(X, Y, generator=3)


@pytest.mark.parametrize("mixer", [mixkit.MixUp(num_classes=4), mixkit.ZetaMixup(num_classes=4),
                                   mixkit.CutMix(num_classes=4), mixkit.FMix(num_classes=4)], ids=repr)
def test_bool_and_complex_images_rejected(mixer):
    # integer images are mixed (tests/test_ecosystem.py); bool and complex have no meaning as pixels
    for dtype in (torch.bool, torch.complex64):
        with pytest.raises(TypeError, match=rf"inputs: expected a floating-point or integer tensor .* got {dtype}"):
            mixer(X.to(dtype), Y)


@pytest.mark.parametrize("mixer", [mixkit.CutMix(num_classes=4), mixkit.FMix(num_classes=4)], ids=repr)
@pytest.mark.parametrize("shape", [(4, 64), (4, 1, 2, 2, 2, 2)])
def test_wrong_rank_for_mask_methods(mixer, shape):
    with pytest.raises(ValueError, match=r"inputs: expected \(B, C, L\), \(B, C, H, W\) or \(B, C, D, H, W\) "
                                         rf"for {type(mixer).__name__}, got shape \({shape[0]}, "):
        mixer(torch.rand(shape), Y)


def test_rank_and_empty_batch_for_any_mixer():
    with pytest.raises(ValueError, match=r"inputs: expected \(B, \*\) with at least one dimension"):
        mixkit.MixUp(num_classes=4)(torch.rand(4), Y)
    with pytest.raises(ValueError, match=r"inputs: expected a batch of at least one sample"):
        mixkit.MixUp(num_classes=4)(torch.rand(0, 3), Y[:0])


@pytest.mark.parametrize("mixer", [mixkit.MixUp(num_classes=4), mixkit.ZetaMixup(num_classes=4),
                                   mixkit.CutMix(num_classes=4, mode="elem"), mixkit.FMix(num_classes=4)],
                         ids=repr)
def test_label_errors(mixer):
    with pytest.raises(ValueError, match=r"labels: expected 4 labels \(one per input\), got 3"):
        mixer(X, Y[:3])
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 3\], got values in \[0, 4\]"):
        mixer(X, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 3\], got values in \[-1, 2\]"):
        mixer(X, torch.tensor([0, 1, 2, -1]))
    bad = torch.full((4, 4), 0.3)
    with pytest.raises(ValueError, match=r"labels: expected probability rows summing to 1, got rows off by"):
        mixer(X, bad)
    with pytest.raises(ValueError, match=r"labels: expected probabilities with 4 columns, got 5"):
        mixer(X, torch.full((4, 5), 0.2))


def test_input_untouched_when_labels_are_bad():
    x = X.clone()
    with pytest.raises(ValueError):
        mixkit.MixUp(num_classes=4, inplace=True)(x, torch.tensor([0, 1, 2, 9]))
    assert torch.equal(x, X)


def test_missing_num_classes():
    with pytest.raises(ValueError, match=r"num_classes: expected an int when labels are class ids \(B,\), got None"):
        mixkit.MixUp()(X, Y)


def test_to_soft_labels_errors():
    with pytest.raises(ValueError, match=r"labels: expected non-negative probabilities"):
        to_soft_labels(torch.tensor([[1.5, -0.5]]))
    with pytest.raises(ValueError, match=r"labels: expected integer class ids of shape \(B,\) or float "
                                         r"probabilities of shape \(B, C\), got torch.float32 of shape \(4,\)"):
        to_soft_labels(torch.rand(4))
    with pytest.raises(TypeError, match=r"labels: expected integer class ids or float probabilities, got bool"):
        to_soft_labels(torch.tensor([True, False]), 2)
    with pytest.raises(TypeError, match=r"labels: expected a torch.Tensor, got list"):
        to_soft_labels([0, 1], 2)


def test_replayed_params_must_fit():
    m = mixkit.MixUp(num_classes=4)
    params = m.sample(torch.rand(6, 3))
    with pytest.raises(ValueError, match=r"params: expected parameters for a batch of 4, got lam of shape \(6,\)"):
        m.apply(X, Y, params)
    f = mixkit.FMix(num_classes=4)
    params = f.sample(torch.rand(4, 1, 6, 6))
    with pytest.raises(ValueError, match=r"params: expected a mask of shape \(B or 1, 8, 8\), got \(1, 6, 6\)"):
        f.apply(X, Y, params)
