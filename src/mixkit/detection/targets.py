"""Detection targets: reading and checking a call's images and targets, box formats, placing
images and masks on a canvas, and filtering the per-object fields together.

A call is ``mixer(images, targets)`` as in torchvision's detection transforms:

- ``images``: a ``(B, C, H, W)`` tensor (or ``tv_tensors.Image``), or a list of ``(C, H_i, W_i)``
  images (sizes may differ).
- ``targets``: a list of B dicts with ``"boxes"`` (``tv_tensors.BoundingBoxes`` of shape
  ``(n_i, 4)``; a plain tensor is read as XYXY), ``"labels"`` (``(n_i,)``), optionally ``"masks"``
  (``(n_i, H_i, W_i)`` instance masks) and ``"keypoints"`` (``(n_i, K, 2)``), and any other
  tensor whose first dimension is ``n_i`` (per-object: filtered and moved with the objects).
  Anything else (``"image_id"``, strings, ...) is an image-level entry, taken from the base image;
  a tensor whose first dimension happens to be ``n_i`` counts as per-object (give image-level
  tensors as 0-d tensors).

Internally boxes are XYXY floats in pixel-edge coordinates (a box ``[x1, x2)`` covers the pixel
columns ``x1 .. x2 - 1``); the output is converted back to the input format, with the
``canvas_size`` of the output image. torchvision is never imported here: its ``tv_tensors`` are
read from ``sys.modules`` (the inputs are its types, so it is loaded already).

Key points: an output target with ``"keypoints"`` also has ``"keypoints_visible"`` (``(n, K)``
bool, combined with the input's when it has one): a key point outside the output image, or under
pasted pixels, is marked invisible; its coordinates still move with the image.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Batch", "read", "write", "select", "concat", "place", "fit", "count", "mask_boxes", "shift",
           "finish", "keep_boxes", "move", "FORMATS", "check_params"]

FORMATS = ("XYXY", "XYWH", "CXCYWH")
_FIXED = ("boxes", "labels", "masks", "keypoints", "keypoints_visible")


def _tv():
    return sys.modules.get("torchvision.tv_tensors")


def _is(x, name: str) -> bool:
    tv = _tv()
    return tv is not None and isinstance(x, getattr(tv, name))


def to_xyxy(b: Tensor, fmt: str) -> Tensor:
    if fmt == "XYWH":
        return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
    if fmt == "CXCYWH":
        return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], dim=1)
    return b.clone()


def from_xyxy(b: Tensor, fmt: str) -> Tensor:
    if fmt == "XYWH":
        return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], dim=1)
    if fmt == "CXCYWH":
        return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1)
    return b


@dataclass
class Batch:
    """A checked call: plain ``(C, H, W)`` images, one object dict per image (boxes XYXY float),
    the image-level entries, and what is needed to give the output the input's types."""

    images: list
    objects: list
    extras: list
    fmt: str = "XYXY"
    batched: bool = True
    like: object = None
    box_dtype: torch.dtype = torch.float32
    tv_boxes: bool = False
    tv_masks: bool = False
    tv_keypoints: bool = False
    stacked: Tensor | None = None  # the (B, C, H, W) input as a plain tensor, when it was one
    size: int = field(init=False)

    def __post_init__(self):
        self.size = len(self.images)


def _read_images(images) -> tuple[list, bool]:
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"images: expected a (B, C, H, W) tensor or a list of (C, H, W) images, "
                             f"got a tensor of shape {tuple(images.shape)}")
        plain = images.as_subclass(Tensor)
        return plain, True
    if isinstance(images, (list, tuple)):
        out = []
        for i, im in enumerate(images):
            if not isinstance(im, Tensor) or im.dim() != 3:
                got = tuple(im.shape) if isinstance(im, Tensor) else type(im).__name__
                raise ValueError(f"images[{i}]: expected a (C, H, W) tensor, got {got}")
            out.append(im.as_subclass(Tensor))
        return out, False
    raise ValueError(f"images: expected a (B, C, H, W) tensor or a list of (C, H, W) images, "
                     f"got {type(images).__name__}")


def _box_format(boxes, where: str) -> str:
    if not _is(boxes, "BoundingBoxes"):
        return "XYXY"
    fmt = boxes.format.name if hasattr(boxes.format, "name") else str(boxes.format)
    if fmt not in FORMATS:
        raise ValueError(f"{where}: expected an axis-aligned box format ({', '.join(FORMATS)}), got {fmt}; "
                         "rotated boxes are not supported")
    return fmt


