"""The input-space mixers, one module per method: its paper and formula at the top, its draws
and its apply in the class.

Every mixer is an ``nn.Module`` and keeps one contract:

```python
mixer = mixkit.MixUp(alpha=1.0, num_classes=10)      # keyword-only, checked here
mixed, soft = mixer(inputs, labels)                   # labels: ids (B,) or probabilities (B, C)
mixed, soft = mixer((inputs, labels))                 # a packed batch, as torchvision's v2 takes
params = mixer.sample(inputs, generator=g)            # every random draw, on inputs' device
mixed, soft = mixer.apply(inputs, labels, params)     # deterministic replay
```

``params.lam`` is always the weight of each sample's own (unpermuted) input, as realised: mask
methods report the mask's mean, CutMix the clipped box (with ``correct_lam``). ``soft`` is float
(B, C), non-negative, rows summing to 1, so mixers compose. Shape, dtype, device and memory
format of the inputs are kept; inputs are only written to with ``inplace=True``. torchvision's
``tv_tensors.Image`` and ``Video`` keep their type (see ``mixkit.inputs``).

Options every mixer takes:

- ``num_classes``: needed when labels come as class ids.
- ``label_smoothing`` eps: targets become ``onehot * (1 - eps) + eps / C`` before mixing (timm's
  order: smooth, then mix); rows still sum to 1. Multi-hot rows are smoothed towards 0.5 per
  class. Combinations smooth once, not once per part.
- ``multilabel=True``: labels may be multi-hot rows ``(B, C)`` (values in [0, 1], any number of
  classes on); they are mixed as they are, never renormalised. Train on them with
  ``mixkit.soft_target_binary_cross_entropy``.
- Integer images (uint8, ...) are mixed in their dtype: mask methods copy exact values, blends
  (MixUp, zeta-mixup, soft FMix edges) round to the nearest integer; those cannot be written in
  place (``inplace=True`` is refused for them).

Pairwise mixers mix each sample with a partner chosen by ``pairing``: ``"permutation"``
(default, the papers': a random permutation, so about one sample in B is its own partner),
``"roll"`` (torchvision's v2 MixUp/CutMix: sample i with sample i - 1) or ``"flip"`` (timm's
Mixup: sample i with sample B - 1 - i); see ``mixkit.functional.sample_pairing``.

The base classes and the parameter record are in ``mixkit.base`` and ``mixkit.params``; the
methods and their harness defaults are listed once, in ``mixkit.registry``.
"""

from ..base import Mixer, Targets
from ..params import MixParams
from .classmix import ClassMix
from .cutmix import CutMix
from .fmix import FMix
from .gridmix import GridMix
from .mixup import MixUp
from .resizemix import ResizeMix
from .saliencymix import SaliencyMix
from .smoothmix import SmoothMix
from .zeta import ZetaMixup

__all__ = ["MixParams", "Targets", "Mixer", "MixUp", "ZetaMixup", "CutMix", "FMix", "ResizeMix",
           "SaliencyMix", "GridMix", "SmoothMix", "ClassMix"]
