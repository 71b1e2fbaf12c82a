"""Detection mixers (issue 25): Mosaic, MixUp, CutMix and CopyPaste on boxes, labels, instance
masks, key points and extra per-object fields.

Every input object is a rectangle of mask pixels with its tight box, ``labels = ids % 7`` and two
key points on its first and last pixel, so an output object can be traced to its source (its
``ids``) and every field checked against it. The properties (boxes on the canvas, the box of an
object is the tight box of its mask, fields aligned, visible key points on their own object's
mask) run for every method and box format; a slow per-pixel reference of each method, run on the
parameters the fast one drew, checks the rest: the same image, and the same objects kept (so no
object visible above the threshold is left without a box), with the same masks and boxes."""

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors as tv

from mixkit.detection import CopyPaste, CutMix, MixUp, Mosaic
from mixkit.detection.targets import from_xyxy, to_xyxy

FORMATS = ["XYXY", "XYWH", "CXCYWH"]
MIXERS = {
    "mosaic": lambda: Mosaic(output_size=(24, 30)),
    "mixup": lambda: MixUp(alpha=1.0),
    "cutmix": lambda: CutMix(alpha=1.0, min_visible=0.3),
    "copypaste": lambda: CopyPaste(p_object=0.7, min_visible=0.5),
    "copypaste-jitter": lambda: CopyPaste(p_object=0.7, scale=(0.3, 2.0), min_visible=0.5),
}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _target(i, n, h, w, fmt, g, masks=True):
    m = torch.zeros(n, h, w, dtype=torch.bool)
    boxes = torch.zeros(n, 4)
    for k in range(n):
        bh, bw = torch.randint(2, h // 2, (1,), generator=g).item(), torch.randint(2, w // 2, (1,), generator=g).item()
        y0, x0 = torch.randint(0, h - bh + 1, (1,), generator=g).item(), torch.randint(0, w - bw + 1, (1,), generator=g).item()
        m[k, y0:y0 + bh, x0:x0 + bw] = True
        boxes[k] = torch.tensor([x0, y0, x0 + bw, y0 + bh], dtype=torch.float)
    ids = torch.arange(n, dtype=torch.int64) + 100 * i
    kp = torch.stack([boxes[:, :2] + 0.5, boxes[:, 2:] - 0.5], dim=1)
    t = {"boxes": tv.BoundingBoxes(from_xyxy(boxes, fmt), format=fmt, canvas_size=(h, w)),
         "labels": ids % 7, "ids": ids, "keypoints": tv.KeyPoints(kp, canvas_size=(h, w)), "image_id": i}
    if masks:
        t["masks"] = tv.Mask(m)
    return t


def _batch(fmt="XYXY", b=4, h=16, w=20, seed=0, masks=True, counts=None, dtype=torch.float32):
    g = _gen(seed)
    counts = counts or [(i % 3) + 1 for i in range(b)]
    imgs = torch.rand(b, 3, h, w, generator=g)
    if dtype == torch.uint8:
        imgs = (imgs * 255).to(torch.uint8)
    return imgs, [_target(i, n, h, w, fmt, g, masks) for i, n in enumerate(counts)]


def _tight(mask):
    ys, xs = mask.nonzero(as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def _source(targets):
    """``id -> (image, object index)`` of the inputs."""
    return {int(t["ids"][k]): (i, k) for i, t in enumerate(targets) for k in range(len(t["ids"]))}


# ---------------------------------------------------------------------------------------------
# properties


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(MIXERS))
def test_output_objects_are_consistent(name, fmt):
    images, targets = _batch(fmt)
    out, res = MIXERS[name]()(images, targets, generator=_gen(3))
    assert len(res) == len(targets) and out.shape[0] == len(targets)
    h, w = out.shape[-2:]
    for t in res:
        boxes = t["boxes"]
        assert boxes.format.name == fmt and tuple(boxes.canvas_size) == (h, w)
        n = len(boxes)
        assert all(len(t[k]) == n for k in ("labels", "ids", "masks", "keypoints", "keypoints_visible"))
        assert torch.equal(t["labels"], t["ids"] % 7)
        xyxy = to_xyxy(boxes.as_subclass(torch.Tensor), fmt)
        assert (xyxy[:, :2] >= -1e-5).all() and (xyxy[:, 2] <= w + 1e-4).all() and (xyxy[:, 3] <= h + 1e-4).all()
        assert tuple(t["masks"].shape) == (n, h, w)
        for k in range(n):
            assert t["masks"][k].any()
            assert torch.allclose(xyxy[k], torch.tensor(_tight(t["masks"][k]), dtype=torch.float), atol=1e-4)
            for (x, y), seen in zip(t["keypoints"][k].tolist(), t["keypoints_visible"][k].tolist(), strict=True):
                if seen:
                    assert t["masks"][k, int(y), int(x)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_mosaic_with_scale_jitter_keeps_boxes_on_their_resized_masks(fmt):
    images, targets = _batch(fmt, h=20, w=24)
    mixer = Mosaic(size=(16, 16), output_size=(20, 28), scale=(0.5, 1.5), fill=0.0, min_area=2.0)
    out, res = mixer(images, targets, generator=_gen(4))
    assert out.shape[-2:] == (20, 28)
    for t in res:
        xyxy = to_xyxy(t["boxes"].as_subclass(torch.Tensor), fmt)
        assert all(len(t[k]) == len(xyxy) for k in ("labels", "ids", "masks", "keypoints"))
        assert torch.equal(t["labels"], t["ids"] % 7)
        for k in range(len(xyxy)):
            box = _tight(t["masks"][k])
            assert xyxy[k].tolist() == pytest.approx(box)
            assert (box[2] - box[0]) * (box[3] - box[1]) >= 2.0


def test_partners_are_other_images():
    images, targets = _batch()
    for mixer in (MixUp(), CutMix(), CopyPaste()):
        for seed in range(5):
            index = mixer.sample(images, targets, generator=_gen(seed)).index
            assert all(j != i for i, j in enumerate(index))


def test_mixup_weights_are_lam_and_one_minus_lam():
    images, targets = _batch()
    mixer = MixUp(alpha=2.0)
    params = mixer.sample(images, targets, generator=_gen(1))
    _, res = mixer.apply(images, targets, params)
    for i, t in enumerate(res):
        j, lam = params.index[i], params.lam[i]
        n_i = len(targets[i]["ids"])
        assert torch.equal(t["ids"], torch.cat([targets[i]["ids"], targets[j]["ids"]]))
        assert torch.allclose(t["weights"], torch.tensor([lam] * n_i + [1 - lam] * (len(t["ids"]) - n_i)))


# ---------------------------------------------------------------------------------------------
# slow references: per pixel and per object, from the parameters the fast mixer drew


def _ref_objects(targets, plans, h, w, min_area, min_visible=0.0):
    """Objects from ``plans``: ``(image, dy, dx, region)`` per source image; an object keeps the
    pixels of its shifted mask inside ``region(y, x)``, and survives when it keeps at least
    ``min_visible`` of its pixels and its tight box is at least ``min_area``."""
    kept = []
    for i, dy, dx, region in plans:
        t = targets[i]
        for k in range(len(t["ids"])):
            src = t["masks"][k]
            m = torch.zeros(h, w, dtype=torch.bool)
            total = 0
            for y, x in src.nonzero().tolist():
                total += 1
                if 0 <= y + dy < h and 0 <= x + dx < w and region(y + dy, x + dx):
                    m[y + dy, x + dx] = True
            if not m.any() or m.sum().item() < max(min_visible * total, 1e-9):
                continue
            box = _tight(m)
            if (box[2] - box[0]) * (box[3] - box[1]) >= min_area:
                kept.append((int(t["ids"][k]), m, box))
    return kept


def _ref_image(h, w, pick, c, fill, dtype):
    out = torch.full((c, h, w), float(fill), dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            v = pick(y, x)
            if v is not None:
                out[:, y, x] = v
    return out


def _ref_mosaic(mixer, images, targets, params):
    h, w = images.shape[-2:]
    oh, ow = mixer.output_size
    oy, ox = (2 * h - oh) // 2, (2 * w - ow) // 2
    outs, objs = [], []
    for tiles, (xc, yc) in zip(params.tiles, params.centres, strict=True):
        corners = [(yc - h, xc - w), (yc - h, xc), (yc, xc - w), (yc, xc)]  # top-left of each tile
        plans, owners = [], {}
        for j, (ty, tx) in zip(tiles, corners, strict=True):
            plans.append((j, ty - oy, tx - ox, lambda y, x: True))
            for y in range(max(ty - oy, 0), min(ty - oy + h, oh)):
                for x in range(max(tx - ox, 0), min(tx - ox + w, ow)):
                    owners[(y, x)] = (j, y - (ty - oy), x - (tx - ox))

        def pick(y, x, owners=owners):
            if (y, x) not in owners:
                return None
            j, sy, sx = owners[(y, x)]
            return images[j][:, sy, sx].double()

        outs.append(_ref_image(oh, ow, pick, images.shape[1], mixer.canvas_fill(images.dtype), images.dtype))
        objs.append(_ref_objects(targets, plans, oh, ow, mixer.min_area))
    return outs, objs


def _ref_cutmix(mixer, images, targets, params):
    h, w = images.shape[-2:]
    outs, objs = [], []
    for i, (j, (x1, y1, x2, y2)) in enumerate(zip(params.index, params.boxes, strict=True)):
        def inside(y, x, x1=x1, y1=y1, x2=x2, y2=y2):
            return x1 <= x < x2 and y1 <= y < y2

        def pick(y, x, i=i, j=j, inside=inside):
            return images[j if inside(y, x) else i][:, y, x].double()

        outs.append(_ref_image(h, w, pick, images.shape[1], 0, images.dtype))
        plans = [(i, 0, 0, lambda y, x, f=inside: not f(y, x)), (j, 0, 0, inside)]
        objs.append(_ref_objects(targets, plans, h, w, mixer.min_area, mixer.min_visible))
    return outs, objs


def _ref_copypaste(mixer, images, targets, params):
    """Per pixel: output pixel (y, x) takes the partner's pixel (resized by ``sizes[i]`` and moved
    by ``offsets[i]`` under scale jitter) where a pasted mask is set. A jittered mask pixel is the
    source pixel ``(y * H_j // h_s, x * W_j // w_s)`` (nearest, in exact integer arithmetic); the
    resized partner image is ``F.interpolate``'s bilinear one."""
    h, w = images.shape[-2:]
    outs, objs = [], []
    sizes = params.sizes or [tuple(images.shape[-2:])] * len(params.index)
    offsets = params.offsets or [(0, 0)] * len(params.index)
    for i, (j, chosen, (sh, sw), (dy, dx)) in enumerate(zip(params.index, params.chosen, sizes, offsets,
                                                             strict=True)):
        hj, wj = images[j].shape[-2:]
        partner = F.interpolate(images[j][None].double(), size=(sh, sw), mode="bilinear", align_corners=False)[0]
        if images.dtype == torch.uint8:
            partner = partner.round().clamp(0, 255)
        moved = {}
        for k in chosen:
            m = torch.zeros(h, w, dtype=torch.bool)
            for y in range(max(dy, 0), min(dy + sh, h)):
                for x in range(max(dx, 0), min(dx + sw, w)):
                    m[y, x] = targets[j]["masks"][k][(y - dy) * hj // sh, (x - dx) * wj // sw]
            moved[k] = m
        pasted = torch.zeros(h, w, dtype=torch.bool)
        for m in moved.values():
            pasted |= m

        def pick(y, x, i=i, pasted=pasted, partner=partner, dy=dy, dx=dx):
            return partner[:, y - dy, x - dx] if pasted[y, x] else images[i][:, y, x].double()

        outs.append(_ref_image(h, w, pick, images.shape[1], 0, images.dtype))
        own = _ref_objects(targets, [(i, 0, 0, lambda y, x, p=pasted: not p[y, x])], h, w, mixer.min_area,
                           mixer.min_visible)
        others = []
        for k in chosen:
            m = moved[k]
            if m.any():
                box = _tight(m)
                if (box[2] - box[0]) * (box[3] - box[1]) >= mixer.min_area:
                    others.append((int(targets[j]["ids"][k]), m, box))
        objs.append(own + others)
    return outs, objs


def _ref_mixup(mixer, images, targets, params):
    outs, objs = [], []
    for i, (j, lam) in enumerate(zip(params.index, params.lam, strict=True)):
        outs.append(images[i].double() * lam + images[j].double() * (1 - lam))
        objs.append([(int(t["ids"][k]), t["masks"][k], _tight(t["masks"][k]))
                     for t in (targets[i], targets[j]) for k in range(len(t["ids"]))])
    return outs, objs


REFERENCES = {"mosaic": _ref_mosaic, "mixup": _ref_mixup, "cutmix": _ref_cutmix, "copypaste": _ref_copypaste,
              "copypaste-jitter": _ref_copypaste}


@pytest.mark.parametrize("name", list(MIXERS))
def test_fast_equals_the_slow_reference(name):
    images, targets = _batch("XYWH", b=4, h=12, w=14, seed=5, counts=[3, 2, 4, 3])
    mixer = MIXERS[name]()
    for seed in range(4):
        params = mixer.sample(images, targets, generator=_gen(seed))
        out, res = mixer.apply(images, targets, params)
        ref_images, ref_objs = REFERENCES[name](mixer, images, targets, params)
        for i, (o, r, t, objs) in enumerate(zip(out, ref_images, res, ref_objs, strict=True)):
            assert torch.allclose(o.double(), r, atol=1e-5)
            assert t["ids"].tolist() == [oid for oid, _, _ in objs]
            xyxy = to_xyxy(t["boxes"].as_subclass(torch.Tensor), "XYWH")
            for k, (_, m, box) in enumerate(objs):
                assert torch.equal(t["masks"][k], m)
                assert xyxy[k].tolist() == pytest.approx(box)
                oid = t["ids"][k].item()
                if getattr(params, "sizes", None) is not None and oid // 100 == params.index[i]:
                    # a pasted, resized object's key points move with it, visible iff on the image
                    (sh, sw), (dy, dx) = params.sizes[i], params.offsets[i]
                    src_t = targets[oid // 100]
                    src = src_t["keypoints"][list(src_t["ids"]).index(oid)].as_subclass(torch.Tensor)
                    hj, wj = images.shape[-2:]
                    want = src * torch.tensor([sw / wj, sh / hj]) + torch.tensor([dx, dy])
                    assert torch.allclose(t["keypoints"][k].as_subclass(torch.Tensor), want, atol=1e-5)
                    on = [(0 <= x < m.shape[1] and 0 <= y < m.shape[0]) for x, y in want.tolist()]
                    assert t["keypoints_visible"][k].tolist() == on
                    continue
                # a key point (on a pixel of its mask at the input) is visible iff that pixel still is
                for (x, y), seen in zip(t["keypoints"][k].tolist(), t["keypoints_visible"][k].tolist(), strict=True):
                    on = 0 <= x < m.shape[1] and 0 <= y < m.shape[0] and bool(m[int(y), int(x)])
                    assert seen == on


def test_cutmix_boxes_without_masks_equal_the_rasterised_reference():
    images, targets = _batch("CXCYWH", b=4, h=12, w=14, seed=2)
    plain = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    mixer = CutMix(alpha=0.5, min_visible=0.3)
    for seed in range(3):
        params = mixer.sample(images, plain, generator=_gen(seed))
        _, with_masks = mixer.apply(images, targets, params)
        _, without = mixer.apply(images, plain, params)
        for a, b in zip(with_masks, without, strict=True):  # rectangles: box geometry is pixel geometry
            assert torch.equal(a["ids"], b["ids"])
            assert torch.allclose(a["boxes"].as_subclass(torch.Tensor), b["boxes"].as_subclass(torch.Tensor))


# ---------------------------------------------------------------------------------------------
# the contract: replay, determinism, inputs


def _same(a, b):
    (ia, ta), (ib, tb) = a, b
    assert all(torch.equal(x, y) for x, y in zip(ia, ib, strict=True))
    for x, y in zip(ta, tb, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k]


@pytest.mark.parametrize("name", list(MIXERS))
def test_replay_and_seeded_determinism(name):
    images, targets = _batch()
    mixer = MIXERS[name]()
    params = mixer.sample(images, targets, generator=_gen(7))
    first = mixer.apply(images, targets, params)
    _same(first, mixer.apply(images, targets, params))
    _same(first, mixer(images, targets, generator=_gen(7)))
    assert params == mixer.sample(images, targets, generator=_gen(7))
    assert any(mixer.sample(images, targets, generator=_gen(s)) != params for s in range(8, 12))


@pytest.mark.parametrize("name", list(MIXERS))
def test_images_without_objects(name):
    images, targets = _batch(counts=[1, 1, 1, 1])
    empty = _batch(counts=[1, 1, 1, 1])[1]
    for t in empty:
        for k in ("labels", "ids", "masks", "keypoints"):
            t[k] = t[k][:0]
        t["boxes"] = t["boxes"][:0]
    out, res = MIXERS[name]()(images, empty, generator=_gen(0))
    assert all(len(t["boxes"]) == 0 and len(t["masks"]) == 0 for t in res)
    mixed = [empty[0], targets[1], empty[2], targets[3]]
    _, res = MIXERS[name]()(images, mixed, generator=_gen(0))
    assert all(len(t["labels"]) == len(t["boxes"]) == len(t["ids"]) for t in res)


@pytest.mark.parametrize("name", list(MIXERS))
def test_list_of_images_of_different_sizes(name):
    sizes = [(12, 14), (16, 20), (10, 18)]
    images, targets = [], []
    for i, (h, w) in enumerate(sizes):
        imgs, ts = _batch(b=1, h=h, w=w, seed=i)
        ts[0]["ids"] += 100 * i
        ts[0]["labels"] = ts[0]["ids"] % 7
        images.append(imgs[0])
        targets.append(ts[0])
    out, res = MIXERS[name]()(images, targets, generator=_gen(1))
    assert isinstance(out, list) and len(out) == 3
    for im, t in zip(out, res, strict=True):
        assert tuple(t["boxes"].canvas_size) == tuple(im.shape[-2:]) == tuple(t["masks"].shape[-2:])
        for k in range(len(t["boxes"])):
            xyxy = t["boxes"].as_subclass(torch.Tensor)[k]
            assert xyxy.tolist() == pytest.approx(_tight(t["masks"][k]))


@pytest.mark.parametrize("name", list(MIXERS))
def test_uint8_and_tv_images_keep_their_types(name):
    images, targets = _batch(dtype=torch.uint8)
    out, _ = MIXERS[name]()(tv.Image(images), targets, generator=_gen(0))
    assert isinstance(out, tv.Image) and out.dtype == torch.uint8


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input_is_refused_naming_the_argument():
    images, targets = _batch()
    mixer = MixUp()
    bad = [dict(t) for t in targets]
    bad[1]["labels"] = bad[1]["labels"][:0]
    with pytest.raises(ValueError, match=r"^targets\[1\]\['labels'\]: expected"):
        mixer(images, bad)
    bad = [dict(t) for t in targets]
    bad[2]["masks"] = tv.Mask(torch.zeros(len(bad[2]["labels"]), 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^targets\[2\]\['masks'\]: expected shape \(n, H, W\)"):
        mixer(images, bad)
    bad = [dict(t) for t in targets]
    bad[2]["masks"] = tv.Mask(torch.zeros(len(bad[2]["labels"]) + 1, 16, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^targets\[2\]\['masks'\]: expected \d+ entries \(one per box\)"):
        mixer(images, bad)
    bad = [dict(t) for t in targets]
    bad[1]["keypoints"] = torch.zeros(len(bad[1]["labels"]), 3)
    with pytest.raises(ValueError, match=r"^targets\[1\]\['keypoints'\]: expected shape \(n, K, 2\)"):
        mixer(images, bad)
    bad = [dict(t) for t in targets]
    bad[0]["boxes"] = tv.BoundingBoxes(torch.zeros(1, 5), format="XYWHR", canvas_size=(16, 20))
    with pytest.raises(ValueError, match=r"^targets\[0\]\['boxes'\]: expected an axis-aligned.*rotated"):
        mixer(images, bad)
    bad = [dict(t) for t in targets]
    del bad[3]["boxes"]
    with pytest.raises(ValueError, match=r"^targets\[3\]: expected a 'boxes' entry"):
        mixer(images, bad)
    with pytest.raises(ValueError, match=r"^targets: expected a list of 4 dicts"):
        mixer(images, targets[:3])
    with pytest.raises(ValueError, match=r"^images: expected a \(B, C, H, W\)"):
        mixer(images[0], targets)
    no_masks = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    with pytest.raises(ValueError, match=r"^targets: CopyPaste expected instance 'masks'"):
        CopyPaste()(images, no_masks)
    params = Mosaic().sample(images[:3], targets[:3])
    with pytest.raises(ValueError, match=r"^params: expected parameters drawn for 4 images"):
        Mosaic().apply(images, targets, params)


@pytest.mark.parametrize("make, match", [
    (lambda: Mosaic(scale=(2.0, 1.0)), r"^scale: expected"),
    (lambda: Mosaic(size=0), r"^size: expected"),
    (lambda: MixUp(alpha=-1.0), r"^alpha: expected"),
    (lambda: CutMix(min_visible=2.0), r"^min_visible: expected"),
    (lambda: CutMix(occluded="drop"), r"^occluded: expected"),
    (lambda: CopyPaste(p_object=1.5), r"^p_object: expected"),
    (lambda: CopyPaste(scale=(0.0, 1.0)), r"^scale: expected None or \(low, high\) with 0 < low <= high, got \(0.0, 1.0\)"),
    (lambda: CopyPaste(scale=(2.0, 1.0)), r"^scale: expected None or \(low, high\)"),
    (lambda: CopyPaste(scale=(float("nan"), 1.0)), r"^scale: expected None or \(low, high\)"),
    (lambda: CopyPaste(scale=1.5), r"^scale: expected None or \(low, high\).*got 1.5"),
    (lambda: CopyPaste(scale="ab"), r"^scale: expected None or \(low, high\)"),
])
def test_bad_hyperparameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_copypaste_scale_jitter_draws_after_the_other_draws_and_covers_its_offsets():
    images, targets = _batch(b=6, h=16, w=20, seed=1, counts=[2, 3, 1, 2, 3, 1])
    plain, jitter = CopyPaste(p_object=0.6), CopyPaste(p_object=0.6, scale=(0.5, 1.5))
    for seed in range(3):
        a, b = plain.sample(images, targets, generator=_gen(seed)), jitter.sample(images, targets, generator=_gen(seed))
        assert a.sizes is None and a.offsets is None
        assert (a.index, a.chosen) == (b.index, b.chosen)     # the jitter's draws come last
    # the offsets: uniform over the placements that keep the smaller of the two inside the larger
    seen = {}
    for seed in range(300):
        p = jitter.sample(images, targets, generator=_gen(seed))
        for (sh, sw), (dy, dx) in zip(p.sizes, p.offsets, strict=True):
            assert 8 <= sh <= 24 and 10 <= sw <= 30
            for d, size, scaled in ((dy, 16, sh), (dx, 20, sw)):
                assert min(0, size - scaled) <= d <= max(0, size - scaled)
            seen.setdefault((sh, sw), set()).add((dy, dx))
    assert max(len(v) for v in seen.values()) > 1
    # each placement equally likely: u on a fine grid of [0, 1) lands on every offset equally often
    from mixkit.detection.copypaste import _offset

    for size, scaled in ((16, 9), (16, 23), (16, 16)):
        d = size - scaled
        counts = torch.bincount(torch.tensor([_offset(k / 840, size, scaled) - min(0, d) for k in range(840)]))
        assert len(counts) == abs(d) + 1 and counts.min() == counts.max()


def test_copypaste_scale_one_is_no_jitter():
    images, targets = _batch(b=4, h=16, w=20, seed=3)
    params = CopyPaste(p_object=0.8, scale=(1.0, 1.0)).sample(images, targets, generator=_gen(2))
    assert set(params.sizes) == {(16, 20)} and set(params.offsets) == {(0, 0)}
    plain = CopyPaste(p_object=0.8)
    _same(CopyPaste(p_object=0.8, scale=(1.0, 1.0)).apply(images, targets, params),
          plain.apply(images, targets, type(params)(params.index, params.chosen)))


def test_copypaste_jitter_params_are_checked():
    images, targets = _batch(b=4, h=16, w=20, seed=3)
    mixer = CopyPaste(scale=(0.5, 1.5))
    p = mixer.sample(images, targets, generator=_gen(0))
    with pytest.raises(ValueError, match=r"^params: expected both sizes and offsets"):
        mixer.apply(images, targets, type(p)(p.index, p.chosen, p.sizes, None))
    with pytest.raises(ValueError, match=r"^params: expected sizes and offsets for 4 images, got 3 and 4"):
        mixer.apply(images, targets, type(p)(p.index, p.chosen, p.sizes[:3], p.offsets))
    with pytest.raises(ValueError, match=r"^params: expected sizes \(h, w\) of positive ints"):
        mixer.apply(images, targets, type(p)(p.index, p.chosen, ((0, 5),) + p.sizes[1:], p.offsets))
    with pytest.raises(ValueError, match=r"^params: expected sizes \(h, w\) of positive ints"):
        mixer.apply(images, targets, type(p)(p.index, p.chosen, p.sizes, ((0.5, 1),) + p.offsets[1:]))


def test_cutmix_keep_leaves_partly_covered_base_boxes_as_they_were():
    images, targets = _batch(b=4, h=12, w=14, seed=2)
    plain = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    mixer = CutMix(alpha=0.5, min_visible=0.3, occluded="keep")
    params = mixer.sample(images, plain, generator=_gen(0))
    _, res = mixer.apply(images, plain, params)
    source = _source(plain)
    for i, t in enumerate(res):
        for k, oid in enumerate(t["ids"].tolist()):
            j, q = source[oid]
            if j == i:  # a base object: its box untouched
                assert torch.equal(t["boxes"][k].as_subclass(torch.Tensor), plain[j]["boxes"][q].as_subclass(torch.Tensor))


def test_list_of_tv_images_comes_back_as_tv_images():
    images, targets = _batch(b=3)
    out, _ = MixUp()([tv.Image(im) for im in images], targets, generator=_gen(0))
    assert isinstance(out, list) and all(isinstance(im, tv.Image) for im in out)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_mixup_blends_a_batch_block_by_block_as_the_per_image_reference(dtype, monkeypatch):
    from mixkit.detection import mixup

    monkeypatch.setattr(mixup, "BLOCK_NUMEL", 3 * 7 * 5)  # blocks of 5 rows, the last one of 2
    g = _gen(4)
    x = (torch.rand(4, 3, 17, 7, generator=g) * 255).to(dtype)
    index, lams = [2, 0, 3, 1], [0.31, 0.5, 0.77, 0.05]
    out = mixup.blend_batch(x, index, lams)
    for i, (j, lam) in enumerate(zip(index, lams, strict=True)):
        assert torch.equal(out[i], mixup.blend(x[i], x[j], lam)), i
