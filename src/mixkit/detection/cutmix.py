"""CutMix for detection (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers
with Localizable Features", ICCV 2019, arXiv 1905.04899), with the objects cut along.

    lam ~ Beta(alpha, alpha);  box side = floor(S * sqrt(1 - lam)) per axis;  centre ~ U(grid)
    box clipped to both images;  x~ = x_i outside the box, x_j inside it

Objects (``min_visible`` = v):

- the partner's: clipped to the box (masks cut to it, boxes the tight box of what remains);
  kept when the fraction of the object inside the box is at least v;
- the base image's: the fraction outside the box (mask pixels where masks are given, box area
  otherwise) is the visible fraction; under v (or none) the object is dropped; otherwise its
  mask loses the pasted pixels and its box becomes the tight box of what remains
  (``occluded="clip"``: without masks, the tight box of the box minus the paste) or stays as it
  was (``occluded="keep"``, boxes only; masks are always cut).

Key points under the pasted pixels (the base image's) or outside them (the partner's) are marked
invisible. Draws, in order, one batched call each on the host: the partners ``(B,)`` (each drawn
among the other images), lam ``(B,)``, the box centres ``(B, 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..functional import sampling
from . import targets as T
from .base import DetectionMixer

__all__ = ["CutMix", "CutMixParams"]


@dataclass(frozen=True)
class CutMixParams:
    """``index[i]``: the partner of image ``i``; ``boxes[i]``: the pasted ``(x1, y1, x2, y2)``
    (whole pixels, x2 and y2 excluded); ``lam[i]``: the drawn lam."""

    index: tuple
    boxes: tuple
    lam: tuple

    @property
    def size(self) -> int:
        return len(self.index)


def box_difference(boxes, paste):
    """The tight box of each XYXY box minus the rectangle ``paste`` (exact for rectangles: a
    side shrinks only when the paste covers the box's whole extent along the other axis)."""
    x1, y1, x2, y2 = boxes.unbind(1)
    px1, py1, px2, py2 = (float(v) for v in paste)
    full_y = (py1 <= y1) & (py2 >= y2)
    full_x = (px1 <= x1) & (px2 >= x2)
    nx1 = torch.where(full_y & (px1 <= x1) & (px2 > x1), torch.clamp(x1, min=px2), x1)
    nx2 = torch.where(full_y & (px2 >= x2) & (px1 < x2), torch.clamp(x2, max=px1), x2)
    ny1 = torch.where(full_x & (py1 <= y1) & (py2 > y1), torch.clamp(y1, min=py2), y1)
    ny2 = torch.where(full_x & (py2 >= y2) & (py1 < y2), torch.clamp(y2, max=py1), y2)
    return torch.stack([nx1, ny1, nx2, ny2], dim=1)


def inside_fraction(obj: dict, rect) -> torch.Tensor:
    """The fraction of each object inside ``rect`` (mask pixels, or box area without masks)."""
    if "masks" in obj:
        m = obj["masks"]
        total = T.count(m).float()
        inside = T.count(m[:, rect[1]:rect[3], rect[0]:rect[2]]).float()
        return torch.where(total > 0, inside / total.clamp(min=1), torch.zeros_like(total))
    b = obj["boxes"]
    x1, y1, x2, y2 = (float(v) for v in rect)
    iw = (b[:, 2].clamp(max=x2) - b[:, 0].clamp(min=x1)).clamp(min=0)
    ih = (b[:, 3].clamp(max=y2) - b[:, 1].clamp(min=y1)).clamp(min=0)
    area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clamp(min=0)
    return torch.where(area > 0, iw * ih / area.clamp(min=1e-12), torch.zeros_like(area))


class CutMix(DetectionMixer):
    """CutMix for detection: a box of the partner pasted, its objects brought along.

    Arguments: ``alpha`` (Beta concentration, default 1.0), ``min_visible`` (the visible
    fraction under which an object is dropped, default 0.2; 0 drops only hidden ones),
    ``occluded`` (``"clip"`` or ``"keep"``: the box of a partly covered base object, without
    masks), ``min_area`` (pixels, default 1.0).

    ``mixer(images, targets, generator=g)``, or ``sample`` then ``apply`` (the same output). The
    draws are made on the host; images stay on their device, per-object data where it is.
    Image-level target entries are the base image's.

    Example:

    ```python
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from mixkit.detection import CutMix
    >>> images = torch.rand(2, 3, 32, 32)
    >>> targets = [{"boxes": tv_tensors.BoundingBoxes([[4.0, 4.0, 20.0, 20.0]], format="CXCYWH",
    ...                                               canvas_size=(32, 32)),
    ...             "labels": torch.tensor([i])} for i in range(2)]
    >>> out, res = CutMix()(images, targets, generator=torch.Generator().manual_seed(0))
    >>> out.shape, res[0]["boxes"].format.name
    (torch.Size([2, 3, 32, 32]), 'CXCYWH')

    ```
    """

    _options = ("alpha", "min_visible", "occluded", "min_area")

    def __init__(self, alpha: float = 1.0, *, min_visible: float = 0.2, occluded: str = "clip",
                 min_area: float = 1.0):
        if not (alpha > 0 and alpha < float("inf")):
            raise ValueError(f"alpha: expected a finite value > 0, got {alpha}")
        if not 0 <= min_visible <= 1:
            raise ValueError(f"min_visible: expected a value in [0, 1], got {min_visible}")
        if occluded not in ("clip", "keep"):
            raise ValueError(f"occluded: expected 'clip' or 'keep', got {occluded!r}")
        if min_area < 0:
            raise ValueError(f"min_area: expected a value >= 0, got {min_area}")
        self.alpha, self.min_visible, self.occluded = float(alpha), float(min_visible), occluded
        self.min_area = float(min_area)


    def sample(self, images, targets, *, generator=None) -> CutMixParams:
        batch = T.read(images, targets, "CutMix")
        b, g = batch.size, T.host(generator)
        index = T.partners(b, g)
        lam = sampling.sample_beta(self.alpha, size=b, generator=g).tolist()
        centre = torch.rand(b, 2, generator=g, dtype=torch.float64).tolist()
        boxes = []
        for i, j in enumerate(index):
            h = min(batch.images[i].shape[-2], batch.images[j].shape[-2])
            w = min(batch.images[i].shape[-1], batch.images[j].shape[-1])
            r = (1.0 - lam[i]) ** 0.5
            ch, cw = int(h * r), int(w * r)
            cx, cy = min(int(centre[i][0] * w), w - 1), min(int(centre[i][1] * h), h - 1)
            boxes.append((max(cx - cw // 2, 0), max(cy - ch // 2, 0), min(cx + cw - cw // 2, w),
                          min(cy + ch - ch // 2, h)))
        return CutMixParams(tuple(index), tuple(boxes), tuple(lam))

    def apply(self, images, targets, params: CutMixParams):
        batch = T.read(images, targets, "CutMix")
        T.check_params(params, CutMixParams, batch, "CutMix")
        stacked = None if batch.stacked is None else batch.stacked.clone()  # the batch copied at once
        return self._pairs(batch, stacked, params.index, params.boxes)

    def _one(self, batch, i, j, rect, out=None):
        base = batch.images[i]
        h, w = base.shape[-2:]
        x1, y1, x2, y2 = rect
        out = base.clone() if out is None else out
        out[:, y1:y2, x1:x2].copy_(batch.images[j][:, y1:y2, x1:x2])
        region = None  # the pasted pixels as an (H, W) mask: made only for key points to test
        if any(T.has_keypoints(batch.objects[k]) for k in (i, j)):
            region = torch.zeros(h, w, dtype=torch.bool, device=base.device)
            region[y1:y2, x1:x2] = True
        own = batch.objects[i]
        keep_own = (1.0 - inside_fraction(own, rect)) >= max(self.min_visible, 1e-12)
        own = T.select(own, keep_own)
        if "masks" in own:  # a fresh copy (select): the pasted part is cleared in place
            own["masks"][:, y1:y2, x1:x2].zero_()
        elif self.occluded == "clip":
            own["boxes"] = box_difference(own["boxes"], rect)
        own = own if region is None else T.hide_keypoints(own, region)
        other = dict(batch.objects[j])
        if "masks" in other:
            other["masks"] = T.fit(other["masks"], h, w, 0)
        keep_other = inside_fraction(other, rect) >= max(self.min_visible, 1e-12)
        other = T.select(other, keep_other)
        if "masks" in other:  # only the pasted part of the partner's masks
            m = other["masks"]
            cut = m.new_zeros(m.shape)
            cut[:, y1:y2, x1:x2].copy_(m[:, y1:y2, x1:x2])
            other["masks"] = cut
        b = other["boxes"]
        other["boxes"] = torch.stack([b[:, 0].clamp(x1, x2), b[:, 1].clamp(y1, y2),
                                      b[:, 2].clamp(x1, x2), b[:, 3].clamp(y1, y2)], dim=1)
        other = other if region is None else T.hide_keypoints(other, ~region)
        obj = T.finish(T.concat([own, other]), h, w, min_area=self.min_area)
        return out, obj
