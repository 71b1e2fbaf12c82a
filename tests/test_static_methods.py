"""SaliencyMix, GridMix, SmoothMix and ClassMix against slow references written from their papers.

Each fast, batched construction (``mixkit.functional.masks`` / ``saliency``) is compared with a
per-sample, per-element Python loop over the same drawn numbers; then the mixers are checked to
use those constructions (parameters replayed, realised lam, the right partner's pixels).
"""

import math

import numpy as np
import pytest
import torch

import mixkit
from mixkit.functional import masks as fm
from mixkit.functional.saliency import saliency_peaks, spectral_residual_saliency
from mixkit.functional.sampling import sample_beta

# ---------------------------------------------------------------------------------------------
# GridMix


def _grid_reference(lam, spatial, holes, hole_aspect, area, aspect, place):
    """One GridMix keep mask, element by element (nested Python loops)."""
    d = len(spatial)
    sides = []
    for k, n in enumerate(spatial):
        side = n * area ** (1 / d)
        if d > 1 and k == 0:
            side *= math.sqrt(aspect)
        if d > 1 and k == d - 1:
            side /= math.sqrt(aspect)
        sides.append(min(max(math.floor(side), 1), n))
    count = max(min(holes, sides[-1] // 2), 1)
    last = math.ceil(sides[-1] / count)
    cells = [last if k == d - 1 else max(math.floor(last * hole_aspect), 1) for k in range(d)]
    ratio = (1 - lam) ** (1 / d)
    keep = torch.ones(spatial, dtype=torch.bool)
    for pos in np.ndindex(*spatial):
        inside = True
        for k, n in enumerate(spatial):
            lo = math.floor((n - sides[k]) * place[k])
            hole = min(max(math.floor(cells[k] * ratio), 1), cells[k] - 1)
            off = pos[k] - lo
            inside &= 0 <= off < sides[k] and off % cells[k] < hole
        keep[pos] = not inside
    return keep


@pytest.mark.parametrize("spatial", [(40,), (24, 32), (9, 10, 12), (7, 5)], ids=["1d", "2d", "3d", "tiny"])
def test_grid_masks_match_the_element_loop(spatial):
    g = torch.Generator().manual_seed(len(spatial))
    b = 6
    lam = torch.rand(b, generator=g)
    holes = torch.randint(1, 7, (b,), generator=g).double()
    hole_aspect = 0.5 + torch.rand(b, generator=g, dtype=torch.float64)
    area = 0.3 + 0.7 * torch.rand(b, generator=g, dtype=torch.float64)
    aspect = 0.5 + 1.5 * torch.rand(b, generator=g, dtype=torch.float64)
    place = torch.rand(b, len(spatial), generator=g, dtype=torch.float64)
    fast = fm.grid_keep_masks(lam, spatial, holes=holes, hole_aspect=hole_aspect, area=area, aspect=aspect,
                              place=place)
    for i in range(b):
        ref = _grid_reference(float(lam[i]), spatial, int(holes[i]), float(hole_aspect[i]), float(area[i]),
                              float(aspect[i]), place[i].tolist())
        assert torch.equal(fast[i], ref), i


def test_gridmix_pastes_about_one_minus_lam_of_the_crop_in_a_regular_grid():
    # lam drawn from the paper's Beta; with the whole image as the crop, the pasted share is close
    # to 1 - lam (holes are floored to whole pixels) and the holes repeat with the cell's period
    x = torch.rand(64, 1, 64, 64)
    grid = mixkit.GridMix(alpha=1.0, holes=4, area=1.0, aspect=1.0, mode="elem")
    params = grid.sample(x, generator=torch.Generator().manual_seed(0))
    keep = params.mask.bool()
    pasted = 1 - params.lam
    assert bool((params.lam > 0).all() and (params.lam < 1).all())
    torch.testing.assert_close(params.lam, keep.float().mean((1, 2)))
    # every sample: 4 holes across, each row of holes a shifted copy (period 16)
    assert torch.equal(keep[:, :, :16], keep[:, :, 16:32]) and torch.equal(keep[:, :16], keep[:, 16:32])
    ideal = 1 - torch.distributions.Beta(1.0, 1.0).mean  # 0.5 on average
    assert abs(float(pasted.mean()) - float(ideal)) < 0.15


# ---------------------------------------------------------------------------------------------
# SmoothMix


@pytest.mark.parametrize("spatial", [(30,), (12, 16), (6, 7, 8)], ids=["1d", "2d", "3d"])
def test_gaussian_masks_match_the_formula(spatial):
    g = torch.Generator().manual_seed(1)
    b = 4
    centre = torch.stack([torch.randint(0, n, (b,), generator=g) for n in spatial], 1).double()
    sigma = 0.25 + 0.25 * torch.rand(b, generator=g, dtype=torch.float64)
    fast = fm.gaussian_keep_masks(centre, sigma, spatial, dtype=torch.float64)
    for i in range(b):
        for pos in np.ndindex(*spatial):
            e = sum((pos[k] - float(centre[i, k])) ** 2 / (2 * (float(sigma[i]) * n) ** 2)
                    for k, n in enumerate(spatial))
            assert abs(float(fast[i][pos]) - (1 - math.exp(-e))) < 1e-12


def test_smoothmix_blends_by_the_gaussian_and_lam_is_the_kept_share():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(8, 3, 20, 24, generator=g), torch.randint(0, 5, (8,), generator=g)
    smooth = mixkit.SmoothMix(num_classes=5, mode="elem")
    params = smooth.sample(x, generator=torch.Generator().manual_seed(4))
    mixed, soft = smooth.apply(x, y, params)
    m = params.mask.unsqueeze(1)
    torch.testing.assert_close(mixed, m * x + (1 - m) * x[params.index])
    torch.testing.assert_close(params.lam, params.mask.mean((1, 2)))
    # the partner's weight is 1 at the centre: exactly one element per sample has keep 0
    assert torch.equal((params.mask == 0).flatten(1).sum(1), torch.ones(8, dtype=torch.long))
    onehot = torch.nn.functional.one_hot(y, 5).float()
    lam = params.lam[:, None]
    torch.testing.assert_close(soft, lam * onehot + (1 - lam) * onehot[params.index])


# ---------------------------------------------------------------------------------------------
# SaliencyMix


def _reflect_filter(a, taps):
    """Separable filtering of a 2-D array with mirrored borders (numpy, loops over taps)."""
    r = len(taps) // 2
    for axis in range(a.ndim):
        padded = np.pad(a, [(r, r) if k == axis else (0, 0) for k in range(a.ndim)], mode="reflect")
        out = np.zeros_like(a)
        for t, w in enumerate(taps):
            out += w * np.take(padded, range(t, t + a.shape[axis]), axis=axis)
        a = out
    return a


def _saliency_reference(image):
    """Hou & Zhang's spectral residual on one (C, H, W) image, in numpy (resampling by torch)."""
    weights = torch.tensor([0.114, 0.587, 0.299]).view(3, 1, 1) if image.shape[0] == 3 else None
    gray = ((image.float() * weights).sum(0) if weights is not None else image.float().mean(0))[None, None]
    small = torch.nn.functional.interpolate(gray, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    f = np.fft.fft2(small.double().numpy())
    log_amp = np.log(np.maximum(np.abs(f), 1e-30))
    residual = log_amp - _reflect_filter(log_amp, [1 / 3] * 3)
    s = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(f))))
    taps = np.exp(-np.arange(-2, 3) ** 2 / (2 * 8.0 ** 2))
    s = _reflect_filter(s, taps / taps.sum()) ** 2
    s = torch.from_numpy(s / s.max()).float()[None, None]
    return torch.nn.functional.interpolate(s, size=image.shape[1:], mode="bilinear", align_corners=False)[0, 0]


