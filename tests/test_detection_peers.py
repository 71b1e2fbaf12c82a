"""mixkit's detection mixers against ultralytics' on inputs where their conventions agree.

Each test runs ultralytics' transform (``ultralytics.data.augment``) on one image of a small
batch, with its draws fixed (the partners, the centre, the pasted area), feeds mixkit the same
parameters through ``mixer.apply(images, targets, params)`` and compares the output image and
boxes (XYXY pixels, fill 114). Skipped where ultralytics is not installed.

Conventions that differ, and how the tests meet them:

- MixUp: ultralytics truncates the blend to uint8 (``astype``), mixkit rounds: the images agree
  to within 1 (mixkit's is the rounded one, ultralytics' the floor).
- ultralytics drops boxes of zero area, mixkit also those under ``min_area`` (1 pixel by
  default): the tests set ``min_area=0``.
- CutMix: ultralytics pastes only areas that touch no box of the base image and keeps partner
  objects with an intersection over their own area of at least 0.1 (no segments); mixkit's
  ``min_visible=0.1`` is the same rule. Its random area is symmetric about the centre
  (``cx +- w // 2``), mixkit's ``cx - w // 2 .. cx + w - w // 2``: the tests give both one area.
- Copy-Paste: ultralytics pastes partner instances whose boxes overlap the base boxes by under
  0.3 and leaves the base boxes as they are; mixkit cuts occluded base instances. The test pastes
  instances that overlap nothing, where both agree; ultralytics draws polygons (a rectangle's
  corners are inclusive pixel centres), mixkit pastes masks.
"""

import random

import numpy as np
import pytest
import torch

pytest.importorskip("ultralytics")
tv = pytest.importorskip("torchvision.tv_tensors")

from ultralytics.data import augment as U  # noqa: E402
from ultralytics.utils.instance import Instances  # noqa: E402

from mixkit.detection import (  # noqa: E402
    CopyPaste,
    CopyPasteParams,
    CutMix,
    CutMixParams,
    MixUp,
    MixUpParams,
    Mosaic,
    MosaicParams,
)

S = 64  # image side


class _Dataset:
    cache = None

    def __init__(self, labels):
        self.labels = labels
        self.buffer = list(range(len(labels)))

    def __len__(self):
        return len(self.labels)

    def get_image_and_label(self, i):
        return _fresh(self.labels[i])


def _fresh(label):
    out = dict(label)
    out["instances"] = Instances(label["instances"].bboxes.copy(), segments=label["instances"].segments.copy(),
                                 bbox_format="xyxy", normalized=False)
    out["img"] = label["img"].copy()
    return out


