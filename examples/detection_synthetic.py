"""Object detection with mixkit.detection: ERM, Mosaic, MixUp, CutMix and Copy-Paste compared.

Scenes of 64x64 pixels hold one to four objects of three classes (rectangles, ellipses and
triangles; only shape tells them apart, colours are random) on a striped, noisy background, with
their boxes and instance masks. A tiny CenterNet-style detector (a few convolutions at stride 4, a
class heat map, a box-size and a centre-offset head) is trained from the same initialisation on
the same batches for every method of a seed; a mixer is applied to the batch after loading (each
image of the batch takes the mixed image with probability ``--p``, by coin flips shared by all
methods). MixUp's per-object ``"weights"`` weight the objects' heat-map and box losses.

Every model is scored on one fixed held-out test set by COCO-style mAP@[.5:.95] (101-point
interpolated precision, averaged over the IoU thresholds .50:.05:.95 and the classes present; up
to 100 detections per image and class), computed by ``coco_map`` below (the tests check it against
pycocotools). Writes ``results.csv`` (``method, seed, map, map50, seconds, train_loss,
loss_change``: the last epoch's mean training loss and its relative change over the last 10 % of
the epochs), ``results.md`` (means, standard deviations and paired 95 % t intervals of each
method's difference to ERM), ``map.png`` (the same, drawn) and ``settings.json`` (the arguments
the results depend on).
``--jobs N`` trains N runs at a time in separate processes (the same results as one at a time);
rerunning into the same ``--out`` skips the runs already there and refuses a folder made with
other settings. Every file is written whole (a temporary file, then a rename).

Run: ``python examples/detection_synthetic.py --seeds 5 --epochs 20 --train-size 2000 --jobs 2
--out runs/detection``.
"""

import argparse
import concurrent.futures
import csv
import functools
import io
import json
import math
import multiprocessing
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors

from mixkit.detection import CopyPaste, CutMix, MixUp, Mosaic
from mixkit.harness.files import atomic_write_text

SIZE = 64
STRIDE = 4
K = 3                       # rectangle, ellipse, triangle (labels 0..K-1)
FILL = 0.35                 # Mosaic's canvas value, about the background's mean
METHODS = {
    "erm": lambda: None,
    "mosaic": lambda: Mosaic(size=(SIZE, SIZE), output_size=(SIZE, SIZE), scale=(0.5, 1.0), fill=FILL,
                             min_area=9.0),
    "mixup": lambda: MixUp(alpha=32.0),
    "cutmix": lambda: CutMix(alpha=1.0, min_visible=0.3, min_area=9.0),
    "copypaste": lambda: CopyPaste(p_object=0.5, min_visible=0.3, min_area=9.0),
}


# ------------------------------------------------------------------------------------------ scenes

def _shape(kind: int, g: torch.Generator) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    h, w = (int(v) for v in torch.randint(10, 30, (2,), generator=g))
    y0 = int(torch.randint(0, SIZE - h + 1, (1,), generator=g))
    x0 = int(torch.randint(0, SIZE - w + 1, (1,), generator=g))
    inside = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
    v, u = (yy - y0 + 0.5) / h, (xx - x0 + 0.5) / w        # in (0, 1) over the object's box
    if kind == 1:
        return inside & ((2 * v - 1) ** 2 + (2 * u - 1) ** 2 <= 1.0)
    if kind == 2:
        return inside & ((u - 0.5).abs() <= v / 2)            # apex up, base at the bottom
    return inside


