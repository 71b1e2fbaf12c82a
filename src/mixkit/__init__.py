"""mixkit: mixed-sample data augmentation for PyTorch.

Input-space mixers (MixUp, ZetaMixup, CutMix, FMix), their combinations (RandomChoice, Alternate,
Compose), hidden-layer mixing (ManifoldMixup, SynerMix) and the losses they need. The library
part needs torch alone.
"""

from . import functional
from .compose import Alternate, Compose, ComposedParams, RandomChoice
from .losses import SoftTargetCrossEntropy, mixed_cross_entropy, soft_target_cross_entropy
from .mixers import CutMix, FMix, Mixer, MixParams, MixUp, ZetaMixup

__version__ = "0.1.0"

__all__ = [
    "Alternate",
    "Compose",
    "ComposedParams",
    "CutMix",
    "FMix",
    "MixParams",
    "MixUp",
    "Mixer",
    "RandomChoice",
    "SoftTargetCrossEntropy",
    "ZetaMixup",
    "functional",
    "mixed_cross_entropy",
    "soft_target_cross_entropy",
]
