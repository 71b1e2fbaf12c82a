"""mixkit: mixed-sample data augmentation for PyTorch.

Input-space mixers (MixUp, ZetaMixup, CutMix, FMix, ResizeMix, SaliencyMix, GridMix, SmoothMix,
ClassMix), their combinations (RandomChoice, Alternate, Compose), hidden-layer mixing
(ManifoldMixup, SynerMix), attention-weighted labels for vision transformers (TransMix), mixing
across DDP ranks (CrossRank), the losses they need, and the data pieces around them
(MixingCollate, PairedViews, BalancedBatchSampler). This library needs torch alone;
``mixkit.harness`` (training, comparisons, benchmark, analyses, the ``mixkit`` command) is the
second wing and may use numpy, scikit-learn, matplotlib and torchvision.
"""

from . import functional, registry
from .collate import MixingCollate
from .compose import Alternate, Compose, ComposedParams, RandomChoice
from .distributed import CrossRank
from .losses import (
    SoftTargetBinaryCrossEntropy,
    SoftTargetCrossEntropy,
    mixed_cross_entropy,
    soft_target_binary_cross_entropy,
    soft_target_cross_entropy,
)
from .manifold import ManifoldMixup
from .mixers import (
    ClassMix,
    CutMix,
    FMix,
    GridMix,
    Mixer,
    MixParams,
    MixUp,
    ResizeMix,
    SaliencyMix,
    SmoothMix,
    ZetaMixup,
)
from .paired import PairedViews
from .samplers import BalancedBatchSampler
from .synermix import SynerMix, intra_class_mix
from .transmix import TransMix

__version__ = "0.1.0"

__all__ = [
    "Alternate",
    "BalancedBatchSampler",
    "ClassMix",
    "Compose",
    "ComposedParams",
    "CrossRank",
    "CutMix",
    "FMix",
    "GridMix",
    "ManifoldMixup",
    "MixParams",
    "MixUp",
    "Mixer",
    "MixingCollate",
    "PairedViews",
    "RandomChoice",
    "ResizeMix",
    "SaliencyMix",
    "SmoothMix",
    "SoftTargetBinaryCrossEntropy",
    "SoftTargetCrossEntropy",
    "SynerMix",
    "TransMix",
    "ZetaMixup",
    "functional",
    "registry",
    "intra_class_mix",
    "mixed_cross_entropy",
    "soft_target_binary_cross_entropy",
    "soft_target_cross_entropy",
]