def scenes(n: int, generator: torch.Generator) -> tuple[torch.Tensor, list[dict]]:
    """``n`` scenes: images ``(n, 3, SIZE, SIZE)`` in [0, 1] and targets (XYXY ``BoundingBoxes``,
    ``labels`` in 0..K-1, bool instance ``Mask``); a later object hides the earlier ones."""
    g = generator
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images, targets = [], []
    for _ in range(n):
        phase, freq = float(torch.rand(1, generator=g)) * 6.3, 0.3 + 0.5 * float(torch.rand(1, generator=g))
        image = (0.25 + 0.2 * torch.rand(3, 1, 1, generator=g) + 0.08 * torch.sin(freq * (xx + yy) + phase)
                 + 0.05 * torch.randn(3, SIZE, SIZE, generator=g))
        masks, labels = [], []
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
            kind = int(torch.randint(0, K, (1,), generator=g))
            m = _shape(kind, g)
            for earlier in masks:
                earlier &= ~m
            image[:, m] = 0.3 + 0.7 * torch.rand(3, 1, generator=g)
            masks.append(m)
            labels.append(kind)
        keep = [i for i, m in enumerate(masks) if int(m.sum()) >= 16]
        m = torch.stack([masks[i] for i in keep]) if keep else torch.zeros(0, SIZE, SIZE, dtype=torch.bool)
        images.append(image.clamp(0, 1))
        boxes = tv_tensors.BoundingBoxes(_tight_boxes(m), format="XYXY", canvas_size=(SIZE, SIZE))
        targets.append({"boxes": boxes,
                        "labels": torch.tensor([labels[i] for i in keep], dtype=torch.int64),
                        "masks": tv_tensors.Mask(m)})
    return torch.stack(images), targets


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    if masks.shape[0] == 0:
        return torch.zeros(0, 4)
    rows, cols = masks.any(2), masks.any(1)
    idx = torch.arange(SIZE)
    big = SIZE + 1
    x1 = torch.where(cols, idx, big).amin(1)
    y1 = torch.where(rows, idx, big).amin(1)
    x2 = torch.where(cols, idx, -1).amax(1) + 1
    y2 = torch.where(rows, idx, -1).amax(1) + 1
    return torch.stack([x1, y1, x2, y2], 1).float()


# ---------------------------------------------------------------------------------------- detector

def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyCenterNet(nn.Module):
    """Five 3x3 convolutions (two of stride 2, two dilated) down to stride 4, then one head of 1x1
    convolutions giving K class heat maps (logits), the box size ``(w, h)`` and the centre's offset
    in its cell, both in cells."""

    def __init__(self, k: int = K, width: int = 32):
        super().__init__()
        self.k = k
        self.body = nn.Sequential(_block(3, 16, 2), _block(16, width, 2), _block(width, width),
                                  _block(width, width, dilation=2), _block(width, width, dilation=4))
        self.head = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, k + 4, 1))
        with torch.no_grad():
            self.head[-1].bias[:k] = -2.19      # CenterNet's prior of 0.1 on the heat map

    def forward(self, x):
        out = self.head(self.body(x))
        return out[:, :self.k], out[:, self.k:self.k + 2], out[:, self.k + 2:]


def encode(targets: list[dict], cells: int) -> dict:
    """Training targets on the ``cells`` x ``cells`` grid: the Gaussian heat maps ``(B, K, S, S)``
    (1 at each object's centre cell, spread ``0.54 * side / 6``), and per object its image, class,
    cell, size and offset (in cells) and weight (``"weights"`` if given, else 1)."""
    heat = torch.zeros(len(targets), K, cells, cells)
    grid = torch.arange(cells).float()
    rows = []
    for b, t in enumerate(targets):
        boxes = t["boxes"].as_subclass(torch.Tensor).float() / STRIDE
        if boxes.shape[0] == 0:
            continue
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        cell = centre.floor().clamp(0, cells - 1)
        side = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
        sigma = (0.54 * side / 6).clamp(min=0.3)
        gx = torch.exp(-((grid[None] - cell[:, :1]) ** 2) / (2 * sigma[:, :1] ** 2))
        gy = torch.exp(-((grid[None] - cell[:, 1:]) ** 2) / (2 * sigma[:, 1:] ** 2))
        g = gy[:, :, None] * gx[:, None, :]                         # (n, S, S), 1 at the centre cell
        labels = t["labels"]
        for c in labels.unique().tolist():
            heat[b, c] = torch.maximum(heat[b, c], g[labels == c].amax(0))
        weights = t.get("weights", torch.ones(len(labels)))
        rows.append((torch.full_like(labels, b), labels, cell.long(), side, centre - cell, weights.float()))
    if not rows:
        return {"heat": heat, "n": 0}
    b, c, cell, side, offset, w = (torch.cat(parts) for parts in zip(*rows, strict=True))
    return {"heat": heat, "n": len(b), "b": b, "c": c, "cell": cell, "size": side, "offset": offset, "w": w}


