"""Speed of mixkit's detection mixers against ultralytics, albumentations and kornia.

    PYTHONPATH=src python benchmarks/detection_bench.py [--batch 16] [--size 640] [--repeats 5]
                                                        [--threads N] [--out docs/bench/detection_speed.md]

One synthetic batch (uint8 images, 3 channels, ``--size`` square, 5-15 objects each: random
rectangles and ellipses with their tight boxes, instance masks and, for ultralytics, 1000-point
polygons) is converted once, outside the timings, to each implementation's input. A timing is one
whole batch: mixkit is called once on the batch; ultralytics and albumentations, which transform
one image at a time, are called once per image (their partners drawn from the same batch, as
ultralytics' dataset buffer does). The implementations are timed in turn (A, B, C, A, B, C, ...)
so that other work on the machine weighs on all alike; the table gives the median of
``--repeats`` timings in ms per batch and the ratio to mixkit (above 1: slower than mixkit).
``--threads`` sets torch's intra-op threads (mixkit's and kornia's work); ultralytics and
albumentations work in numpy and OpenCV. A peer that is not installed is left out with a note.
"mixkit, no masks" is the same call on the targets without their ``"masks"`` (boxes and labels
only).

What each peer carries: ultralytics moves polygons (its instance masks are drawn later, in its
``Format``), albumentations' ``Mosaic`` one ``(H, W)`` mask (given the instance-id map here),
kornia's ``RandomMosaic`` images and boxes only (float images: kornia takes no uint8).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import random
import statistics
import time
from copy import deepcopy

import numpy as np
import torch
from torchvision import tv_tensors as tv

from mixkit.detection import CopyPaste, CutMix, MixUp, Mosaic

POLY = 1000  # points per polygon, as ultralytics resamples its segments


def _shape(rng, h, w):
    """One random rectangle or ellipse: its mask, tight box and polygon."""
    bh, bw = int(rng.integers(16, h // 3)), int(rng.integers(16, w // 3))
    y0, x0 = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
    m = np.zeros((h, w), dtype=bool)
    t = np.linspace(0, 2 * math.pi, POLY, endpoint=False)
    if rng.random() < 0.5:
        m[y0:y0 + bh, x0:x0 + bw] = True
        corners = np.array([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh], [x0, y0]], float)
        s = np.linspace(0, 4, POLY, endpoint=False)  # along the outline, one unit per side
        poly = np.stack([np.interp(s, np.arange(5), corners[:, k]) for k in (0, 1)], 1)
    else:
        yy, xx = np.mgrid[y0:y0 + bh, x0:x0 + bw]
        cy, cx = y0 + bh / 2, x0 + bw / 2
        m[y0:y0 + bh, x0:x0 + bw] = ((yy + 0.5 - cy) / (bh / 2)) ** 2 + ((xx + 0.5 - cx) / (bw / 2)) ** 2 <= 1
        poly = np.stack([cx + bw / 2 * np.cos(t), cy + bh / 2 * np.sin(t)], 1)
    ys, xs = np.nonzero(m)
    box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return m, box, poly.astype(np.float32)


def make_batch(b=16, size=640, seed=0):
    """``images`` ``(b, 3, size, size)`` uint8 and ``items``: per image its masks, boxes, labels
    and polygons (numpy)."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (b, 3, size, size), dtype=np.uint8))
    items = []
    for _ in range(b):
        n = int(rng.integers(5, 16))
        shapes = [_shape(rng, size, size) for _ in range(n)]
        items.append({"masks": np.stack([s[0] for s in shapes]),
                      "boxes": np.array([s[1] for s in shapes], dtype=np.float32),
                      "labels": rng.integers(0, 80, n), "polys": np.stack([s[2] for s in shapes])})
    return images, items


def mixkit_targets(images, items):
    size = tuple(images.shape[-2:])
    return [{"boxes": tv.BoundingBoxes(torch.from_numpy(it["boxes"]), format="XYXY", canvas_size=size),
             "labels": torch.from_numpy(it["labels"]), "masks": tv.Mask(torch.from_numpy(it["masks"]))}
            for it in items]


# ---------------------------------------------------------------------------------------------
# ultralytics


class _Dataset:
    """What ultralytics' mix transforms ask of a dataset: ``buffer`` (Mosaic's partners),
    ``len`` (MixUp's, CutMix's, CopyPaste's), and ``get_image_and_label`` (a fresh copy of the
    labels, the image from the RAM cache, as its dataset does)."""

    cache = None

    def __init__(self, labels):
        self.labels = labels
        self.buffer = list(range(len(labels)))

    def __len__(self):
        return len(self.labels)

    def get_image_and_label(self, i):
        return fresh(self.labels[i])


def fresh(label):
    out = dict(label)
    out["instances"] = deepcopy(label["instances"])
    out["img"] = label["img"].copy()
    return out


def ultralytics_labels(images, items):
    from ultralytics.utils.instance import Instances

    out = []
    for i, (im, it) in enumerate(zip(images, items, strict=True)):
        h, w = im.shape[-2:]
        inst = Instances(it["boxes"].copy(), segments=it["polys"].copy(), bbox_format="xyxy",
                         normalized=False)
        out.append({"im_file": f"{i}.jpg", "ori_shape": (h, w), "resized_shape": (h, w),
                    "img": np.ascontiguousarray(im.permute(1, 2, 0).numpy()),
                    "cls": it["labels"].astype(np.float32)[:, None], "instances": inst})
    return out