def _read_target(t, i: int, hw: tuple, fmt: str | None):
    where = f"targets[{i}]"
    if not isinstance(t, dict):
        raise ValueError(f"{where}: expected a dict, got {type(t).__name__}")
    if "boxes" not in t:
        raise ValueError(f"{where}: expected a 'boxes' entry, got keys {sorted(map(str, t))}")
    boxes = t["boxes"]
    own = _box_format(boxes, f"{where}['boxes']")
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{where}['boxes']: expected shape (n, 4), got {got}")
    if fmt is not None and own != fmt:
        raise ValueError(f"{where}['boxes']: expected the format of targets[0]['boxes'] ({fmt}), got {own}")
    n = boxes.shape[0]
    if "labels" not in t:
        raise ValueError(f"{where}: expected a 'labels' entry, got keys {sorted(map(str, t))}")
    obj, extra = {}, {}
    for key, value in t.items():
        if key == "boxes":
            continue
        if isinstance(value, Tensor) and (value.dim() >= 1 and value.shape[0] == n or key in _FIXED):
            _check_field(key, value, n, hw, where)
            obj[key] = value.as_subclass(Tensor)
        else:
            extra[key] = value
    obj["boxes"] = to_xyxy(boxes.as_subclass(Tensor).float(), own)
    if "keypoints" in obj:
        obj["keypoints"] = obj["keypoints"].float()
        if "keypoints_visible" not in obj:
            obj["keypoints_visible"] = torch.ones(obj["keypoints"].shape[:2], dtype=torch.bool,
                                                  device=obj["keypoints"].device)
    return own, obj, extra


def _check_field(key, value, n, hw, where):
    if value.dim() == 0 or value.shape[0] != n:
        raise ValueError(f"{where}['{key}']: expected {n} entries (one per box), "
                         f"got shape {tuple(value.shape)}")
    if key == "masks" and tuple(value.shape[1:]) != tuple(hw):
        raise ValueError(f"{where}['masks']: expected shape (n, H, W) = ({n}, {hw[0]}, {hw[1]}) matching "
                         f"the boxes and the image, got {tuple(value.shape)}")
    if key == "keypoints" and (value.dim() != 3 or value.shape[-1] != 2):
        raise ValueError(f"{where}['keypoints']: expected shape (n, K, 2), "
                         f"got {tuple(value.shape)}")


def read(images, targets, owner: str) -> Batch:
    """Check a call's ``images`` and ``targets`` and read them (see the module docstring)."""
    plain, batched = _read_images(images)
    stacked = plain if batched else None
    plain = list(plain.unbind(0)) if batched else plain
    if not isinstance(targets, (list, tuple)) or len(targets) != len(plain):
        got = f"{len(targets)}" if isinstance(targets, (list, tuple)) else f"a {type(targets).__name__}"
        raise ValueError(f"targets: expected a list of {len(plain)} dicts (one per image), got {got}")
    if not plain:
        raise ValueError(f"images: {owner} expected at least one image, got none")
    fmt, objects, extras = None, [], []
    for i, (im, t) in enumerate(zip(plain, targets, strict=True)):
        fmt, obj, extra = _read_target(t, i, im.shape[-2:], fmt)
        if objects and set(obj) != set(objects[0]):
            raise ValueError(f"targets[{i}]: expected the per-object fields of targets[0] "
                             f"{sorted(objects[0])}, got {sorted(obj)}")
        objects.append(obj)
        extras.append(extra)
    first = targets[0]
    dtype = first["boxes"].dtype if first["boxes"].is_floating_point() else torch.float32
    return Batch(plain, objects, extras, fmt=fmt, batched=batched, like=images, box_dtype=dtype,
                 tv_boxes=_is(first["boxes"], "BoundingBoxes"), tv_masks=_is(first.get("masks"), "Mask"),
                 tv_keypoints=_is(first.get("keypoints"), "KeyPoints"), stacked=stacked)


def _wrap_image(out: Tensor, like):
    if _is(like, "Image"):
        return _tv().Image(out)
    return out


