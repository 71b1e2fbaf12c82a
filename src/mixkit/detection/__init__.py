"""Mixed-sample augmentation for object detection: Mosaic, MixUp, CutMix and Copy-Paste on
images with boxes, labels, instance masks, key points and other per-object fields.

Called as torchvision's detection transforms are:

```python
images, targets = mixer(images, targets, generator=g)
params = mixer.sample(images, targets, generator=g)
images, targets = mixer.apply(images, targets, params)   # the same output
```

``images``: a ``(B, C, H, W)`` tensor (or ``tv_tensors.Image``) or a list of ``(C, H_i, W_i)``
images; ``targets``: a list of B dicts (``"boxes"``, ``"labels"``, optional ``"masks"``,
``"keypoints"`` and other per-object tensors). Box formats XYXY, XYWH and CXCYWH are kept;
rotated boxes are refused. See ``targets`` for the conventions and ``docs/detection.md``.

mixkit needs torch alone: this package reads torchvision's ``tv_tensors`` from ``sys.modules``
(loaded by whoever made the inputs) and never imports it; ``import mixkit`` does not load it.
"""

from .copypaste import CopyPaste, CopyPasteParams
from .cutmix import CutMix, CutMixParams
from .mixup import MixUp, MixUpParams
from .mosaic import Mosaic, MosaicParams

__all__ = ["Mosaic", "MixUp", "CutMix", "CopyPaste", "MosaicParams", "MixUpParams", "CutMixParams",
           "CopyPasteParams"]
