"""ResizeMix (Qin et al., "ResizeMix: Mixing Data with Preserved Object Information and True
Labels", arXiv 2012.11101), for 1-D, 2-D and 3-D data.

    tau ~ U(scale);  side_k = max(1, floor(S_k tau));  box placed uniformly where it fits
    x~ = x_i with resize(x_j, side) pasted in the box;   lam = 1 - prod(side) / prod(S)

Draws, in order: ``p``, tau, the box places (``functional.masks.sample_resize_boxes``), the
pairing; the paste is ``functional.mixing.paste_resized``.
"""

from __future__ import annotations

import torch

from .. import checks
from ..base import SpatialMixer, check_boxes
from ..functional import masks, mixing, sampling
from ..params import MixParams

__all__ = ["ResizeMix"]


class ResizeMix(SpatialMixer):
    """ResizeMix (Qin et al. 2020, arXiv 2012.11101), for 1-D, 2-D and 3-D data.

    The partner is not cut but shrunk whole: resized by a scale rate ``tau ~ U(scale)`` (the
    paper's ``(0.1, 0.8)``) to a box of side ``max(1, floor(S_d * tau))`` on every axis, placed
    uniformly where it fits, and pasted. The partner's label weight is the box's share of the
    volume, so ``lam = 1 - prod(side) / prod(S)`` (realised, after flooring). ``mode="elem"``
    draws a scale and a place per sample (one ``grid_sample`` for the batch). ``resample``:
    ``"linear"`` (bi-/trilinear) or ``"nearest"``. Dense targets are resampled by nearest
    neighbour, so each mask pixel follows its image pixel.

    Example:

    ```python
    >>> import torch, mixkit
    >>> rm = mixkit.ResizeMix(scale=(0.1, 0.8), num_classes=10, mode="elem")
    >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> params = rm.sample(x, generator=torch.Generator().manual_seed(0))
    >>> mixed, soft = rm.apply(x, y, params)
    >>> bool(((params.lam > 0.3) & (params.lam < 1.0)).all())    # tau <= 0.8 -> lam >= 0.36
    True

    ```
    """

    supports_inplace = False

    def __init__(self, *, scale: tuple[float, float] = (0.1, 0.8), num_classes=None, mode: str = "batch",
                 resample: str = "linear", p: float = 1.0, pairing: str = "permutation",
                 label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, label_smoothing=label_smoothing, multilabel=multilabel)
        ok = (isinstance(scale, (tuple, list)) and len(scale) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale)
              and 0.0 < scale[0] <= scale[1] <= 1.0)
        if not ok:
            raise ValueError(f"scale: expected (low, high) with 0 < low <= high <= 1, got {scale!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.mode = checks.mode(mode)
        self.resample = checks.choice("resample", resample, ("linear", "nearest"))
        self.pairing = checks.pairing(pairing)

    @property
    def interpolates(self) -> bool:
        return self.resample == "linear"

    @property
    def dense_blends(self) -> bool:
        return False  # dense targets are resampled by nearest neighbour whatever ``resample``

    def keep_mask(self, params, spatial):
        return masks.box_keep_mask(params.boxes, spatial, dtype=torch.bool).float()

    def _sample(self, inputs, generator):
        b, dev, spatial, count, applied = self._start(inputs, generator)
        lo, hi = self.scale
        tau = lo + (hi - lo) * sampling.sample_uniform(count, generator=generator, device=dev)
        head = applied[:count] if self.p < 1.0 else applied  # read by _where_applied only when p < 1
        tau = self._where_applied(head, tau, 0.0)
        boxes = masks.sample_resize_boxes(tau, spatial, generator=generator)
        lam = masks.boxes_lambda(boxes, spatial)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam.expand(b), applied=applied, index=index, boxes=boxes)

    def _mix(self, inputs, soft, params):
        check_boxes(params, inputs.ndim - 2)
        mixed = mixing.paste_resized(inputs, params.index, params.boxes, mode=self.resample)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        # nearest neighbour: each mask pixel takes the class of the partner pixel its image
        # pixel was resampled around (class maps stay class maps)
        classes = masks.ndim == params.boxes.shape[1] + 1
        work = masks.unsqueeze(1) if classes else masks
        out = mixing.paste_resized(work, params.index.to(masks.device), params.boxes, mode="nearest")
        return out.squeeze(1) if classes else out
