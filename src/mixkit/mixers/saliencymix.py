"""SaliencyMix (Uddin et al., "SaliencyMix: A Saliency Guided Data Augmentation Strategy for
Better Regularization", ICLR 2021, arXiv 2006.01791), for 1-D, 2-D and 3-D data.

    lam ~ Beta(alpha, alpha);  c = argmax saliency(x_j);  side_k = floor(S_k (1 - lam)^(1/d))
    box = [c - side // 2, c + side // 2) clipped;  lam <- 1 - |box| / |S|

The saliency is the spectral residual (``functional.saliency``), computed in torch on the inputs'
device. Draws, in order: ``p``, lam, the pairing; then the box from the partners' saliency.
"""

from __future__ import annotations

from .. import checks
from ..base import BoxMixer
from ..functional import masks, saliency, sampling
from ..params import MixParams

__all__ = ["SaliencyMix"]


class SaliencyMix(BoxMixer):
    """SaliencyMix (Uddin et al., ICLR 2021, arXiv 2006.01791), for 1-D, 2-D and 3-D data.

    CutMix with the box placed where the partner is most salient: lam ~ Beta(alpha, alpha), a box
    of side ``floor(S_k (1 - lam)^(1/d))`` per axis centred on the peak of the partner's
    spectral-residual saliency (``[c - side // 2, c + side // 2)``, clipped, as the paper's code
    cuts it) is pasted from the partner; lam is the realised kept share. The saliency is computed
    in torch on the inputs' device (``mixkit.functional.saliency``), so ``sample`` reads the
    images, not only their shape. ``mode="batch"`` uses one box for the batch, placed on the
    saliency of sample 0's partner (the paper's code); ``mode="elem"`` one box per sample on its
    own partner's saliency.

    Example:

    ```python
    >>> import torch, mixkit
    >>> sal = mixkit.SaliencyMix(alpha=1.0, num_classes=10, mode="elem")
    >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> mixed, soft = sal(x, y, generator=torch.Generator().manual_seed(0))

    ```
    """

    def __init__(self, *, alpha: float = 1.0, num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = checks.positive("alpha", alpha)
        self.mode = checks.mode(mode)
        self.pairing = checks.pairing(pairing)

    def _sample(self, inputs, generator):
        b, dev, spatial, count, applied = self._start(inputs, generator)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        centre = saliency.saliency_peaks(inputs[index[:count]])
        head = applied[:count] if self.p < 1.0 else applied  # read by _where_applied only when p < 1
        boxes = self._where_applied(head, masks.centred_boxes(lam, centre, spatial), 0)
        return MixParams(lam=masks.boxes_lambda(boxes, spatial).expand(b), applied=applied, index=index,
                         boxes=boxes)
