"""The detection gallery: ``detection.png``, one row per mixer of ``mixkit.detection`` (Mosaic,
MixUp, CutMix, Copy-Paste), the inputs it read and its output, with boxes, instance masks and
key points drawn by torchvision's ``draw_bounding_boxes``, ``draw_segmentation_masks`` and
``draw_keypoints`` (only the key points marked visible are drawn on the outputs).

The scenes are synthetic: rectangles (class 1) and ellipses (class 2) of random colours on a
striped, noisy background, each with its instance mask, its tight box and three key points on
its mask (centre, top and left extremes). ``python -m mixkit.harness.analysis.detection_gallery
--out docs/gallery`` writes the picture; ``make_gallery`` draws it too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["detection_scenes", "plot_detection", "main"]

CLASS_NAMES = {1: "rect", 2: "ellipse"}
CLASS_COLOURS = {1: "yellow", 2: "cyan"}
# one colour per object id (``ids``: 10 * image index + object index, carried by the mixers)
INSTANCE_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#f032e6", "#bcf60c",
                    "#fabebe", "#008080", "#e6beff", "#9a6324", "#800000", "#aaffc3", "#808000",
                    "#000075", "#ffffff", "#46f0f0", "#ffd8b1"]


def _object(size: int, kind: int, g: torch.Generator) -> Tensor:
    """One random object's mask (rectangle or ellipse) on a ``size`` x ``size`` image."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    h, w = (int(v) for v in torch.randint(size // 6, size // 2, (2,), generator=g))
    y0 = int(torch.randint(0, size - h + 1, (1,), generator=g))
    x0 = int(torch.randint(0, size - w + 1, (1,), generator=g))
    if kind == 1:
        return (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
    cy, cx = y0 + (h - 1) / 2, x0 + (w - 1) / 2
    return ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1.0


def _keypoints(mask: Tensor) -> Tensor:
    """Three key points ``(x, y)`` at pixel centres of ``mask``: its centroid's nearest pixel,
    its topmost and its leftmost pixel."""
    ys, xs = mask.nonzero(as_tuple=True)
    cy, cx = ys.float().mean(), xs.float().mean()
    centre = int(((ys - cy) ** 2 + (xs - cx) ** 2).argmin())
    top, left = int(ys.argmin()), int(xs.argmin())
    return torch.tensor([[xs[i] + 0.5, ys[i] + 0.5] for i in (centre, top, left)], dtype=torch.float32)


def _scene(size: int, g: torch.Generator, index: int) -> tuple[Tensor, dict]:
    from torchvision import tv_tensors

    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    tint = 60 + 60 * torch.rand(3, 1, 1, generator=g)
    stripes = 25 * torch.sin((xx + yy).float() * 0.6 + float(torch.rand(1, generator=g)) * 6.0)
    image = tint + stripes + 18 * torch.randn(3, size, size, generator=g)
    masks, labels = [], []
    for _ in range(int(torch.randint(2, 4, (1,), generator=g))):
        kind = int(torch.randint(1, 3, (1,), generator=g))
        m = _object(size, kind, g)
        for earlier in masks:   # a later object hides the earlier ones where it lies
            earlier &= ~m
        image[:, m] = 120 + 135 * torch.rand(3, 1, generator=g)
        masks.append(m)
        labels.append(kind)
    keep = [i for i, m in enumerate(masks) if int(m.sum()) >= 4]
    masks_t = torch.stack([masks[i] for i in keep])
    boxes = torch.stack([_tight_box(m) for m in masks_t])
    target = {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(size, size)),
              "labels": torch.tensor([labels[i] for i in keep]),
              "ids": torch.arange(len(keep)) + 10 * index,
              "masks": tv_tensors.Mask(masks_t),
              "keypoints": tv_tensors.KeyPoints(torch.stack([_keypoints(m) for m in masks_t]),
                                                canvas_size=(size, size))}
    return image.clamp(0, 255).to(torch.uint8), target


