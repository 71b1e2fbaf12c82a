"""FMix (Harris et al., "FMix: Enhancing Mixed Sample Data Augmentation", arXiv 2002.12047),
for 1-D, 2-D and 3-D data.

    Z = F^-1[ N(0, 1) + i N(0, 1) scaled by 1 / max(|f|, 1 / max(S))^decay_power ]
    lam ~ Beta(alpha, alpha);  M = 1 on the top lam * |S| elements of Z, else 0
    x~ = M x_i + (1 - M) x_j;  lam <- mean(M)

``reformulate=True`` draws lam ~ Beta(alpha + 1, alpha) and keeps only the own label. Draws, in
order: ``p``, lam, the spectrum (``functional.masks.fourier_masks``), the pairing.
"""

from __future__ import annotations

import math

import torch

from .. import checks
from ..base import MaskMixer
from ..functional import fourier, masks, sampling
from ..params import MixParams

__all__ = ["FMix"]


def _check_decay(decay_power: float, spatial: tuple[int, ...]) -> None:
    """The spectrum is scaled by up to ``sqrt(2) max(S)^decay_power`` in float32: past float32's
    range the noise overflows and every mask comes out degenerate (lam 0 whatever the draw).
    Refused, with the largest decay this size takes (room for the inverse FFT's sum of the few
    strongest frequencies: a factor 24; measured: 224x224 overflows from 17, 32x32 from 26)."""
    side = max(spatial)
    if side < 2:
        return
    headroom = math.log(torch.finfo(torch.float32).max) - 0.5 * math.log(2) - math.log(24)
    limit = headroom / math.log(side)
    if decay_power > limit:
        raise ValueError(f"decay_power: expected at most {limit:.1f} for inputs of spatial shape {spatial} "
                         f"(the spectrum's scale, {side}^decay_power, must stay within float32), "
                         f"got {decay_power:g}")


class FMix(MaskMixer):
    """FMix (Harris et al. 2020, arXiv 2002.12047), for 1-D, 2-D and 3-D data.

    A keep mask is made by sampling a complex Gaussian spectrum on the input's trailing shape,
    scaling frequency f by ``1 / max(|f|, 1/max(shape))^decay_power``, taking the inverse FFT
    and setting the top ``lam * n`` values to 1 (lam ~ Beta(alpha, alpha)); the mask mean equals
    lam to within one element and ``params.lam`` is that mean. ``max_soft`` > 0 replaces the hard
    edge by a linear ramp. ``reformulate=True`` draws lam ~ Beta(alpha + 1, alpha) and keeps only
    each sample's own label (the paper's reformulated objective). ``mode="elem"`` makes one mask
    per sample, batched on the inputs' device. ``spectrum="official"`` reproduces the upstream
    code's stripe-shaped masks (see ``mixkit.functional.masks.fourier_noise``).

    Example:

    ```python
    >>> import torch, mixkit
    >>> fmix = mixkit.FMix(alpha=1.0, decay_power=3.0, num_classes=10, mode="elem")
    >>> x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    >>> params = fmix.sample(x, generator=torch.Generator().manual_seed(0))
    >>> bool(((params.mask.mean((1, 2)) - params.lam).abs() <= 1 / 784 + 1e-6).all())
    True

    ```
    """

    def __init__(self, *, alpha: float = 1.0, decay_power: float = 3.0, num_classes=None,
                 max_soft: float = 0.0, reformulate: bool = False, mode: str = "batch",
                 p: float = 1.0, spectrum: str = "paper", inplace: bool = False,
                 pairing: str = "permutation", label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.pairing = checks.pairing(pairing)
        self.alpha = checks.positive("alpha", alpha)
        self.decay_power = checks.positive("decay_power", decay_power)
        if isinstance(max_soft, bool) or not isinstance(max_soft, (int, float)) or not 0 <= max_soft <= 0.5:
            raise ValueError(f"max_soft: expected a number in [0, 0.5], got {max_soft!r}")
        self.max_soft = float(max_soft)
        self.reformulate = checks.flag("reformulate", reformulate)
        self.mode = checks.mode(mode)
        self.spectrum = checks.choice("spectrum", spectrum, ("paper", "official"))

    @property
    def mixes_labels(self) -> bool:
        return not self.reformulate

    def _binary(self) -> bool:
        return self.max_soft == 0  # hard masks copy values; soft edges blend them

    def _sample(self, inputs, generator):
        spatial = tuple(inputs.shape[2:])
        if self.spectrum == "official" and spatial[0] < 2:
            raise ValueError(f"inputs: expected a first spatial size >= 2 for spectrum='official', "
                             f"got shape {tuple(inputs.shape)}")
        _check_decay(self.decay_power, spatial)
        b, dev, spatial, count, applied = self._start(inputs, generator)
        a, c = (self.alpha + 1.0, self.alpha) if self.reformulate else (self.alpha, self.alpha)
        on_host, host = self._host_draws(count, generator, dev)
        if on_host and self.p >= 1.0 and self._binary():
            # one hard mask for the batch: lam and the mask's count of ones k on the host (lam = k / n)
            mask, k = fourier.fourier_mask_host_k(sampling.beta_value(a, c, generator=host), spatial,
                                                  self.decay_power, generator=generator, host=host,
                                                  spectrum=self.spectrum, device=dev)
            index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
            lam = sampling.batch_value(sampling.as_float32(k / math.prod(spatial)), b, dev)
            return MixParams(lam=lam, applied=applied, index=index, mask=mask)
        lam = sampling.sample_beta(a, c, size=count, generator=generator, device=dev)
        mask = masks.fourier_masks(lam, spatial, self.decay_power, max_soft=self.max_soft,
                                   generator=generator, spectrum=self.spectrum)
        head = applied[:count] if self.p < 1.0 else applied  # read by _where_applied only when p < 1
        mask = self._where_applied(head, mask, 1.0)
        lam = mask.reshape(count, -1).mean(dim=1, dtype=torch.float64).to(torch.float32)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam.expand(b), applied=applied, index=index, mask=mask)

    def _mix_labels(self, soft, params):
        if self.reformulate:
            return soft
        return super()._mix_labels(soft, params)
