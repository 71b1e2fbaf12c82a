"""ResizeMix: the partner shrunk whole by tau ~ U(scale) and pasted; lam is the kept share.

Its resampling is checked against a slow per-sample reference in tests/test_training_conditions.py
(values and gradients, 1-D/2-D/3-D) and its dense targets in tests/test_dense.py.
"""

import math

import pytest
import torch

import mixkit


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("spatial", [(64,), (32, 24), (12, 10, 8)], ids=["1d", "2d", "3d"])
def test_boxes_follow_the_scale_rate_and_lam_is_the_kept_share(mode, spatial):
    lo, hi = 0.2, 0.7
    mixer = mixkit.ResizeMix(scale=(lo, hi), num_classes=4, mode=mode)
    x = torch.rand(16, 2, *spatial)
    taus = []
    for seed in range(30):
        params = mixer.sample(x, generator=torch.Generator().manual_seed(seed))
        boxes = params.boxes
        extent = (boxes[..., 1] - boxes[..., 0]).double()                      # (B|1, d)
        assert bool((boxes[..., 0] >= 0).all() and (boxes[..., 1] <= torch.tensor(spatial)).all())
        size = torch.tensor(spatial, dtype=torch.float64)
        tau = extent / size                                                     # floor(S tau) / S
        assert bool((tau <= hi + 1e-9).all() and (tau >= lo - 1 / size - 1e-9).all())
        assert bool((tau.max(1).values - tau.min(1).values <= 1 / size.min() + 1e-9).all())  # one tau per box
        kept = 1 - extent.prod(1) / math.prod(spatial)
        torch.testing.assert_close(params.lam.double(), kept.expand(16), atol=1e-6, rtol=0)
        taus.append(tau[:, -1])
    taus = torch.cat(taus)
    # uniform on [lo, hi], floored to whole pixels (which takes half a pixel off on average)
    assert abs(float(taus.mean()) - ((lo + hi) / 2 - 0.5 / spatial[-1])) < 0.04


def test_integer_images_nearest_is_exact_and_linear_rounds():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 20, 20), generator=g, dtype=torch.uint8)
    y = torch.arange(6)
    for resample in ("nearest", "linear"):
        mixer = mixkit.ResizeMix(num_classes=6, mode="elem", resample=resample)
        params = mixer.sample(x, generator=torch.Generator().manual_seed(1))
        out, _ = mixer.apply(x, y, params)
        ref, _ = mixer.apply(x.double(), y, params)
        assert out.dtype == torch.uint8
        if resample == "nearest":
            assert torch.equal(out.double(), ref)
        else:
            assert float((out.double() - ref).abs().max()) <= 0.5 + 1e-6


def test_p_and_errors():
    x = torch.rand(8, 3, 16, 16)
    params = mixkit.ResizeMix(p=0.0, num_classes=3).sample(x)
    assert torch.equal(params.lam, torch.ones(8))
    out, _ = mixkit.ResizeMix(p=0.0, num_classes=3).apply(x, torch.zeros(8, dtype=torch.long), params)
    assert torch.equal(out, x)
    with pytest.raises(ValueError, match=r"scale: expected \(low, high\) with 0 < low <= high <= 1, got \(0.5, 0.2\)"):
        mixkit.ResizeMix(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match=r"resample: expected 'linear' or 'nearest', got 'cubic'"):
        mixkit.ResizeMix(resample="cubic")
    with pytest.raises(ValueError, match=r"inputs: expected \(B, C, L\), \(B, C, H, W\) or \(B, C, D, H, W\)"):
        mixkit.ResizeMix(num_classes=3)(torch.rand(4, 10), torch.zeros(4, dtype=torch.long))
    assert repr(mixkit.ResizeMix(scale=(0.2, 0.5), mode="elem")) == "ResizeMix(scale=(0.2, 0.5), mode='elem')"
