"""Every user error gives a clear message naming what was expected and what came."""

import inspect

import grid
import pytest
import torch

import mixkit
from mixkit import registry
from mixkit.functional import to_soft_labels

X = torch.rand(4, 3, 8, 8)
Y = torch.tensor([0, 1, 2, 3])


# The shared options, checked the same way by every registered input mixer that takes them.
BAD_OPTIONS = [
    ("alpha", 0.0, r"alpha: expected a finite number > 0, got 0.0"),
    ("alpha", -1, r"alpha: expected a finite number > 0, got -1"),
    ("alpha", float("inf"), r"alpha: expected a finite number > 0, got inf"),
    ("gamma", 0, r"gamma: expected a finite number > 0, got 0"),
    ("decay_power", -2.0, r"decay_power: expected a finite number > 0, got -2.0"),
    ("p", 1.5, r"p: expected a probability in \[0, 1\], got 1.5"),
    ("p", -0.1, r"p: expected a probability in \[0, 1\], got -0.1"),
    ("mode", "pair", r"mode: expected 'batch' or 'elem', got 'pair'"),
    ("num_classes", 0, r"num_classes: expected None or an integer >= 1, got 0"),
    ("pairing", "shuffle", r"pairing: expected one of 'permutation', 'roll', 'flip', got 'shuffle'"),
    ("label_smoothing", 1.0, r"label_smoothing: expected a number in \[0, 1\), got 1.0"),
]
OPTION_CASES = [pytest.param(m.cls, option, value, match, id=f"{m.cls.__name__}-{option}={value}")
                for m in registry.methods("input") if m.examples
                for option, value, match in BAD_OPTIONS
                if option in inspect.signature(m.cls.__init__).parameters]


@pytest.mark.parametrize("cls, option, value, match", OPTION_CASES)
def test_bad_shared_options(cls, option, value, match):
    with pytest.raises(ValueError, match=match):
        cls(**{option: value})


def test_bad_method_options():
    with pytest.raises(ValueError, match=r"n_mix: expected None or an integer >= 1, got 0"):
        mixkit.ZetaMixup(n_mix=0)
    with pytest.raises(ValueError, match=r"max_soft: expected a number in \[0, 0.5\], got 0.7"):
        mixkit.FMix(max_soft=0.7)
    with pytest.raises(ValueError, match=r"spectrum: expected 'paper' or 'official'"):
        mixkit.FMix(spectrum="stripes")
    with pytest.raises(ValueError, match=r"p: expected 1 non-negative"):
        mixkit.RandomChoice([mixkit.MixUp()], p=[0.5])
    with pytest.raises(ValueError, match=r"mixers: expected a non-empty list"):
        mixkit.Compose([])
    with pytest.raises(ValueError, match=r"num_classes: expected one value across mixers, got \[3, 4\]"):
        mixkit.Compose([mixkit.MixUp(num_classes=3), mixkit.CutMix(num_classes=4)])


def test_bad_types():
    with pytest.raises(TypeError, match=r"alpha: expected a number > 0, got str"):
        mixkit.MixUp(alpha="1")
    with pytest.raises(TypeError, match=r"inplace: expected a bool, got int"):
        mixkit.MixUp(inplace=1)
    with pytest.raises(TypeError, match=r"mixers: expected mixkit mixers or combinations \(with sample\(\) and apply_soft\(\)\), got int"):
        mixkit.Alternate([1])
    with pytest.raises(TypeError, match=r"generator: expected a torch.Generator or None, got int"):
        mixkit.MixUp(num_classes=4)(X, Y, generator=3)


@pytest.mark.parametrize("mixer", grid.one_each(4), ids=repr)
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


@pytest.mark.parametrize("mixer", grid.one_each(4), ids=repr)
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
    with pytest.raises(ValueError, match=r"params: expected inputs of the batch size and spatial size the "
                                         r"parameters were drawn for, \(4, 1, 6, 6\), got \(4, 3, 8, 8\)"):
        f.apply(X, Y, params)
    params.shape = None  # parameters made by hand: the mask's own shape is checked
    with pytest.raises(ValueError, match=r"params: expected mask as a float tensor of shape \(4, 8, 8\), got "
                                         r"torch.float32 of shape \(1, 6, 6\)"):
        f.apply(X, Y, params)
