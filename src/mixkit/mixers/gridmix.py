"""GridMix (Baek et al., "GridMix: Strong regularization through local context mapping",
Pattern Recognition 2021), for 1-D, 2-D and 3-D data, with OpenMixup's hole-grid geometry.

    lam ~ Beta(alpha, alpha);  a crop of ``area`` and ``aspect`` placed uniformly;  ``holes``
    cells across it;  in each cell a hole of (1 - lam)^(1/d) of the cell's side per axis
    x~ = M x_i + (1 - M) x_j  (M = 0 in the holes);  lam <- mean(M)

Draws, in order: ``p``, lam, one uniform row per draw (holes, hole aspect, area, aspect, place),
the pairing; the mask is ``functional.masks.grid_keep_masks``.
"""

from __future__ import annotations

import torch

from .. import checks
from ..base import MaskMixer
from ..functional import masks, sampling

__all__ = ["GridMix"]


class GridMix(MaskMixer):
    """GridMix (Baek et al., Pattern Recognition 2021), for 1-D, 2-D and 3-D data.

    The partner shows through a regular grid of holes inside a crop of the image (the hole-grid
    construction of OpenMixup's ``gridmix``): lam ~ Beta(alpha, alpha); a crop of ``area`` of the
    image with height / width ``aspect``, placed uniformly; ``holes`` cells across its width
    (cells ``hole_aspect`` times as high as wide); in each cell a hole of ``(1 - lam)^(1/d)`` of
    the cell's side per axis. Ranges ``(low, high)`` are drawn uniformly per batch (``"elem"``: per
    sample), ``holes`` as an integer in ``[low, high]``. ``params.mask`` is the keep mask,
    ``params.lam`` its mean. See ``mixkit.functional.masks.grid_keep_masks`` for the exact
    geometry. (The paper's patch-level label loss is a training objective, not part of the mix.)

    Example:

    ```python
    >>> import torch, mixkit
    >>> grid = mixkit.GridMix(alpha=1.0, holes=(2, 6), num_classes=10, mode="elem")
    >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    >>> params = grid.sample(x, generator=torch.Generator().manual_seed(0))
    >>> bool((params.mask.mean((1, 2)) == params.lam).all())
    True

    ```
    """

    def __init__(self, *, alpha: float = 1.0, holes=(2, 6), hole_aspect=1.0, area=(0.5, 1.0),
                 aspect=(0.5, 2.0), num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = checks.positive("alpha", alpha)
        self.holes = checks.span("holes", holes, 1, None, integer=True)
        self.hole_aspect = checks.span("hole_aspect", hole_aspect, 0, None)
        self.area = checks.span("area", area, 0, 1.0)
        self.aspect = checks.span("aspect", aspect, 0, None)
        self.mode = checks.mode(mode)
        self.pairing = checks.pairing(pairing)

    def _sample(self, inputs, generator):
        b, dev, spatial, count, applied = self._start(inputs, generator)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        draws = sampling.sample_uniform((count, 4 + len(spatial)), generator=generator, device=dev,
                                        dtype=torch.float64)
        lo, hi = checks.bounds(self.holes)
        holes = (lo + draws[:, 0] * (hi - lo + 1)).floor().clamp_max(hi)
        keep = masks.grid_keep_masks(
            lam, spatial, holes=holes, hole_aspect=checks.within(self.hole_aspect, draws[:, 1]),
            area=checks.within(self.area, draws[:, 2]), aspect=checks.within(self.aspect, draws[:, 3]),
            place=draws[:, 4:])
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return self._finish(keep, count, b, applied, index)
