"""SmoothMix (Lee et al., "SmoothMix: a Simple Yet Effective Data Augmentation to Train Robust
Classifiers", CVPR Workshops 2020), for 1-D, 2-D and 3-D data.

    G(p) = exp(-sum_k (p_k - c_k)^2 / (2 (sigma S_k)^2)),  c a uniform element,  sigma ~ U(sigma)
    x~ = (1 - G) x_i + G x_j;   lam = 1 - mean(G)

Draws, in order: ``p``, one uniform row per draw (sigma, centre), the pairing; the mask is
``functional.masks.gaussian_keep_masks``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import checks
from ..base import MaskMixer
from ..functional import execution, masks, sampling

__all__ = ["SmoothMix"]


@functools.lru_cache(maxsize=64)
def _sizes(spatial: tuple[int, ...], device: str) -> tuple[Tensor, Tensor]:
    """The sizes and the sizes - 1, float64 ``(d,)`` on ``device``."""
    size = torch.empty(len(spatial), dtype=torch.float64, device=device)
    for axis, n in enumerate(spatial):  # filled on the device (no host-to-device copy)
        size[axis] = n
    return size, size - 1


class SmoothMix(MaskMixer):
    """SmoothMix (Lee et al., CVPR Workshops 2020), for 1-D, 2-D and 3-D data.

    A smooth-edged blob of the partner: ``mixed = (1 - G) x + G x[index]`` with the Gaussian
    ``G(p) = exp(-sum_k (p_k - c_k)^2 / (2 (sigma S_k)^2))``, its centre ``c`` a uniformly drawn
    element, ``sigma ~ U(sigma)`` (the paper's ``(0.25, 0.5)`` of the image's side). lam is the
    realised kept share ``1 - mean(G)`` (mixing the labels by the mask's area, as the paper does).
    ``params.mask`` is the soft keep mask ``1 - G``; integer images are blended in float and
    rounded; dense targets become probability maps.

    Example:

    ```python
    >>> import torch, mixkit
    >>> smooth = mixkit.SmoothMix(num_classes=10, mode="elem")
    >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> mixed, soft = smooth(x, y, generator=torch.Generator().manual_seed(0))

    ```
    """

    def __init__(self, *, sigma=(0.25, 0.5), num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.sigma = checks.span("sigma", sigma, 0, None)
        self.mode = checks.mode(mode)
        self.pairing = checks.pairing(pairing)

    def _binary(self) -> bool:
        return False

    def _sample(self, inputs, generator):
        b, dev, spatial, count, applied = self._start(inputs, generator)
        draws = sampling.sample_uniform((count, 1 + len(spatial)), generator=generator, device=dev,
                                        dtype=torch.float64)
        size, last = execution.host_cached(_sizes, spatial, str(dev))
        centre = torch.minimum((draws[:, 1:] * size).floor(), last)  # all axes at once
        keep = masks.gaussian_keep_masks(centre, checks.within(self.sigma, draws[:, 0]), spatial)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return self._finish(keep, count, b, applied, index)