def loss_fn(outputs, enc) -> torch.Tensor:
    """CenterNet's focal loss on the heat map (the positive terms weighted by the objects'
    weights) plus L1 on size (weight 0.1) and offset at the objects' centre cells."""
    logits, size, offset = outputs
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    gt = enc["heat"]
    neg = ((1 - gt) ** 4 * p ** 2 * torch.log(1 - p)).masked_fill(gt >= 1, 0).sum()
    n = max(enc["n"], 1)
    if enc["n"] == 0:
        return -neg / n
    b, c, x, y = enc["b"], enc["c"], enc["cell"][:, 0], enc["cell"][:, 1]
    pc = p[b, c, y, x]
    pos = (enc["w"] * (1 - pc) ** 2 * torch.log(pc)).sum()
    w = enc["w"][:, None]
    l_size = (w * (size[b, :, y, x] - enc["size"]).abs()).sum() / n
    l_off = (w * (offset[b, :, y, x] - enc["offset"]).abs()).sum() / n
    return -(pos + neg) / n + 0.1 * l_size + l_off


@torch.no_grad()
def decode(outputs, top: int = 100) -> list[dict]:
    """Peaks of the heat maps (3x3 max) as detections: XYXY boxes in pixels, scores and labels."""
    logits, size, offset = outputs
    p = logits.sigmoid()
    p = p * (F.max_pool2d(p, 3, 1, 1) == p)
    bsz, k, s, _ = p.shape
    scores, idx = p.flatten(1).topk(min(top, k * s * s))
    c, cell = idx // (s * s), idx % (s * s)
    y, x = cell // s, cell % s
    out = []
    for i in range(bsz):
        cx = (x[i] + offset[i, 0, y[i], x[i]]) * STRIDE
        cy = (y[i] + offset[i, 1, y[i], x[i]]) * STRIDE
        w, h = size[i, 0, y[i], x[i]].clamp(min=0) * STRIDE, size[i, 1, y[i], x[i]].clamp(min=0) * STRIDE
        out.append({"boxes": torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1),
                    "scores": scores[i], "labels": c[i]})
    return out


# ----------------------------------------------------------------------------------------- the mAP

IOU_THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]
RECALL_POINTS = [i / 100 for i in range(101)]


def box_iou(a, b):
    """Pairwise IoU of XYXY boxes ``(n, 4)`` and ``(m, 4)`` (numpy arrays)."""
    import numpy as np

    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(ious, thresholds):
    """COCO's greedy matching of detections (rows, by falling score) to ground truths (columns) at
    each threshold: each detection takes the unmatched ground truth of highest IoU >= t (the last
    one on ties, as COCO does). Returns the ``(T, n_det)`` true-positive flags."""
    import numpy as np

    t = np.asarray(thresholds)[:, None]
    matched = np.zeros((len(thresholds), ious.shape[1]), dtype=bool)
    tp = np.zeros((len(thresholds), ious.shape[0]), dtype=bool)
    if ious.shape[1] == 0:
        return tp
    for d in range(ious.shape[0]):
        cand = np.where(~matched & (ious[d][None] >= np.minimum(t, 1 - 1e-10)), ious[d][None], -1.0)
        best = cand.shape[1] - 1 - cand[:, ::-1].argmax(1)          # last index of the maximum
        hit = cand[np.arange(len(best)), best] >= 0
        tp[hit, d] = True
        matched[np.nonzero(hit)[0], best[hit]] = True
    return tp


def _average_precision(tp, scores, n_gt):
    """101-point interpolated AP per threshold from the pooled ``(T, D)`` flags and scores."""
    import numpy as np

    order = np.argsort(-scores, kind="mergesort")
    tp = tp[:, order]
    tps, fps = np.cumsum(tp, 1), np.cumsum(~tp, 1)
    ap = np.zeros(tp.shape[0])
    if tp.shape[1] == 0:
        return ap
    for k in range(tp.shape[0]):
        recall = tps[k] / n_gt
        precision = tps[k] / (tps[k] + fps[k] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]    # the precision envelope
        inds = np.searchsorted(recall, RECALL_POINTS, side="left")
        q = np.where(inds < len(precision), precision[np.minimum(inds, len(precision) - 1)], 0.0)
        ap[k] = q.mean()
    return ap


