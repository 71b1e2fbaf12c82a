"""Copy-Paste (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation", CVPR 2021, arXiv 2012.07177), without the large scale jitter.

    S ~ subset of the partner's instances, each chosen with probability p_object
    alpha = union of the masks of S (the partner drawn at the top-left, cut to the base image)
    x~ = x_i * (1 - alpha) + x_j * alpha
    the base image's masks lose alpha; boxes are the tight boxes of what remains visible

A base object whose visible fraction of mask pixels falls under ``min_visible`` (default 0:
only fully hidden objects) is dropped, as are objects left under ``min_area`` pixels of box.
The pasted objects follow the base image's in the output. Instance masks are required: they
are what is pasted. The paper's large scale jitter (resizing both images by a random factor in
[0.1, 2.0] and cropping or padding) is not done here: run a scale jitter before this mixer.

Key points of base objects under the pasted pixels are marked invisible. Draws, in order, one
batched call each on the host: the partners ``(B,)`` (each drawn among the other images), the
object choices ``(B, max n)`` uniforms (the first ``n_j`` of row ``i`` are used).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import targets as T
from .base import DetectionMixer

__all__ = ["CopyPaste", "CopyPasteParams"]


@dataclass(frozen=True)
class CopyPasteParams:
    """``index[i]``: the partner of image ``i``; ``chosen[i]``: the partner's pasted objects
    (indices into its target)."""

    index: tuple
    chosen: tuple

    @property
    def size(self) -> int:
        return len(self.index)


class CopyPaste(DetectionMixer):
    """Copy-Paste (Ghiasi et al., CVPR 2021): a random subset of the partner's instances pasted
    with their masks onto the base image, occluded instances updated.

    Arguments: ``p_object`` (the probability that each partner instance is pasted, default 0.5),
    ``min_visible`` (visible fraction of a base object's mask under which it is dropped,
    default 0.0: only fully hidden ones), ``min_area`` (pixels, default 1.0).

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

    _options = ("p_object", "min_visible", "min_area")

    def __init__(self, p_object: float = 0.5, *, min_visible: float = 0.0, min_area: float = 1.0):
        if not 0 <= p_object <= 1:
            raise ValueError(f"p_object: expected a probability in [0, 1], got {p_object}")
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
        return CopyPasteParams(tuple(index), tuple(chosen))

    def apply(self, images, targets, params: CopyPasteParams):
        batch = self._read(images, targets)
        T.check_params(params, CopyPasteParams, batch, "CopyPaste")
        for j, chosen in zip(params.index, params.chosen, strict=True):
            n_j = batch.objects[j]["boxes"].shape[0]
            if any(k >= n_j for k in chosen):
                raise ValueError(f"params: expected object indices below {n_j} for image {j}, got {chosen}")
        stacked = None if batch.stacked is None else torch.empty_like(batch.stacked)
        return self._pairs(batch, stacked, params.index, params.chosen)

    def _one(self, batch, i, j, chosen, out=None):
        base = batch.images[i]
        h, w = base.shape[-2:]
        pasted = T.select(batch.objects[j], torch.tensor(chosen, dtype=torch.long))
        pasted["masks"] = T.fit(pasted["masks"], h, w, 0)
        alpha = pasted["masks"].bool().any(dim=0).to(base.device)
        partner = T.fit(batch.images[j].to(base.device, base.dtype), h, w, 0)
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
