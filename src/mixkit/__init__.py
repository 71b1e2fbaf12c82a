"""mixkit: mixed-sample data augmentation for PyTorch.

Input-space mixers (MixUp, ZetaMixup, CutMix, FMix), their combinations (RandomChoice, Alternate,
Compose), hidden-layer mixing (ManifoldMixup, SynerMix) and the losses they need. The library
part needs torch alone.
"""

from . import functional
from .collate import MixingCollate
from .compose import Alternate, Compose, ComposedParams, RandomChoice
from .hidden import ManifoldMixup, SynerMix, intra_class_mix
from .losses import SoftTargetCrossEntropy, mixed_cross_entropy, soft_target_cross_entropy
from .mixers import CutMix, FMix, Mixer, MixParams, MixUp, ZetaMixup
from .samplers import BalancedBatchSampler

__version__ = "0.1.0"

__all__ = [
    "Alternate",
    "BalancedBatchSampler",
    "Compose",
    "ComposedParams",
    "CutMix",
    "FMix",
    "ManifoldMixup",
    "MixParams",
    "MixUp",
    "Mixer",
    "MixingCollate",
    "RandomChoice",
    "SoftTargetCrossEntropy",
    "SynerMix",
    "ZetaMixup",
    "functional",
    "intra_class_mix",
    "mixed_cross_entropy",
    "soft_target_cross_entropy",
]