def test_spectral_residual_matches_the_numpy_reference():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 3, 40, 48, generator=g)
    x[:, :, 10:18, 30:40] += 2.0  # something salient
    fast = spectral_residual_saliency(x)
    for i in range(3):
        torch.testing.assert_close(fast[i], _saliency_reference(x[i]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("spatial", [(96,), (48, 40), (24, 20, 28)], ids=["1d", "2d", "3d"])
def test_saliency_peak_finds_a_lone_object(spatial):
    # a flat background with one small bright blob: the peak lies on (or next to) the blob
    g = torch.Generator().manual_seed(6)
    b = 4
    x = 0.05 * torch.rand(b, 2, *spatial, generator=g)
    where = []
    for i in range(b):
        c = [int(torch.randint(4, n - 4, (1,), generator=g)) for n in spatial]
        region = tuple(slice(v - 2, v + 2) for v in c)
        x[(i, slice(None), *region)] += 1.0
        where.append(c)
    peaks = saliency_peaks(x)
    for i in range(b):
        assert max(abs(int(peaks[i, k]) - where[i][k]) for k in range(len(spatial))) <= 4, (peaks[i], where[i])


def test_centred_boxes_match_the_papers_cut():
    spatial = (32, 28)
    lam = torch.tensor([0.3, 0.9, 0.0, 1.0])
    centre = torch.tensor([[0, 0], [16, 14], [31, 27], [5, 5]])
    boxes = fm.centred_boxes(lam, centre, spatial)
    for i in range(4):
        for k, n in enumerate(spatial):
            cut = int(n * math.sqrt(1 - float(lam[i])))  # the paper's int(W * sqrt(1 - lam))
            c = int(centre[i, k])
            assert boxes[i, k].tolist() == [min(max(c - cut // 2, 0), n), min(max(c + cut // 2, 0), n)]


def test_saliencymix_boxes_sit_on_the_partners_peak_and_paste_from_it():
    g = torch.Generator().manual_seed(7)
    x = 0.05 * torch.rand(6, 3, 32, 32, generator=g)
    for i in range(6):
        x[i, :, 4 * i:4 * i + 4, 30 - 4 * i:32 - 4 * i] += 1.0
    y = torch.arange(6)
    for mode in ("batch", "elem"):
        sal = mixkit.SaliencyMix(num_classes=6, mode=mode)
        params = sal.sample(x, generator=torch.Generator().manual_seed(8))
        count = 1 if mode == "batch" else 6
        peaks = saliency_peaks(x[params.index[:count]])
        # the same draws again: lam first (p = 1 draws nothing before it), then the pairing
        lam = sample_beta(1.0, size=count, generator=torch.Generator().manual_seed(8))
        assert torch.equal(params.boxes, fm.centred_boxes(lam, peaks, (32, 32)))
        for i in range(count):
            lo, hi = params.boxes[i, :, 0], params.boxes[i, :, 1]
            inside = [(lo[k] <= peaks[i, k]) & (peaks[i, k] <= hi[k]) for k in range(2)]
            empty = bool(((hi - lo) == 0).any())
            assert empty or all(bool(v) for v in inside), (params.boxes[i], peaks[i])
        mixed, soft = sal.apply(x, y, params)
        keep = fm.box_keep_mask(params.boxes, (32, 32)).unsqueeze(1)
        torch.testing.assert_close(mixed, keep * x + (1 - keep) * x[params.index])
        torch.testing.assert_close(params.lam, keep.mean((1, 2, 3)).expand(6))


def test_saliencymix_reads_the_images_not_only_their_shape():
    x = 0.05 * torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))  # textured, not blank
    x[0, :, 2:6, 2:6] = 1.0
    x[1, :, 26:30, 26:30] = 1.0
    sal = mixkit.SaliencyMix(num_classes=2, mode="elem", pairing="flip", alpha=1.0)
    params = sal.sample(x, generator=torch.Generator().manual_seed(0))
    centres = params.boxes.float().mean(-1)  # box centres (where not clipped)
    assert bool((centres[0] > 16).all()) and bool((centres[1] < 16).all())  # the partner's blob


# ---------------------------------------------------------------------------------------------
# ClassMix


def _class_reference(maps, num_classes, scores, ignore_index=None):
    out = torch.zeros(maps.shape, dtype=torch.bool)
    for b in range(maps.shape[0]):
        present = sorted({int(v) for v in maps[b].flatten().tolist()} - {ignore_index})
        ordered = sorted(present, key=lambda c: float(scores[b, c]))
        chosen = set(ordered[:math.ceil(len(present) / 2)])
        for pos in np.ndindex(*maps.shape[1:]):
            out[(b, *pos)] = int(maps[(b, *pos)]) in chosen
    return out


@pytest.mark.parametrize("ignore", [None, 255])
def test_class_masks_match_the_set_loop(ignore):
    g = torch.Generator().manual_seed(9)
    k = 7
    maps = torch.randint(0, k, (5, 9, 11), generator=g)
    maps[1] = torch.randint(0, 2, (9, 11), generator=g)     # two classes: one is chosen
    maps[2] = 3                                            # one class: it is chosen
    if ignore is not None:
        maps[0, :3] = ignore
        maps[3] = ignore                                   # nothing labelled: nothing chosen
    scores = torch.rand(5, k, generator=g)
    fast = fm.class_paste_masks(maps, k, scores, ignore)
    assert torch.equal(fast, _class_reference(maps, k, scores, ignore))
    if ignore is not None:
        assert not bool(fast[3].any())


def test_classmix_pastes_whole_classes_of_the_partner_with_their_labels():
    g = torch.Generator().manual_seed(10)
    k, b = 6, 8
    seg = torch.randint(0, k, (b, 4, 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    x = torch.rand(b, 3, 16, 16, generator=g)
    labels = torch.randint(0, 3, (b,), generator=g)
    cm = mixkit.ClassMix(num_classes=k)
    params = cm.sample(x, generator=torch.Generator().manual_seed(11), masks=seg)
    mixed, soft, seg_out = cm.apply(x, labels, params, masks=seg)
    for i in range(b):
        j = int(params.index[i])
        pasted = ~params.mask[i].bool()
        present = set(seg[j].unique().tolist())
        taken = set(seg[j][pasted].unique().tolist())
        if i == j:
            assert taken == set()  # one's own partner: nothing pasted (the mask says keep)
            continue
        assert len(taken) == math.ceil(len(present) / 2) and taken <= present
        assert torch.equal(pasted, torch.isin(seg[j], torch.tensor(sorted(taken))))  # whole classes
        assert torch.equal(mixed[i][:, pasted], x[j][:, pasted]) and torch.equal(mixed[i][:, ~pasted], x[i][:, ~pasted])
        assert torch.equal(seg_out[i][pasted], seg[j][pasted]) and torch.equal(seg_out[i][~pasted], seg[i][~pasted])
    onehot = torch.nn.functional.one_hot(labels, k).float()
    lam = params.lam[:, None]
    torch.testing.assert_close(soft, lam * onehot + (1 - lam) * onehot[params.index])


def test_classmix_probability_maps_and_segmentation_only():
    g = torch.Generator().manual_seed(12)
    seg = torch.randint(0, 4, (4, 8, 8), generator=g)
    probs = torch.nn.functional.one_hot(seg, 4).movedim(-1, 1).float()
    x = torch.rand(4, 1, 8, 8, generator=g)
    cm = mixkit.ClassMix()   # probability maps carry their classes: no num_classes needed
    a = cm(x, None, masks=probs, generator=torch.Generator().manual_seed(0))
    b = mixkit.ClassMix(num_classes=4)(x, None, masks=seg, generator=torch.Generator().manual_seed(0))
    assert a[1] is None and b[1] is None
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[2], torch.nn.functional.one_hot(b[2], 4).movedim(-1, 1).float())


def test_classmix_errors():
    x, seg = torch.rand(2, 1, 8, 8), torch.randint(0, 3, (2, 8, 8))
    with pytest.raises(ValueError, match=r"masks: expected the segmentation of the batch for ClassMix"):
        mixkit.ClassMix(num_classes=3)(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"masks: expected the segmentation .* got None"):
        mixkit.ClassMix(num_classes=3).sample(x)
    with pytest.raises(ValueError, match="num_classes: expected the number of classes for ClassMix"):
        mixkit.ClassMix()(x, None, masks=seg)
    with pytest.raises(ValueError, match=r"masks: expected class ids in \[0, 2\], got values in \[1, 9\]"):
        mixkit.ClassMix(num_classes=3)(x, None, masks=torch.where(seg == 0, 9, seg))
    with pytest.raises(ValueError, match=r"masks: expected class maps \(2, 8, 8\)"):
        mixkit.ClassMix(num_classes=3)(x, None, masks=seg[:, :7])
    with pytest.raises(TypeError, match="ignore_index: expected None or an int, got str"):
        mixkit.ClassMix(ignore_index="255")


def test_classmix_under_autograd_and_in_a_combination():
    g = torch.Generator().manual_seed(13)
    seg = torch.randint(0, 5, (6, 12, 12), generator=g)
    x = torch.rand(6, 3, 12, 12, generator=g, requires_grad=True)
    choice = mixkit.RandomChoice([mixkit.ClassMix(), mixkit.CutMix()], p=[1.0, 0.0], num_classes=5)
    mixed, soft, seg_out = choice(x, torch.randint(0, 5, (6,), generator=g), masks=seg,
                                  generator=torch.Generator().manual_seed(1))
    (mixed * torch.arange(12.0)).sum().backward()
    # each input pixel's gradient is the number of outputs that copied it, times its column
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert seg_out.dtype == torch.int64


# ---------------------------------------------------------------------------------------------
# Argument checks


@pytest.mark.parametrize("make, message", [
    (lambda: mixkit.GridMix(holes=0), r"holes: expected an integer or a \(low, high\) range of integers >= 1, got 0"),
    (lambda: mixkit.GridMix(holes=(4, 2)), r"holes: .* got \(4, 2\)"),
    (lambda: mixkit.GridMix(area=1.5), r"area: expected a number or a \(low, high\) range of numbers > 0 and <= 1.0"),
    (lambda: mixkit.GridMix(aspect=(0, 1)), r"aspect: .* numbers > 0, got \(0, 1\)"),
    (lambda: mixkit.SmoothMix(sigma=-0.1), r"sigma: .* got -0.1"),
    (lambda: mixkit.SaliencyMix(alpha=0), r"alpha: expected a finite number > 0, got 0"),
    (lambda: mixkit.SaliencyMix(mode="pixel"), r"mode: expected 'batch' or 'elem', got 'pixel'"),
])
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("spatial", [(1, 1, 1), (2, 8, 8), (1,), (2,), (1, 5)])
def test_saliencymix_on_axes_shorter_than_its_filters(spatial):
    # the saliency's 3- and 5-tap filters mirror the borders; an axis of 1 or 2 elements has too
    # few to mirror by F.pad, and used to fail with a padding error
    from mixkit.functional import saliency

    x = torch.rand(3, 2, *spatial, generator=torch.Generator().manual_seed(0))
    mixed, soft = mixkit.SaliencyMix(num_classes=4, mode="elem")(x, torch.tensor([0, 1, 2]))
    assert mixed.shape == x.shape and torch.isfinite(mixed).all()
    torch.testing.assert_close(soft.sum(1), torch.ones(3))
    for n in range(3, 9):  # where F.pad can mirror, the indices are its own
        row = torch.arange(float(n)).view(1, 1, n)
        assert torch.equal(row.index_select(2, saliency._mirrored(n, 2, "cpu")),
                           torch.nn.functional.pad(row, [2, 2], mode="reflect"))