def write(batch: Batch, images: list, objects: list, extras: list | None = None):
    """The output ``(images, targets)``: images stacked when the input was a batch (``images``
    may be given stacked already, as a ``(B, C, H, W)`` tensor), boxes in the input format with the
    output's ``canvas_size``, masks and key points in their input types."""
    tv, extras = _tv(), batch.extras if extras is None else extras
    targets = []
    for im, obj, extra in zip(images, objects, extras, strict=True):
        h, w = im.shape[-2:]
        out = dict(extra)
        for key, value in obj.items():
            if key == "boxes":
                value = from_xyxy(value, batch.fmt).to(batch.box_dtype)
                if batch.tv_boxes:
                    value = tv.BoundingBoxes(value, format=batch.fmt, canvas_size=(h, w))
            elif key == "masks" and batch.tv_masks:
                value = tv.Mask(value)
            elif key == "keypoints" and batch.tv_keypoints:
                value = tv.KeyPoints(value, canvas_size=(h, w))
            out[key] = value
        targets.append(out)
    if batch.batched:
        stacked = images if isinstance(images, Tensor) else torch.stack(images)
        return (_tv().wrap(stacked, like=batch.like) if _is(batch.like, "Image") else stacked), targets
    likes = batch.like if isinstance(batch.like, (list, tuple)) else [None] * len(images)
    return [_wrap_image(im, like) for im, like in zip(images, likes, strict=True)], targets


def select(obj: dict, keep: Tensor) -> dict:
    """Every per-object field of ``obj`` indexed by ``keep`` (a bool mask or indices)."""
    return {k: v[keep.to(v.device)] for k, v in obj.items()}


def concat(objs: list) -> dict:
    """The objects of several dicts (same fields, same canvas) in one, in order."""
    out = {}
    for key in objs[0]:
        parts = [o[key] for o in objs]
        dev = parts[0].device
        out[key] = torch.cat([p.to(dev) for p in parts], dim=0)
    return out


def place(src: Tensor, h: int, w: int, dy: int, dx: int, fill=0) -> Tensor:
    """A ``(..., h, w)`` canvas filled with ``fill`` with ``src`` (``(..., hs, ws)``) drawn with
    its top-left corner at row ``dy``, column ``dx`` (cropped to the canvas)."""
    out = src.new_full((*src.shape[:-2], h, w), fill)
    hs, ws = src.shape[-2:]
    y0, x0, y1, x1 = max(dy, 0), max(dx, 0), min(dy + hs, h), min(dx + ws, w)
    if y1 > y0 and x1 > x0:
        out[..., y0:y1, x0:x1].copy_(src[..., y0 - dy:y1 - dy, x0 - dx:x1 - dx])
    return out


