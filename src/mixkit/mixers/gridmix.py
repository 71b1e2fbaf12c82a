"""GridMix (Baek et al., "GridMix: Strong regularization through local context mapping",
Pattern Recognition 2021), for 1-D, 2-D and 3-D data, with OpenMixup's hole-grid geometry.

    lam ~ Beta(alpha, alpha);  a crop of ``area`` and ``aspect`` placed uniformly;  ``holes``
    cells across it;  in each cell a hole of (1 - lam)^(1/d) of the cell's side per axis
    x~ = M x_i + (1 - M) x_j  (M = 0 in the holes);  lam <- mean(M)

Draws, in order: ``p``, lam, one uniform row per draw (holes, hole aspect, area, aspect, place),
the pairing; the mask is ``functional.masks.grid_keep_masks``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import checks
from ..base import MaskMixer
from ..functional import execution, masks, sampling

__all__ = ["GridMix"]


@functools.lru_cache(maxsize=64)
def _draw_map(ranges: tuple, d: int, device: str) -> tuple[Tensor, Tensor]:
    """The scale and offset ``(4 + d,)`` (float64 on ``device``) that map GridMix's uniform draws
    onto holes, hole aspect, area, aspect (``ranges``, each ``(low, high)``) and place."""
    (h_lo, h_hi), *rest = ranges
    scale = torch.ones(4 + d, dtype=torch.float64, device=device)
    offset = torch.zeros(4 + d, dtype=torch.float64, device=device)
    scale[0], offset[0] = h_hi - h_lo + 1, h_lo
    for i, (lo, hi) in enumerate(rest, start=1):  # filled on the device (no host-to-device copy)
        scale[i], offset[i] = hi - lo, lo
    return scale, offset


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
        # Every column mapped onto its range at once: u * (hi - lo) + lo (u * (hi - lo + 1) + lo
        # for holes, u * 1 + 0 for place), the products and sums of checks.within per column.
        ranges = (checks.bounds(self.holes), checks.bounds(self.hole_aspect), checks.bounds(self.area),
                  checks.bounds(self.aspect))
        scale, offset = execution.host_cached(_draw_map, ranges, len(spatial), str(dev))
        mapped = draws * scale + offset
        holes, hole_aspect, area, aspect = mapped[:, :4].unbind(1)
        holes = holes.floor().clamp_max(ranges[0][1])
        keep = masks.grid_keep_masks(lam, spatial, holes=holes, hole_aspect=hole_aspect, area=area,
                                     aspect=aspect, place=mapped[:, 4:])
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return self._finish(keep, count, b, applied, index)
