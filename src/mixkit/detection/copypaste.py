"""Copy-Paste (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation", CVPR 2021, arXiv 2012.07177).

    S ~ subset of the partner's instances, each chosen with probability p_object
    the partner, with S, resized by s ~ U(scale) and placed at a random offset (scale jitter;
        without ``scale``: as it is, at the top-left)
    alpha = union of the masks of S, cut to the base image
    x~ = x_i * (1 - alpha) + x_j * alpha
    the base image's masks lose alpha; boxes are the tight boxes of what remains visible

A base object whose visible fraction of mask pixels falls under ``min_visible`` (default 0:
only fully hidden objects) is dropped, as are objects left under ``min_area`` pixels of box
(a pasted object cut by the image border keeps what is left of it, as in Mosaic). The pasted
objects follow the base image's in the output. Instance masks are required: they are what is
pasted.

Scale jitter (``scale=(low, high)``): the partner image and its pasted masks are resized to
``(max(1, round(s H_j)), max(1, round(s W_j)))`` (bilinear for the image, nearest for the masks,
as Mosaic does) and placed with their top-left corner at ``(dy, dx)``, drawn uniformly among the
whole-pixel offsets that keep the resized partner inside the base image (when it is smaller) or
the base image inside it (when it is larger), on each axis on its own. The paper's large scale
jitter is ``scale=(0.1, 2.0)``, its standard scale jitter ``(0.8, 1.25)``. The paper also jitters
the base image: that is any scale jitter run before this mixer.

Key points of base objects under the pasted pixels are marked invisible; those of pasted objects
move with them and are marked invisible off the image. Draws, in order, one batched call each on
the host: the partners ``(B,)`` (each drawn among the other images), the object choices
``(B, max n)`` uniforms (the first ``n_j`` of row ``i`` are used), and with ``scale`` the jitter
``(B, 3)`` uniforms (scale, row offset, column offset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import targets as T
from .base import DetectionMixer

__all__ = ["CopyPaste", "CopyPasteParams"]


@dataclass(frozen=True)
class CopyPasteParams:
    """``index[i]``: the partner of image ``i``; ``chosen[i]``: the partner's pasted objects
    (indices into its target); with scale jitter ``sizes[i]``: the partner's resized ``(h, w)``
    and ``offsets[i]``: where its top-left corner lands on image ``i``, ``(dy, dx)`` (both None
    without jitter: the partner as it is, at ``(0, 0)``)."""

    index: tuple
    chosen: tuple
    sizes: tuple | None = None
    offsets: tuple | None = None

    @property
    def size(self) -> int:
        return len(self.index)


class CopyPaste(DetectionMixer):
    """Copy-Paste (Ghiasi et al., CVPR 2021): a random subset of the partner's instances pasted
    with their masks onto the base image, occluded instances updated.

    Arguments: ``p_object`` (the probability that each partner instance is pasted, default 0.5),
    ``scale`` (``(low, high)``: the range of the partner's random resize factor, the paper's
    large scale jitter ``(0.1, 2.0)``; default None: no jitter), ``min_visible`` (visible
    fraction of a base object's mask under which it is dropped, default 0.0: only fully hidden
    ones), ``min_area`` (pixels, default 1.0).

    ``mixer(images, targets, generator=g)``, or ``sample`` then ``apply`` (the same output).
    Targets need ``"masks"``. The draws are made on the host; images stay on their device,
    per-object data where it is. Image-level target entries are the base image's.

    Example:

    ```python
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from mixkit.detection import CopyPaste
    >>> masks = torch.zeros(1, 32, 32, dtype=torch.bool)
    >>> masks[:, 4:20, 4:20] = True
    >>> images = torch.rand(2, 3, 32, 32)
    >>> targets = [{"boxes": tv_tensors.BoundingBoxes([[4.0, 4.0, 20.0, 20.0]], format="XYXY",
    ...                                               canvas_size=(32, 32)),
    ...             "labels": torch.tensor([i]), "masks": tv_tensors.Mask(masks)} for i in range(2)]
    >>> out, res = CopyPaste(p_object=1.0)(images, targets, generator=torch.Generator().manual_seed(0))
    >>> res[0]["labels"].tolist(), res[0]["boxes"].tolist()   # the pasted object hides the base one
    ([1], [[4.0, 4.0, 20.0, 20.0]])

    ```
    """

    _options = ("p_object", "scale", "min_visible", "min_area")

    def __init__(self, p_object: float = 0.5, *, scale=None, min_visible: float = 0.0,
                 min_area: float = 1.0):
        if not 0 <= p_object <= 1:
            raise ValueError(f"p_object: expected a probability in [0, 1], got {p_object}")
        if scale is not None:
            ok = isinstance(scale, (tuple, list)) and len(scale) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scale)
            if not ok or not 0 < scale[0] <= scale[1]:
                raise ValueError(f"scale: expected None or (low, high) with 0 < low <= high, got {scale!r}")
            scale = (float(scale[0]), float(scale[1]))
        self.scale = scale
        if not 0 <= min_visible <= 1:
            raise ValueError(f"min_visible: expected a value in [0, 1], got {min_visible}")
        if min_area < 0:
            raise ValueError(f"min_area: expected a value >= 0, got {min_area}")
        self.p_object, self.min_visible = float(p_object), float(min_visible)
        self.min_area = float(min_area)


    def _read(self, images, targets):
        batch = T.read(images, targets, "CopyPaste")
        if "masks" not in batch.objects[0]:
            raise ValueError("targets: CopyPaste expected instance 'masks' in every target (they are what "
                             "is pasted), got none")
        return batch

    def sample(self, images, targets, *, generator=None) -> CopyPasteParams:
        batch = self._read(images, targets)
        b, g = batch.size, T.host(generator)
        index = T.partners(b, g)
        counts = [int(o["boxes"].shape[0]) for o in batch.objects]
        u = torch.rand(b, max(counts + [1]), generator=g)
        chosen = []
        for i, j in enumerate(index):
            picks = (u[i, :counts[j]] < self.p_object).nonzero().flatten().tolist()
            chosen.append(tuple(picks))
        if self.scale is None:
            return CopyPasteParams(tuple(index), tuple(chosen))
        jitter = torch.rand(b, 3, generator=g, dtype=torch.float64).tolist()
        lo, hi = self.scale
        sizes, offsets = [], []
        for i, (j, (us, uy, ux)) in enumerate(zip(index, jitter, strict=True)):
            h, w = batch.images[i].shape[-2:]
            hj, wj = batch.images[j].shape[-2:]
            s = lo + (hi - lo) * us
            sh, sw = max(1, round(hj * s)), max(1, round(wj * s))
            sizes.append((sh, sw))
            offsets.append((_offset(uy, h, sh), _offset(ux, w, sw)))
        return CopyPasteParams(tuple(index), tuple(chosen), tuple(sizes), tuple(offsets))

    def apply(self, images, targets, params: CopyPasteParams):
        batch = self._read(images, targets)
        T.check_params(params, CopyPasteParams, batch, "CopyPaste")
        for j, chosen in zip(params.index, params.chosen, strict=True):
            n_j = batch.objects[j]["boxes"].shape[0]
            if any(k >= n_j for k in chosen):
                raise ValueError(f"params: expected object indices below {n_j} for image {j}, got {chosen}")
        if (params.sizes is None) != (params.offsets is None):
            raise ValueError("params: expected both sizes and offsets (scale jitter) or neither, got one")
        if params.sizes is None:
            geometry = [None] * batch.size
        else:
            if len(params.sizes) != batch.size or len(params.offsets) != batch.size:
                raise ValueError(f"params: expected sizes and offsets for {batch.size} images, got "
                                 f"{len(params.sizes)} and {len(params.offsets)}")
            for size, off in zip(params.sizes, params.offsets, strict=True):
                if len(size) != 2 or len(off) != 2 or not all(isinstance(v, int) for v in (*size, *off)) \
                        or min(size) < 1:
                    raise ValueError(f"params: expected sizes (h, w) of positive ints and offsets (dy, dx) "
                                     f"of ints, got {size} and {off}")
            geometry = list(zip(params.sizes, params.offsets, strict=True))
        stacked = None if batch.stacked is None else torch.empty_like(batch.stacked)
        return self._pairs(batch, stacked, params.index, list(zip(params.chosen, geometry, strict=True)))

    def _one(self, batch, i, j, plan, out=None):
        chosen, geometry = plan
        base = batch.images[i]
        h, w = base.shape[-2:]
        pasted = T.select(batch.objects[j], torch.tensor(chosen, dtype=torch.long))
        partner = batch.images[j].to(base.device, base.dtype)
        if geometry is None:
            pasted["masks"] = T.fit(pasted["masks"], h, w, 0)
            partner = T.fit(partner, h, w, 0)
        else:
            (sh, sw), (dy, dx) = geometry
            hj, wj = partner.shape[-2:]
            pasted = T.move(pasted, (sw / wj, sh / hj), (dx, dy))
            pasted["masks"] = T.place(T.resize(pasted["masks"], sh, sw, nearest=True), h, w, dy, dx, 0)
            partner = T.place(T.resize(partner, sh, sw, nearest=False), h, w, dy, dx, 0)
        alpha = pasted["masks"].bool().any(dim=0).to(base.device)
        out = torch.where(alpha, partner, base, **({} if out is None else {"out": out}))
        own = dict(batch.objects[i])
        m = own["masks"]
        before = T.count(m)
        m = m & ~alpha.to(m.device)
        after = T.count(m)
        visible = after.float() / before.clamp(min=1)
        own["masks"] = m
        own = T.select(own, (visible >= max(self.min_visible, 1e-12)) & (after > 0))
        own = T.hide_keypoints(own, alpha)
        obj = T.finish(T.concat([own, pasted]), h, w, min_area=self.min_area)
        return out, obj


def _offset(u: float, size: int, scaled: int) -> int:
    """A whole-pixel offset of a ``scaled``-long side on a ``size``-long one, uniform over those
    that keep the shorter inside the longer: ``min(0, d) .. max(0, d)`` with ``d = size - scaled``."""
    d = size - scaled
    lo, hi = min(0, d), max(0, d)
    return lo + min(int(u * (hi - lo + 1)), hi - lo)
