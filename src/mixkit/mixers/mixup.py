"""mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018, arXiv 1710.09412).

    x~ = lam * x_i + (1 - lam) * x_j,    y~ = lam * y_i + (1 - lam) * y_j,    lam ~ Beta(alpha, alpha)

with j = ``index[i]``, the partner from ``pairing``. Draws, in order: ``p``, lam, the pairing.
"""

from __future__ import annotations

from .. import checks
from ..base import Mixer
from ..functional import mixing, sampling
from ..params import MixParams

__all__ = ["MixUp"]


class MixUp(Mixer):
    """mixup (Zhang et al., ICLR 2018, arXiv 1710.09412).

    ``x = lam * x_i + (1 - lam) * x_j``, ``y = lam * y_i + (1 - lam) * y_j`` with
    lam ~ Beta(alpha, alpha) and j a random permutation of the batch. ``mode="batch"`` draws one
    lam per batch, ``mode="elem"`` one per sample. ``p`` is the chance that the batch
    (``"batch"``) or each sample (``"elem"``) is mixed at all. Works on any ``(B, *)`` input.

    Example:

    ```python
    >>> import torch, mixkit
    >>> mix = mixkit.MixUp(alpha=1.0, num_classes=10)
    >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> mixed, soft = mix(x, y, generator=torch.Generator().manual_seed(0))
    >>> mixed.shape, soft.shape
    (torch.Size([8, 3, 32, 32]), torch.Size([8, 10]))

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
        b, dev, _, count, applied = self._start(inputs, generator)
        on_host, host = self._host_draws(count, generator, dev)
        if on_host:
            lam = sampling.batch_value(sampling.beta_value(self.alpha, generator=host), b, dev)
        else:
            lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev).expand(b)
        lam = self._where_applied(applied, lam, 1.0)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam, applied=applied, index=index)

    def _mix(self, inputs, soft, params):
        mixed = mixing.blend_pairs(inputs, params.index, params.lam, inplace=self.inplace)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        return mixing.blend_pairs(mixing.probability_maps(masks, self.num_classes), params.index, params.lam)