def ultralytics_runs(images, items):
    from ultralytics.data import augment as U

    labels = ultralytics_labels(images, items)
    ds = _Dataset(labels)
    size = int(images.shape[-1])
    made = {"mosaic": U.Mosaic(ds, imgsz=size, p=1.0), "mixup": U.MixUp(ds, p=1.0),
            "cutmix": U.CutMix(ds, p=1.0), "copypaste": U.CopyPaste(ds, p=0.5, mode="mixup")}

    def runner(t):
        def prepare():
            return [fresh(label) for label in labels]

        def run(inputs):
            return [t(x) for x in inputs]
        return prepare, run
    return {k: runner(t) for k, t in made.items()}


# ---------------------------------------------------------------------------------------------
# albumentations and kornia (Mosaic only)


def albumentations_mosaic(images, items):
    import albumentations as A

    size = int(images.shape[-1])
    t = A.Compose([A.Mosaic(grid_yx=(2, 2), target_size=(2 * size, 2 * size), cell_shape=(size, size),
                            center_range=(0.25, 0.75), fit_mode="contain", fill=114, p=1.0)],
                  bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    data = []
    for im, it in zip(images, items, strict=True):
        ids = np.zeros(it["masks"].shape[1:], dtype=np.uint8)
        for k, m in enumerate(it["masks"]):
            ids[m] = k + 1
        data.append({"image": np.ascontiguousarray(im.permute(1, 2, 0).numpy()), "mask": ids,
                     "bboxes": it["boxes"], "labels": it["labels"].tolist()})
    b = len(data)

    def prepare():
        return [(d, [data[(i + k) % b] for k in (1, 2, 3)]) for i, d in enumerate(data)]

    def run(inputs):
        return [t(**d, mosaic_metadata=meta) for d, meta in inputs]
    return prepare, run


def kornia_mosaic(images, items):
    import kornia.augmentation as K

    size = int(images.shape[-1])
    t = K.RandomMosaic(output_size=(2 * size, 2 * size), start_ratio_range=(0.25, 0.75), p=1.0,
                       data_keys=["input", "bbox_xyxy"])
    x = images.float() / 255
    boxes = [torch.from_numpy(it["boxes"]) for it in items]

    def prepare():
        return None

    def run(_):
        return t(x, boxes)
    return prepare, run


def mixkit_runs(images, items, masks=True):
    targets = mixkit_targets(images, items)
    if not masks:
        targets = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    made = {"mosaic": Mosaic(), "mixup": MixUp(), "cutmix": CutMix()}
    if masks:
        made["copypaste"] = CopyPaste()

    def runner(m):
        g = torch.Generator().manual_seed(0)
        return (lambda: None), (lambda _: m(images, targets, generator=g))
    return {k: runner(m) for k, m in made.items()}


# ---------------------------------------------------------------------------------------------


def _peers(images, items):
    """``{method: {implementation: (prepare, run)}}`` and notes on what could not be run."""
    out = {k: {"mixkit": v} for k, v in mixkit_runs(images, items).items()}
    for k, v in mixkit_runs(images, items, masks=False).items():
        out[k]["mixkit, no masks"] = v
    notes = []
    for name, make in (("ultralytics", ultralytics_runs),):
        try:
            for k, v in make(images, items).items():
                out[k][name] = v
        except ImportError as e:
            notes.append(f"{name}: not installed ({e})")
    for name, make in (("albumentations", albumentations_mosaic), ("kornia", kornia_mosaic)):
        try:
            out["mosaic"][name] = make(images, items)
        except ImportError as e:
            notes.append(f"{name}: not installed ({e})")
    return out, notes


def measure(runs: dict, repeats: int) -> dict:
    """Median ms per batch of each implementation, timed in turn, after one warm-up each."""
    times = {k: [] for k in runs}
    for r in range(repeats + 1):
        for name, (prepare, run) in runs.items():
            inputs = prepare()
            t0 = time.perf_counter()
            run(inputs)
            dt = (time.perf_counter() - t0) * 1e3
            if r:
                times[name].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}


def table(results: dict) -> str:
    lines = ["| method | implementation | ms per batch | ratio to mixkit |", "| --- | --- | --- | --- |"]
    for method, res in results.items():
        base = res["mixkit"]
        for name, ms in res.items():
            lines.append(f"| {method} | {name} | {ms:.1f} | {ms / base:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--methods", default="mosaic,mixup,cutmix,copypaste")
    p.add_argument("--threads", type=int, default=None,
                   help="torch's intra-op threads (torch.set_num_threads; default: torch's own)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    random.seed(0)
    np.random.seed(0)
    images, items = make_batch(a.batch, a.size)
    runs, notes = _peers(images, items)
    results = {m: measure(runs[m], a.repeats) for m in a.methods.split(",")}
    head = (f"{datetime.date.today()}, batch {a.batch} x 3 x {a.size} x {a.size} uint8, median of "
            f"{a.repeats}; {platform.machine()} with {os.cpu_count()} CPU threads visible, torch "
            f"{torch.get_num_threads()} threads")
    text = "\n".join([head, "", table(results), *(["", *notes] if notes else [])])
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