def resize(x: Tensor, h: int, w: int, nearest: bool) -> Tensor:
    """``x`` (``(C, H, W)`` image or ``(n, H, W)`` masks) resized to ``(h, w)``: bilinear
    (``align_corners=False``, no antialiasing; integer images rounded and clamped to their range)
    or nearest (masks). ``x`` itself when it has that size already."""
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if x.shape[0] == 0:
        return x.new_zeros((0, h, w))
    if nearest:
        return F.interpolate(x[None].float(), size=(h, w), mode="nearest")[0].to(x.dtype)
    y = F.interpolate(x[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    if x.is_floating_point():
        return y.to(x.dtype)
    info = torch.iinfo(x.dtype)
    return y.round().clamp(info.min, info.max).to(x.dtype)


def fit(src: Tensor, h: int, w: int, fill=0) -> Tensor:
    """``place(src, h, w, 0, 0, fill)``, or ``src`` itself when it is ``(h, w)`` already (the
    caller must not write into the result)."""
    if tuple(src.shape[-2:]) == (h, w):
        return src
    return place(src, h, w, 0, 0, fill)


def _flag(m: Tensor) -> Tensor:
    """``m != 0`` as a uint8 tensor (a bool mask is viewed, not copied)."""
    return m.view(torch.uint8) if m.dtype == torch.bool else (m != 0).view(torch.uint8)


def count(masks: Tensor) -> Tensor:
    """The number of set pixels of each ``(n, H, W)`` mask (int64; summed in int32, which holds
    any image's pixel count)."""
    return _flag(masks).flatten(1).sum(1, dtype=torch.int32).long()


def mask_boxes(masks: Tensor) -> Tensor:
    """The tight XYXY box of each ``(n, H, W)`` mask in pixel-edge coordinates (``x2`` is one past
    the last column); an empty mask gets ``(0, 0, 0, 0)``."""
    n, h, w = masks.shape
    if n == 0 or h == 0 or w == 0:
        return torch.zeros(n, 4, device=masks.device)
    m = _flag(masks)
    cols, rows = m.amax(dim=1), m.amax(dim=2)
    x1 = cols.argmax(dim=1)
    x2 = w - cols.flip(1).argmax(dim=1)
    y1 = rows.argmax(dim=1)
    y2 = h - rows.flip(1).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    return torch.where(cols.amax(dim=1, keepdim=True) > 0, boxes, torch.zeros_like(boxes))


def shift(boxes: Tensor, dx: int, dy: int) -> Tensor:
    """Boxes moved by ``(dx, dy)``, except the empty ``(0, 0, 0, 0)`` ones."""
    if boxes.shape[0] == 0:
        return boxes
    empty = (boxes == 0).all(dim=1, keepdim=True)
    moved = boxes + torch.tensor([dx, dy, dx, dy], dtype=boxes.dtype, device=boxes.device)
    return torch.where(empty, boxes, moved)


def move(obj: dict, scale: tuple, shift: tuple) -> dict:
    """Boxes and key points scaled by ``(sx, sy)`` then shifted by ``(dx, dy)``."""
    out = dict(obj)
    s = torch.tensor([scale[0], scale[1]] * 2, device=obj["boxes"].device)
    d = torch.tensor([shift[0], shift[1]] * 2, device=obj["boxes"].device)
    out["boxes"] = obj["boxes"] * s + d
    if "keypoints" in obj:
        kp = obj["keypoints"]
        out["keypoints"] = kp * s[:2].to(kp.device) + d[:2].to(kp.device)
    return out


def finish(obj: dict, h: int, w: int, *, min_area: float = 0.0, min_side: float = 0.0,
           from_masks: bool = True) -> dict:
    """Objects on an ``(h, w)`` output: boxes clipped to it (the tight box of the mask where
    masks are given and ``from_masks``), key points outside it marked invisible, and objects with
    an empty box, or one under ``min_area`` pixels or with a side under ``min_side``, dropped."""
    out = dict(obj)
    b = obj["boxes"]
    b = torch.stack([b[:, 0].clamp(0, w), b[:, 1].clamp(0, h), b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)], 1)
    if from_masks and "masks" in obj:
        b = mask_boxes(obj["masks"]).to(b.device)
    out["boxes"] = b
    keep = keep_boxes(b, min_area, min_side)
    if "keypoints" in obj:
        kp = obj["keypoints"]
        inside = (kp[..., 0] >= 0) & (kp[..., 0] < w) & (kp[..., 1] >= 0) & (kp[..., 1] < h)
        out["keypoints_visible"] = obj["keypoints_visible"] & inside.to(obj["keypoints_visible"].device)
    if bool(keep.all()):  # the fields are the caller's fresh tensors: no copy needed
        return out
    return select(out, keep)


def keep_boxes(b: Tensor, min_area: float = 0.0, min_side: float = 0.0) -> Tensor:
    """Which XYXY boxes are not empty, have ``min_area`` pixels and sides of ``min_side``."""
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return (bw > 0) & (bh > 0) & (bw * bh >= min_area) & (bw >= min_side) & (bh >= min_side)


def has_keypoints(obj: dict) -> bool:
    """Whether ``obj`` holds key points to move or hide (an entry with at least one)."""
    return "keypoints" in obj and obj["keypoints"].numel() > 0


def hide_keypoints(obj: dict, covered: Tensor) -> dict:
    """Key points on a pixel where ``covered`` (``(H, W)`` bool) is True marked invisible."""
    if not has_keypoints(obj):
        return obj
    h, w = covered.shape
    kp = obj["keypoints"]
    x = kp[..., 0].floor().long().clamp(0, w - 1)
    y = kp[..., 1].floor().long().clamp(0, h - 1)
    hidden = covered.to(kp.device)[y, x]
    out = dict(obj)
    out["keypoints_visible"] = obj["keypoints_visible"] & ~hidden.to(obj["keypoints_visible"].device)
    return out


def check_params(params, cls, batch: Batch, owner: str) -> None:
    if not isinstance(params, cls):
        raise ValueError(f"params: expected {cls.__name__} from {owner}.sample, got {type(params).__name__}")
    if params.size != batch.size:
        raise ValueError(f"params: expected parameters drawn for {batch.size} images, got {params.size}")


def host(generator):
    """The CPU generator the geometry is drawn from (see ``functional.sampling.host_generator``)."""
    from ..functional.sampling import host_generator

    return host_generator(generator)


def partners(b: int, generator) -> list:
    """One partner per image, drawn uniformly among the other images (itself when ``b == 1``):
    ``(i + 1 + U{0 .. b - 2}) mod b``, one batched draw of ``(b,)``."""
    if b == 1:
        torch.randint(0, 1, (1,), generator=generator)
        return [0]
    step = torch.randint(0, b - 1, (b,), generator=generator)
    return ((torch.arange(b) + 1 + step) % b).tolist()
