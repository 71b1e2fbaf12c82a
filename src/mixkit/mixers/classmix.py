"""ClassMix (Olsson et al., "ClassMix: Segmentation-Based Data Augmentation for Semi-Supervised
Learning", WACV 2021, arXiv 2007.07936): segmentation-aware mixing, 1-D, 2-D and 3-D.

    C_A = ceil(n_A / 2) of the n_A classes in A's segmentation, drawn uniformly
    M_A = 1 where A's segmentation is in C_A;   x~_B = M_A A + (1 - M_A) B  (masks the same way)

Draws, in order: ``p`` (per sample), one uniform score per class and sample, the pairing; the
mask is ``functional.masks.class_paste_masks``.
"""

from __future__ import annotations

from .. import checks
from ..base import MaskMixer
from ..functional import masks, mixing, sampling

__all__ = ["ClassMix"]


class ClassMix(MaskMixer):
    """ClassMix (Olsson et al., WACV 2021, arXiv 2007.07936): segmentation-aware mixing.

    For each image A, half of the classes present in its segmentation (``ceil(n / 2)`` of the n
    present, drawn uniformly) are cut out along their pixels and pasted onto the image B that
    takes A as its partner: ``mixed_B = M_A A + (1 - M_A) B``, the segmentation mixed the same
    way, so each mask pixel follows its image pixel exactly. Labels (if given) are mixed by area,
    ``lam`` the share B keeps. The segmentation is required, at ``sample`` too:

    ```python
    mixed, soft, seg_mixed = classmix(images, labels, masks=seg)   # labels may be None
    params = classmix.sample(images, generator=g, masks=seg)
    ```

    ``masks``: class maps ``(B, *spatial)`` (integers; ``num_classes`` needed) or probability maps
    ``(B, K, *spatial)`` (their argmax is used to choose, the maps themselves are pasted).
    ``ignore_index`` (e.g. 255) is never chosen, so unlabelled pixels stay with their image. ``p``
    is the chance that each sample is mixed. 1-D, 2-D and 3-D.

    Example:

    ```python
    >>> import torch, mixkit
    >>> cm = mixkit.ClassMix(num_classes=5)
    >>> x, seg = torch.rand(4, 3, 16, 16), torch.randint(0, 5, (4, 16, 16))
    >>> mixed, _, seg_mixed = cm(x, None, masks=seg, generator=torch.Generator().manual_seed(0))
    >>> seg_mixed.shape, seg_mixed.dtype
    (torch.Size([4, 16, 16]), torch.int64)

    ```
    """

    needs_masks = True
    modes = ()

    def __init__(self, *, num_classes=None, ignore_index: int | None = None, p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"ignore_index: expected None or an int, got {type(ignore_index).__name__}")
        self.ignore_index = ignore_index
        self.pairing = checks.pairing(pairing)

    def _sample(self, inputs, generator):  # pragma: no cover - sample() routes to _sample_from_masks
        raise ValueError("masks: expected the segmentation for ClassMix, got None")

    def _sample_from_masks(self, inputs, generator, dense):
        b, dev = inputs.shape[0], inputs.device
        if dense.is_floating_point():
            classes, maps = dense.shape[1], dense.argmax(dim=1)
        else:
            if self.num_classes is None:
                raise ValueError("num_classes: expected the number of classes for ClassMix with class maps "
                                 "(or give probability maps (B, K, *spatial)), got None")
            classes, maps = self.num_classes, dense
            valid = maps if self.ignore_index is None else maps.masked_fill(maps == self.ignore_index, 0)
            mixing.check_class_ids(valid.reshape(-1), classes, what="masks")
        applied = self._draw_applied(b, b, generator, dev)
        scores = sampling.sample_uniform((b, classes), generator=generator, device=dev)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        chosen = masks.class_paste_masks(maps, classes, scores, self.ignore_index)
        return self._finish(~chosen[index], b, b, applied, index)
