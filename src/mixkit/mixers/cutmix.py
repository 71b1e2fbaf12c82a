"""CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
Localizable Features", ICCV 2019, arXiv 1905.04899), for 1-D, 2-D and 3-D data.

    lam ~ Beta(alpha, alpha);  side_k = S_k * sqrt[d](1 - lam);  centre ~ U(grid);  box clipped
    x~ = x_i outside the box, x_j inside;   lam <- 1 - |box| / |S| (correct_lam)

Draws, in order: ``p``, lam, the box centres, the pairing (``functional.masks.sample_boxes``);
the paste is ``functional.mixing.paste_boxes``.
"""

from __future__ import annotations

import torch

from .. import checks
from ..base import BoxMixer
from ..functional import masks, sampling
from ..params import MixParams

__all__ = ["CutMix"]


class CutMix(BoxMixer):
    """CutMix (Yun et al., ICCV 2019, arXiv 1905.04899), for 1-D, 2-D and 3-D data.

    A box (interval, rectangle or cuboid) of volume fraction ``1 - lam``, lam ~ Beta(alpha,
    alpha), with a uniformly random centre, is pasted from the partner sample. Boxes are clipped
    at the borders; with ``correct_lam=True`` lam becomes the fraction actually kept,
    ``1 - box volume / volume``. ``mode="elem"`` draws a box per sample (batched, no Python loop).

    Example:

    ```python
    >>> import torch, mixkit
    >>> cut = mixkit.CutMix(alpha=1.0, num_classes=10, mode="elem")
    >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> params = cut.sample(x, generator=torch.Generator().manual_seed(0))
    >>> mixed, soft = cut.apply(x, y, params)
    >>> params.boxes.shape      # (B, spatial dims, [lo, hi))
    torch.Size([8, 2, 2])

    ```
    """

    def __init__(self, *, alpha: float = 1.0, num_classes=None, mode: str = "batch",
                 correct_lam: bool = True, p: float = 1.0, inplace: bool = False,
                 pairing: str = "permutation", label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = checks.positive("alpha", alpha)
        self.mode = checks.mode(mode)
        self.pairing = checks.pairing(pairing)
        self.correct_lam = checks.flag("correct_lam", correct_lam)

    def _sample(self, inputs, generator):
        b, dev, spatial, count, applied = self._start(inputs, generator)
        on_host, host = self._host_draws(count, generator, dev)
        if on_host and self.p >= 1.0:
            # one box for the batch: lam, the box and its area on the host, then two fills
            value = sampling.beta_value(self.alpha, generator=host)
            box = masks.host_box(value, spatial, host)
            if self.correct_lam:
                value = masks.box_lambda(box, spatial)
            index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
            return MixParams(lam=sampling.batch_value(value, b, dev), applied=applied, index=index,
                             boxes=torch.tensor([box], dtype=torch.int64, device=dev))
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        boxes = masks.sample_boxes(lam, spatial, generator=generator)
        head = applied[:count] if self.p < 1.0 else applied  # read by _where_applied only when p < 1
        boxes = self._where_applied(head, boxes, 0)
        lam = self._where_applied(head, lam, 1.0)
        if self.correct_lam:
            lam = masks.boxes_lambda(boxes, spatial)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam.expand(b), applied=applied, index=index, boxes=boxes)
