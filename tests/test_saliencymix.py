"""SaliencyMix's saliency filter: its fast border path against the reference indices."""

import pytest
import torch


@pytest.mark.parametrize("shape", [(2, 1, 9), (2, 1, 7, 11), (2, 1, 5, 6, 7), (2, 1, 3, 3)])
def test_reflect_pad_fast_path_equals_the_mirrored_indices(shape):
    # _filter_axes pads with torch's reflect where the axis is longer than the radius and with
    # mirrored indices elsewhere; both are OpenCV's BORDER_REFLECT_101 where both apply
    import torch.nn.functional as F

    from mixkit.functional import saliency

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    d, r = x.ndim - 2, 2
    for k in range(d):
        if r >= x.shape[2 + k]:
            continue
        pad = [0, 0] * d
        pad[2 * (d - 1 - k)] = pad[2 * (d - 1 - k) + 1] = r
        want = x.index_select(2 + k, saliency._mirrored(x.shape[2 + k], r, "cpu"))
        assert torch.equal(F.pad(x, pad, mode="reflect"), want)