def coco_map(predictions: list[dict], targets: list[dict], max_dets: int = 100) -> tuple[float, float]:
    """COCO-style ``(mAP@[.5:.95], mAP@.5)`` of ``predictions`` (per image: XYXY ``"boxes"``,
    ``"scores"``, ``"labels"``) against ``targets`` (XYXY ``"boxes"``, ``"labels"``): for each
    class with ground truth, each image's detections of that class sorted by score (the top
    ``max_dets``), matched greedily, pooled over images, 101-point interpolated precision; averaged
    over the classes and IoU thresholds. NaN when no target has an object."""
    import numpy as np

    as_np = lambda x: torch.as_tensor(x).detach().cpu().double().numpy()  # noqa: E731
    classes = sorted({int(c) for t in targets for c in t["labels"]})
    aps = []
    for c in classes:
        flags, scores, n_gt = [], [], 0
        for p, t in zip(predictions, targets, strict=True):
            gt = as_np(t["boxes"])[as_np(t["labels"]) == c].reshape(-1, 4)
            keep = as_np(p["labels"]) == c
            s = as_np(p["scores"])[keep]
            order = np.argsort(-s, kind="mergesort")[:max_dets]
            dt = as_np(p["boxes"])[keep].reshape(-1, 4)[order]
            n_gt += len(gt)
            flags.append(_match(box_iou(dt, gt), IOU_THRESHOLDS))
            scores.append(s[order])
        aps.append(_average_precision(np.concatenate(flags, 1), np.concatenate(scores), n_gt))
    if not aps:
        return float("nan"), float("nan")
    aps = np.stack(aps)
    return float(aps.mean()), float(aps[:, 0].mean())


# -------------------------------------------------------------------------------------- training

def _mix(mixer, x, t, coins, generator):
    """The batch with the images where ``coins`` is set mixed among themselves (left as they are
    when fewer than two are set)."""
    chosen = coins.nonzero().flatten().tolist()
    if mixer is None or len(chosen) < 2:
        return x, t
    mx, mt = mixer(x[chosen], [t[i] for i in chosen], generator=generator)
    x, t = x.clone(), list(t)
    x[chosen] = mx
    for j, i in enumerate(chosen):
        t[i] = mt[j]
    return x, t


