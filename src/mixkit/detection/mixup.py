"""MixUp for detection (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018;
for detection, Zhang et al., "Bag of Freebies for Training Object Detection Neural Networks",
arXiv 1902.04103).

    lam ~ Beta(alpha, alpha);   x~ = lam * x_i + (1 - lam) * x_j
    objects: those of x_i with weight lam, then those of x_j with weight 1 - lam

Both images are drawn at the top-left of a canvas of their larger height and width filled with
``fill`` (the same size as the inputs for a batch tensor). Boxes, masks and key points do not
move; every object is kept, with ``"weights"`` in its target (multiplied into the input's
``"weights"`` where there is one) for a weighted detection loss, or to be ignored.

Defaults elsewhere: ultralytics draws lam ~ Beta(32, 32) (lam close to 0.5), the default here;
YOLOX blends with a fixed 0.5 (after jittering the partner's scale), ``alpha=None`` here; the
Bag of Freebies paper uses Beta(1.5, 1.5).

Draws, in order, one batched call each on the host: the partners ``(B,)`` (each drawn among the
other images), lam ``(B,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..functional import sampling
from . import targets as T
from .base import DetectionMixer

__all__ = ["MixUp", "MixUpParams"]


@dataclass(frozen=True)
class MixUpParams:
    """``index[i]``: the partner of image ``i``; ``lam[i]``: the base image's weight."""

    index: tuple
    lam: tuple

    @property
    def size(self) -> int:
        return len(self.index)


def blend(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """``lam * a + (1 - lam) * b`` in float32, rounded back for integer images."""
    y = a.float() * lam  # a new tensor (a.float() may be a itself): the in-place ops below are safe
    y.add_(b.float() * (1.0 - lam))
    if a.is_floating_point():
        return y.to(a.dtype)
    info = torch.iinfo(a.dtype)
    return y.round_().clamp_(info.min, info.max).to(a.dtype)


# Elements per float32 buffer of ``blend_batch``: 128 Ki (512 KiB), so that the two stay in a
# core's cache through the five passes of each block (measured on 2 cores, 16 x 3 x 640 x 640
# uint8: 1,066 ms with whole-image buffers, 26 ms with blocks of 64 rows).
BLOCK_NUMEL = 1 << 17


def blend_batch(x: Tensor, index, lams) -> Tensor:
    """``blend(x[i], x[index[i]], lams[i])`` for every image of ``x`` ``(B, C, H, W)``, written into
    one output batch, image by image and block of rows by block of rows through two float32
    buffers small enough to stay in cache (``BLOCK_NUMEL``): the same operations on the same
    values, element by element, as ``blend``."""
    out = torch.empty_like(x)
    c, h, w = x.shape[1:]
    rows = max(1, min(h, BLOCK_NUMEL // max(c * w, 1)))
    a = torch.empty((c, rows, w), dtype=torch.float32, device=x.device)
    b = torch.empty_like(a)
    info = None if x.is_floating_point() else torch.iinfo(x.dtype)
    for i, (j, lam) in enumerate(zip(index, lams, strict=True)):
        for top in range(0, h, rows):
            end = min(top + rows, h)
            y, z = a[:, :end - top], b[:, :end - top]
            y.copy_(x[i, :, top:end]).mul_(lam)  # the operations of blend, in the same order and precision
            y.add_(z.copy_(x[j, :, top:end]).mul_(1.0 - lam))
            if info is not None:
                y.round_().clamp_(info.min, info.max)
            out[i, :, top:end].copy_(y)
    return out


class MixUp(DetectionMixer):
    """MixUp for detection: two images blended, the objects of both kept with weights.

    Arguments: ``alpha`` (Beta concentration, default 32.0 as ultralytics; None: lam = 0.5 as
    YOLOX), ``fill`` (canvas value where only one of two images of different sizes lies,
    default 0).

    ``mixer(images, targets, generator=g)``, or ``sample`` then ``apply`` (the same output). The
    draws are made on the host; images stay on their device, per-object data where it is.
    Image-level target entries are the base image's.

    Example:

    ```python
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from mixkit.detection import MixUp
    >>> images = torch.rand(2, 3, 32, 32)
    >>> targets = [{"boxes": tv_tensors.BoundingBoxes([[4.0, 4.0, 20.0, 20.0]], format="XYWH",
    ...                                               canvas_size=(32, 32)),
    ...             "labels": torch.tensor([i])} for i in range(2)]
    >>> mixer = MixUp(alpha=32.0)
    >>> params = mixer.sample(images, targets, generator=torch.Generator().manual_seed(0))
    >>> out, res = mixer.apply(images, targets, params)
    >>> len(res[0]["boxes"]), bool(torch.allclose(res[0]["weights"].sum(), torch.tensor(1.0)))
    (2, True)

    ```
    """

    _options = ("alpha", "fill")

    def __init__(self, alpha: float | None = 32.0, *, fill=0.0):
        if alpha is not None and not (alpha > 0 and alpha < float("inf")):
            raise ValueError(f"alpha: expected a finite value > 0 or None, got {alpha}")
        self.alpha = None if alpha is None else float(alpha)
        self.fill = fill


    def sample(self, images, targets, *, generator=None) -> MixUpParams:
        batch = T.read(images, targets, "MixUp")
        b, g = batch.size, T.host(generator)
        index = T.partners(b, g)
        if self.alpha is None:
            lam = [0.5] * b
        else:
            lam = sampling.sample_beta(self.alpha, size=b, generator=g).tolist()
        return MixUpParams(tuple(index), tuple(lam))

    def apply(self, images, targets, params: MixUpParams):
        batch = T.read(images, targets, "MixUp")
        T.check_params(params, MixUpParams, batch, "MixUp")
        outs, objs = [], []
        x = batch.stacked
        if x is not None:  # a batch: blended into one output batch
            outs = blend_batch(x, params.index, params.lam)
        for i, (j, lam) in enumerate(zip(params.index, params.lam, strict=True)):
            a, b = batch.images[i], batch.images[j]
            h, w = max(a.shape[-2], b.shape[-2]), max(a.shape[-1], b.shape[-1])
            if x is None:
                outs.append(blend(T.fit(a, h, w, self.fill), T.fit(b.to(a.device), h, w, self.fill), lam))
            parts = [_weighted(batch.objects[i], lam, h, w), _weighted(batch.objects[j], 1.0 - lam, h, w)]
            objs.append(T.finish(T.concat(parts), h, w, from_masks=False))
        return T.write(batch, outs, objs)


def _weighted(obj: dict, weight: float, h: int, w: int) -> dict:
    out = dict(obj)
    n, dev = obj["boxes"].shape[0], obj["boxes"].device
    base = obj["weights"].float() if "weights" in obj else torch.ones(n, device=dev)
    out["weights"] = base * weight
    if "masks" in obj:
        out["masks"] = T.fit(obj["masks"], h, w, 0)
    return out