def _tight_box(mask: Tensor) -> Tensor:
    ys, xs = mask.nonzero(as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def detection_scenes(n: int, size: int, *, generator: torch.Generator) -> tuple[Tensor, list[dict]]:
    """``n`` synthetic scenes: a ``(n, 3, size, size)`` uint8 batch and its targets (XYXY
    ``BoundingBoxes``, ``labels`` 1 or 2, bool instance ``Mask``, three ``KeyPoints`` per object,
    ``ids``: ``10 * image + object``)."""
    pairs = [_scene(size, generator, i) for i in range(n)]
    return torch.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def _draw(image: Tensor, target: dict, zoom: int = 3) -> Tensor:
    """``image`` (uint8, ``(3, H, W)``) enlarged ``zoom`` times (nearest), with its instance
    masks, boxes (coloured by class, labelled) and visible key points drawn on it."""
    from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

    big = image.repeat_interleave(zoom, -2).repeat_interleave(zoom, -1)
    masks = target["masks"].as_subclass(Tensor).bool()
    n = masks.shape[0]
    if n == 0:
        return big
    ids = [int(v) for v in target["ids"]]
    colours = [INSTANCE_COLOURS[(3 * (i // 10) + i % 10) % len(INSTANCE_COLOURS)] for i in ids]
    big_masks = masks.repeat_interleave(zoom, -2).repeat_interleave(zoom, -1)
    out = draw_segmentation_masks(big, big_masks, alpha=0.45, colors=colours)
    boxes = target["boxes"].as_subclass(Tensor).float() * zoom
    labels = [int(v) for v in target["labels"]]
    out = draw_bounding_boxes(out, boxes, colors=[CLASS_COLOURS[k] for k in labels], width=2)
    points = target["keypoints"].as_subclass(Tensor).float() * zoom
    visible = target.get("keypoints_visible")
    for i in range(n):
        shown = points[i] if visible is None else points[i][visible[i].bool()]
        if shown.shape[0]:
            out = draw_keypoints(out, shown[None], colors=colours[i], radius=3)
    return out


def _rows() -> list[tuple[str, object]]:
    from mixkit.detection import CopyPaste, CutMix, MixUp, Mosaic

    return [("Mosaic(scale=(0.6, 1.0), fill=114,\noutput_size=2*size)", Mosaic(scale=(0.6, 1.0))),
            ("MixUp(alpha=32.0)", MixUp(alpha=32.0)),
            ("CutMix(alpha=1.0, min_visible=0.2)", CutMix(alpha=1.0, min_visible=0.2)),
            ("CopyPaste(p_object=0.7,\nmin_visible=0.0)", CopyPaste(p_object=0.7)),
            ("CopyPaste(p_object=0.7,\nscale=(0.5, 1.5))", CopyPaste(p_object=0.7, scale=(0.5, 1.5)))]


def _inputs(params, before: dict, after: dict) -> tuple[list[int], str]:
    """The batch indices output 0 was made from, and a note on how (with how many of the base
    image's objects, ``before``, the output ``after`` kept)."""
    if hasattr(params, "tiles"):
        xc, yc = params.centres[0]
        return list(params.tiles[0]), f"centre ({xc}, {yc}) on the canvas"
    j = params.index[0]
    if hasattr(params, "lam") and not hasattr(params, "boxes"):
        return [0, j], f"lam = {params.lam[0]:.2f}\n(the base image's weight)"
    kept = f"{int((after['ids'] // 10 == 0).sum())} of {int(before['ids'].numel())} base objects kept"
    if hasattr(params, "boxes"):
        return [0, j], kept + "\npasted box x {0}..{2}, y {1}..{3}".format(*params.boxes[0])
    note = kept + f"\npartner's objects {list(params.chosen[0])} pasted"
    if getattr(params, "sizes", None) is not None:
        (sh, sw), (dy, dx) = params.sizes[0], params.offsets[0]
        note += f",\nresized to {sh}x{sw}, top-left at ({dx}, {dy})"
    return [0, j], note


def plot_detection(path, *, generator: torch.Generator, size: int = 64, batch: int = 6) -> str:
    """Draw ``detection.png``: for each detection mixer, the inputs of the first output (Mosaic's
    four tiles; the base image and its partner for the others) and that output."""
    from .gallery import _plt, _save

    plt = _plt()
    images, targets = detection_scenes(batch, size, generator=generator)
    rows = _rows()
    fig, axes = plt.subplots(len(rows), 5, figsize=(13.0, 13.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1, 2],
                                          "height_ratios": [2.1] + [1.25] * (len(rows) - 1)})
    for r, (title, mixer) in enumerate(rows):
        params = mixer.sample(images, targets, generator=generator)
        out_images, out_targets = mixer.apply(images, targets, params)
        used, note = _inputs(params, targets[0], out_targets[0])
        for c, k in enumerate(used):
            ax = axes[r][c]
            ax.imshow(_draw(images[k], targets[k]).permute(1, 2, 0).numpy(), interpolation="nearest")
            role = f"tile {c}" if len(used) == 4 else ("base" if c == 0 else "partner")
            ax.set_title(f"input {k} ({role})", fontsize=9)
        ax = axes[r][4 if len(used) == 4 else len(used)]   # the output at its own scale
        ax.imshow(_draw(out_images[0], out_targets[0]).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(f"output 0: {int(out_targets[0]['labels'].numel())} objects\n{note}", fontsize=9)
        for c in range(len(used) + 1 if len(used) < 4 else 5, 5):
            axes[r][c].axis("off")
        axes[r][0].set_ylabel(title, fontsize=9, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"mixkit.detection on synthetic {size}x{size} scenes (batch of {batch}): boxes "
                 "(yellow: rect, cyan: ellipse), instance masks\nand visible key points, "
                 "one colour per object (it keeps its colour through the mixer)", fontsize=10)
    return _save(plt, fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write detection.png (the detection mixers).")
    parser.add_argument("--out", default="docs/gallery", help="folder for the PNG")
    parser.add_argument("--seed", type=int, default=0, help="torch.Generator seed")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    print(plot_detection(os.path.join(args.out, "detection.png"),
                         generator=torch.Generator().manual_seed(args.seed)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