def train(method: str, images, targets, seed: int, args) -> tuple[nn.Module, list[float]]:
    """The detector trained with ``method`` on the seed's batches (the same initialisation, batch
    order and coin flips for every method; only the mixer's own draws differ), and the mean
    training loss of each epoch."""
    torch.manual_seed(seed)
    model = TinyCenterNet()
    per_epoch = len(images) // args.batch_size
    steps = args.epochs * per_epoch
    steps = steps if args.max_steps is None else min(args.max_steps, steps)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = max(1, steps // 20)      # linear warm-up over 5 % of the steps, then cosine to 0
    cosine = lambda s: 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else cosine(s))
    mixer = METHODS[method]()
    mix_gen = torch.Generator().manual_seed(10_000 + seed)
    coin_gen = torch.Generator().manual_seed(20_000 + seed)
    model.train()
    epoch_losses = []
    for step in range(steps):
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(1000 * seed + epoch))
            epoch_losses.append([])
        idx = order[k * args.batch_size:(k + 1) * args.batch_size]
        coins = torch.rand(len(idx), generator=coin_gen) < args.p
        x, t = _mix(mixer, images[idx], [targets[int(i)] for i in idx], coins, mix_gen)
        loss = loss_fn(model(x), encode(t, SIZE // STRIDE))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        epoch_losses[-1].append(loss.detach().item())
    return model, [sum(v) / len(v) for v in epoch_losses]


def loss_change(epoch_means: list[float]) -> float:
    """The relative change of the epoch-mean training loss over the last 10 % of the epochs (at
    least the last two): ``|L[-1] - L[-1 - k]| / L[-1]`` with ``k = max(1, round(0.1 E))``; nan
    with fewer than two epochs. Small means the training loss has levelled off."""
    if len(epoch_means) < 2:
        return float("nan")
    k = min(len(epoch_means) - 1, max(1, round(0.1 * len(epoch_means))))
    return abs(epoch_means[-1] - epoch_means[-1 - k]) / epoch_means[-1]


@torch.no_grad()
def evaluate(model: nn.Module, images, targets, batch: int = 250) -> tuple[float, float]:
    model.eval()
    preds = []
    for i in range(0, len(images), batch):
        preds += decode(model(images[i:i + batch]))
    return coco_map(preds, targets)


# --------------------------------------------------------------------------------------- reports

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (a table; the next
    smaller tabulated df above 10, 1.96 beyond 30)."""
    if df > 30:
        return 1.96
    return T975[max(d for d in T975 if d <= df)]


def _mean_std(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def summarise(rows: list[dict], args) -> str:
    """results.md: per method the mean and std of mAP and mAP50 over the seeds, and the paired 95 %
    t interval of its mAP minus ERM's (the same seeds)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["method"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# Detection on synthetic scenes: {len(seeds)} seed(s), {args.epochs} epochs, "
             f"{args.train_size} training scenes, {args.test_size} test scenes", "",
             "mAP@[.5:.95] (COCO-style, 101-point, per-class averaged) of the tiny CenterNet; "
             f"mixing probability {args.p} per image; options: "
             + "; ".join(f"{m}: {METHODS[m]()!r}" for m in methods if m != "erm"), "",
             "| method | mAP mean | mAP std | mAP50 mean | s/run | mAP - ERM, paired 95 % t interval "
             "| verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in methods:
        maps = [by[m, s]["map"] for s in seeds if (m, s) in by]
        mean, std = _mean_std(maps)
        map50 = _mean_std([by[m, s]["map50"] for s in seeds if (m, s) in by])[0]
        secs = _mean_std([by[m, s]["seconds"] for s in seeds if (m, s) in by])[0]
        interval, verdict = "", ""
        paired = [by[m, s]["map"] - by["erm", s]["map"] for s in seeds if (m, s) in by and ("erm", s) in by]
        if m != "erm" and len(paired) > 1:
            d, sd = _mean_std(paired)
            half = t_quantile(len(paired) - 1) * sd / math.sqrt(len(paired))
            interval = f"{d:+.4f} [{d - half:+.4f}, {d + half:+.4f}]"
            verdict = "not shown" if d - half <= 0 <= d + half else ("better" if d > 0 else "worse")
        elif m != "erm":
            interval, verdict = "n/a (one seed)", "not shown"
        lines.append(f"| {m} | {mean:.4f} | {std:.4f} | {map50:.4f} | {secs:.0f} | {interval} | {verdict} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], args, path: str) -> str:
    """``map.png``: each method's mAP per seed (dots) and mean, and its paired difference to ERM
    with the 95 % t interval (the table of results.md, drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["method"], r["seed"]): r["map"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for k, m in enumerate(methods):
        maps = [by[m, s] for s in seeds if (m, s) in by]
        left.scatter([k] * len(maps), maps, s=14, color="0.5", zorder=2)
        left.hlines(sum(maps) / len(maps), k - 0.3, k + 0.3, color="C0", lw=2, zorder=3)
    left.set_xticks(range(len(methods)), methods)
    left.set_ylabel("mAP@[.5:.95] (test)")
    left.set_title(f"per seed (dots) and mean (line), {len(seeds)} seeds", fontsize=10)
    others = [m for m in methods if m != "erm"]
    for k, m in enumerate(others):
        paired = [by[m, s] - by["erm", s] for s in seeds if (m, s) in by and ("erm", s) in by]
        if len(paired) < 2:
            continue
        d, sd = _mean_std(paired)
        half = t_quantile(len(paired) - 1) * sd / math.sqrt(len(paired))
        right.errorbar([d], [k], xerr=[[half], [half]], fmt="o", color="C1", capsize=4)
    right.axvline(0.0, color="0.3", lw=1, ls="--")
    right.set_yticks(range(len(others)), others)
    right.invert_yaxis()
    right.set_xlabel("mAP - ERM's mAP, same seed")
    right.set_title("paired difference to ERM, 95 % t interval", fontsize=10)
    fig.suptitle(f"Tiny CenterNet on synthetic 64x64 scenes: {args.epochs} epochs, {args.train_size} "
                 f"training scenes, mixing probability {args.p}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ runs

FIELDS = ["method", "seed", "map", "map50", "seconds", "train_loss", "loss_change"]
# The arguments a result depends on: a results folder holds runs made with one setting of them.
SETTINGS = ("epochs", "train_size", "test_size", "batch_size", "lr", "p", "max_steps")


@functools.lru_cache(maxsize=2)
def _train_scenes(seed: int, n: int):
    return scenes(n, torch.Generator().manual_seed(seed))


@functools.lru_cache(maxsize=1)
def _test_scenes(n: int):
    return scenes(n, torch.Generator().manual_seed(123_456))        # fixed for all seeds


def run_one(method: str, seed: int, args) -> dict:
    """Train and score one (method, seed): a row of results.csv. The same in the main process and
    in a worker (each uses ``args.threads`` torch threads), so ``--jobs`` does not change it."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train_x, train_t = _train_scenes(seed, args.train_size)
    model, losses = train(method, train_x, train_t, seed, args)
    ap, ap50 = evaluate(model, *_test_scenes(args.test_size))
    return {"method": method, "seed": seed, "map": ap, "map50": ap50,
            "seconds": time.perf_counter() - start, "train_loss": losses[-1],
            "loss_change": loss_change(losses)}


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "map": f"{r['map']:.5f}", "map50": f"{r['map50']:.5f}",
                         "seconds": f"{r['seconds']:.1f}", "train_loss": f"{r['train_loss']:.5f}",
                         "loss_change": f"{r['loss_change']:.4f}"})
    return buf.getvalue()


def _load_done(out: str, settings: dict) -> list[dict]:
    """The rows already in ``out`` when it was made with the same settings (the runs to skip);
    none for a new folder; an error for a folder made with other settings."""
    path = os.path.join(out, "settings.json")
    if not os.path.exists(path):
        if os.path.exists(os.path.join(out, "results.csv")):
            raise SystemExit(f"detection_synthetic.py: error: {out} holds results.csv but no settings.json "
                             "(made by an older version?); choose another --out")
        return []
    with open(path) as f:
        old = json.load(f)
    if old != settings:
        diff = ", ".join(f"{k} {old.get(k)!r} there, {settings[k]!r} now"
                         for k in settings if old.get(k) != settings[k])
        raise SystemExit(f"detection_synthetic.py: error: {out} holds runs made with other settings "
                         f"({diff}); choose another --out")
    csv_path = os.path.join(out, "results.csv")
    if not os.path.exists(csv_path):
        return []
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{**r, "seed": int(r["seed"]), **{k: float(r[k]) for k in FIELDS[2:]}} for r in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--p", type=float, default=0.5, help="probability that an image is mixed")
    parser.add_argument("--max-steps", type=int, default=None, help="stop each run after this many steps")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated, from " + ", ".join(METHODS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for this tiny model on shared cores)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: rewrite results.md and map.png from the runs in --out")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--out", default="runs/detection",
                        help="results folder; rerunning into it skips the runs already there")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}")
    if args.jobs < 1:
        parser.error(f"--jobs: expected a whole number >= 1, got {args.jobs}")
    os.makedirs(args.out, exist_ok=True)
    settings = {k: getattr(args, k) for k in SETTINGS}
    rows = _load_done(args.out, settings)
    atomic_write_text(os.path.join(args.out, "settings.json"), json.dumps(settings, indent=1) + "\n")
    done = {(r["method"], r["seed"]) for r in rows}
    todo = [(m, s) for s in range(args.seeds) for m in methods if (m, s) not in done]
    todo = [] if args.report_only else todo
    if done:
        print(f"{len(done)} run(s) already in {args.out}, {len(todo)} to go", flush=True)
    order = {(m, s): (s, methods.index(m) if m in methods else len(methods)) for m, s in done | set(todo)}

    def record(row):
        rows.append(row)
        rows.sort(key=lambda r: order[r["method"], r["seed"]])
        atomic_write_text(os.path.join(args.out, "results.csv"), _csv_text(rows))
        print(f"seed {row['seed']} {row['method']}: mAP {row['map']:.4f}, mAP50 {row['map50']:.4f}, "
              f"{row['seconds']:.0f} s", flush=True)

    if args.jobs == 1:
        for m, s in todo:
            record(run_one(m, s, args))
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(run_one, m, s, args) for m, s in todo]
            for fut in concurrent.futures.as_completed(futures):
                record(fut.result())
    wanted = [r for r in rows if r["seed"] < args.seeds and r["method"] in methods]
    atomic_write_text(os.path.join(args.out, "results.md"), summarise(wanted, args))
    if "erm" in methods:
        tmp = os.path.join(args.out, f"map.tmp{os.getpid()}.png")
        os.replace(plot(wanted, args, tmp), os.path.join(args.out, "map.png"))
    print(summarise(wanted, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