def _rects(rng, n, lo=0, hi=S):
    """``n`` rectangles ``(x0, y0, x1, y1)`` (x1, y1 excluded) inside ``[lo, hi)``."""
    out = []
    for _ in range(n):
        w, h = (int(v) for v in rng.integers(4, (hi - lo) // 2, 2))
        x0, y0 = (int(v) for v in rng.integers(lo, hi - max(w, h), 2))
        out.append((x0, y0, x0 + w, y0 + h))
    return out


def _data(rects_per_image, seed=0):
    """The same batch for both: a uint8 ``(B, 3, S, S)`` tensor with mixkit targets (masks of the
    rectangles), and ultralytics' label dicts (HWC images, polygons of the rectangles)."""
    rng = np.random.default_rng(seed)
    b = len(rects_per_image)
    images = torch.from_numpy(rng.integers(0, 256, (b, 3, S, S), dtype=np.uint8))
    targets, labels = [], []
    for i, rects in enumerate(rects_per_image):
        boxes = np.array(rects, dtype=np.float32).reshape(-1, 4)
        masks = torch.zeros(len(rects), S, S, dtype=torch.bool)
        polys = np.zeros((len(rects), 4, 2), dtype=np.float32)
        for k, (x0, y0, x1, y1) in enumerate(rects):
            masks[k, y0:y1, x0:x1] = True
            polys[k] = [[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]]
        cls = np.arange(len(rects)) + 10 * i
        targets.append({"boxes": tv.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=(S, S)),
                        "labels": torch.from_numpy(cls), "masks": tv.Mask(masks)})
        labels.append({"im_file": f"{i}.jpg", "ori_shape": (S, S), "resized_shape": (S, S),
                       "img": np.ascontiguousarray(images[i].permute(1, 2, 0).numpy()),
                       "cls": cls.astype(np.float32)[:, None],
                       "instances": Instances(boxes, segments=polys, bbox_format="xyxy", normalized=False)})
    return images, targets, labels


def _no_masks(targets):
    return [{k: v for k, v in t.items() if k != "masks"} for t in targets]


def _hwc(image):
    return image.permute(1, 2, 0).numpy()


def _boxes(t):
    return t["boxes"].as_subclass(torch.Tensor).numpy()


def _theirs(out):
    out["instances"].convert_bbox("xyxy")
    return out["img"], out["instances"].bboxes, out["cls"][:, 0]


@pytest.mark.parametrize("centre", [(64, 64), (40, 90), (95, 33), (32, 32)])
def test_mosaic_equals_ultralytics_for_the_same_centre_and_tiles(centre, monkeypatch):
    rng = np.random.default_rng(1)
    images, targets, labels = _data([_rects(rng, 3) for _ in range(4)])
    t = U.Mosaic(_Dataset(labels), imgsz=S, p=1.0)
    monkeypatch.setattr(t, "get_indexes", lambda: [1, 2, 3])
    xc, yc = centre
    draws = iter([0.0, yc, xc])  # the p check, then ultralytics draws yc before xc
    monkeypatch.setattr(U.random, "uniform", lambda a, b: next(draws))
    img, boxes, cls = _theirs(t(_fresh(labels[0])))

    mixer = Mosaic(min_area=0.0)
    tiles = tuple((i, *[(i + k) % 4 for k in (1, 2, 3)]) for i in range(4))
    params = MosaicParams(tiles, ((xc, yc),) * 4, ((1.0,) * 4,) * 4)
    out, res = mixer.apply(images, _no_masks(targets), params)
    assert np.array_equal(_hwc(out[0]), img)
    np.testing.assert_array_equal(_boxes(res[0]), boxes)
    np.testing.assert_array_equal(res[0]["labels"].numpy(), cls)
    # with masks, mixkit's boxes are the masks' tight boxes: for rectangles, the same
    _, with_masks = mixer.apply(images, targets, params)
    np.testing.assert_array_equal(_boxes(with_masks[0]), boxes)


def test_mosaic_default_fill_is_114_for_uint8_and_114_over_255_for_float():
    rng = np.random.default_rng(2)
    images, targets, _ = _data([_rects(rng, 2) for _ in range(4)])
    params = MosaicParams(((0, 1, 2, 3),) * 4, ((33, 40),) * 4, ((1.0,) * 4,) * 4)
    out, _ = Mosaic().apply(images, _no_masks(targets), params)
    assert out[0, :, -1, -1].tolist() == [114] * 3
    out, _ = Mosaic().apply(images.float() / 255, _no_masks(targets), params)
    assert out[0, :, -1, -1].tolist() == pytest.approx([114 / 255] * 3)


def test_mixup_equals_ultralytics_up_to_rounding(monkeypatch):
    rng = np.random.default_rng(3)
    images, targets, labels = _data([_rects(rng, 3), _rects(rng, 2)])
    t = U.MixUp(_Dataset(labels), p=1.0)
    monkeypatch.setattr(t, "get_indexes", lambda: 1)
    np.random.seed(0)
    r = float(np.random.beta(32.0, 32.0))
    np.random.seed(0)
    random.seed(0)
    img, boxes, cls = _theirs(t(_fresh(labels[0])))

    out, res = MixUp().apply(images, targets, MixUpParams((1, 0), (r, 0.5)))
    diff = _hwc(out[0]).astype(int) - img.astype(int)
    assert diff.min() >= 0 and diff.max() <= 1  # mixkit rounds, ultralytics truncates
    exact = _hwc(images[0]).astype(np.float64) * r + _hwc(images[1]).astype(np.float64) * (1 - r)
    assert np.array_equal(img, exact.astype(np.uint8))
    np.testing.assert_array_equal(_boxes(res[0]), boxes)
    np.testing.assert_array_equal(res[0]["labels"].numpy(), cls)
    assert res[0]["weights"].tolist() == pytest.approx([r] * 3 + [1 - r] * 2)


@pytest.mark.parametrize("area", [(30, 28, 60, 58), (34, 0, 64, 40), (20, 36, 64, 64)])
def test_cutmix_equals_ultralytics_for_the_same_area(area, monkeypatch):
    rng = np.random.default_rng(4)
    base = [(2, 2, 14, 12), (4, 14, 18, 26)]  # the top-left corner, clear of every area
    images, targets, labels = _data([base, _rects(rng, 6)])
    for lab in labels:  # ultralytics' rule without segments (intersection over area >= 0.1)
        lab["instances"] = Instances(lab["instances"].bboxes, bbox_format="xyxy", normalized=False)
    t = U.CutMix(_Dataset(labels), p=1.0)
    monkeypatch.setattr(t, "get_indexes", lambda: 1)
    monkeypatch.setattr(t, "_rand_bbox", lambda w, h: area)
    label = dict(labels[0], img=labels[0]["img"].copy())
    img, boxes, cls = _theirs(t(label))

    mixer = CutMix(min_visible=0.1, min_area=0.0)
    out, res = mixer.apply(images, _no_masks(targets), CutMixParams((1, 0), (area, area), (0.5, 0.5)))
    assert np.array_equal(_hwc(out[0]), img)
    np.testing.assert_array_equal(_boxes(res[0]), boxes)
    np.testing.assert_array_equal(res[0]["labels"].numpy(), cls)


def test_copypaste_equals_ultralytics_where_the_pasted_instances_overlap_nothing(monkeypatch):
    base = [(2, 2, 20, 18), (6, 40, 26, 60)]  # the left half
    other = [(36, 4, 60, 20), (40, 30, 58, 44), (34, 48, 62, 62)]  # the right half
    images, targets, labels = _data([base, other])
    t = U.CopyPaste(_Dataset(labels), p=1.0, mode="mixup")
    monkeypatch.setattr(t, "get_indexes", lambda: 1)
    random.seed(0)
    img, boxes, cls = _theirs(t(_fresh(labels[0])))

    out, res = CopyPaste(min_area=0.0).apply(images, targets, CopyPasteParams((1, 0), ((0, 1, 2), ())))
    assert np.array_equal(_hwc(out[0]), img)
    np.testing.assert_array_equal(_boxes(res[0]), boxes)
    np.testing.assert_array_equal(res[0]["labels"].numpy(), cls)


@pytest.mark.parametrize("centre", [(59, 72), (64, 64), (40, 90), (95, 33)])
def test_mosaic_equals_albumentations_for_the_same_centre_and_cells(centre, monkeypatch):
    """albumentations' ``Mosaic`` with cells and window of the image size: its centre ``(cx, cy)``
    on its ``2S`` grid is mixkit's ``(2S - cx, 2S - cy)`` with ``output_size=size`` (the window
    centred on the canvas); its cells, read top-left, top-right, bottom-left, bottom-right, are
    mixkit's four tiles. Its boxes go through normalised coordinates: equal to 1e-4."""
    A = pytest.importorskip("albumentations")
    from albumentations.augmentations.mixing import transforms as tr

    rng = np.random.default_rng(5)
    images, targets, _ = _data([_rects(rng, 3) for _ in range(4)])
    hwc = [np.ascontiguousarray(_hwc(im)) for im in images]
    cx, cy = centre
    monkeypatch.setattr(tr.fmixing, "calculate_mosaic_center_point", lambda **kw: (cx, cy))
    seen = {}
    assign = tr.fmixing.assign_items_to_grid_cells

    def record(num_items, cell_placements, py_random):
        seen.update(assign(num_items, cell_placements, py_random))
        return seen
    monkeypatch.setattr(tr.fmixing, "assign_items_to_grid_cells", record)
    t = A.Compose([A.Mosaic(grid_yx=(2, 2), target_size=(S, S), cell_shape=(S, S), fill=114, p=1.0)],
                  bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    meta = [{"image": hwc[k], "bboxes": _boxes(targets[k]), "labels": targets[k]["labels"].tolist()}
            for k in (1, 2, 3)]
    theirs = t(image=hwc[0], bboxes=_boxes(targets[0]), labels=targets[0]["labels"].tolist(),
               mosaic_metadata=meta)
    cells = [seen[p] for p in sorted(seen, key=lambda p: (p[1], p[0]))]  # reading order
    assert len(cells) == 4
    tiles = (tuple(cells),) * 4  # the three partners are images 1, 2, 3 (all of the metadata)
    params = MosaicParams(tiles, ((2 * S - cx, 2 * S - cy),) * 4, ((1.0,) * 4,) * 4)
    out, res = Mosaic(output_size=(S, S), min_area=0.0).apply(images, _no_masks(targets), params)
    assert np.array_equal(_hwc(out[0]), theirs["image"])
    ours = sorted(zip(res[0]["labels"].tolist(), _boxes(res[0]).tolist(), strict=True))
    got = sorted(zip([int(v) for v in theirs["labels"]], np.asarray(theirs["bboxes"]).tolist(),
                     strict=True))
    assert [lab for lab, _ in ours] == [lab for lab, _ in got]
    np.testing.assert_allclose([b for _, b in ours], [b for _, b in got], atol=1e-4)
