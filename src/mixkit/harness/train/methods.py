"""Training methods by name: how one step's loss is computed from a batch.

Every method is an object with ``loss(model, originals, augmented, labels, generator)``:
``originals`` is the batch as loaded, ``augmented`` after crop/flip. Input-space mixers and
Manifold Mixup use the augmented batch only; SynerMix's intra-class term uses the originals (the
unaugmented images, as in the paper) and its inter-class term the augmented ones. ``state_dict``
/ ``load_state_dict`` carry any position a method keeps (MixUp+FMix alternation) across a resume.

=====================  ===================================================================
erm                    cross-entropy
mixup                  MixUp(alpha)
zeta                   ZetaMixup(zeta_gamma)
cutmix                 CutMix(alpha)
fmix                   FMix(alpha, decay_power, spectrum)
resizemix              ResizeMix(scale=(0.1, 0.8)), the paper's scale range
saliencymix            SaliencyMix(alpha): a CutMix box on the partner's saliency peak
gridmix                GridMix(alpha), OpenMixup's grid defaults (2-6 holes, crop area 0.5-1)
smoothmix              SmoothMix(sigma=(0.25, 0.5)), the paper's Gaussian widths
mixup+fmix             Alternate([MixUp, FMix]): one per batch in turn (FMix paper)
cutmix+zeta            Compose([CutMix, ZetaMixup]): CutMix then zeta-mixup (zeta-mixup paper)
manifold               ManifoldMixup at the model's mixing layers (manifold_alpha)
synermix-intra         SynerMix, beta 0.5, inter = plain cross-entropy
synermix               SynerMix, beta 0.1, inter = MixUp(alpha)
synermix-manifold      SynerMix, beta 0.1, inter = ManifoldMixup
transmix               TransMix over CutMix(alpha) at the ViT's attention_layer (small-vit)
=====================  ===================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixkit.compose import Alternate, Compose
from mixkit.hidden import ManifoldMixup, SynerMix
from mixkit.losses import soft_target_cross_entropy
from mixkit.mixers import CutMix, FMix, GridMix, MixUp, ResizeMix, SaliencyMix, SmoothMix, ZetaMixup
from mixkit.transmix import TransMix

from .config import TrainConfig

__all__ = ["build_method", "Method"]


class Method:
    name = "erm"
    needs_originals = False

    def loss(self, model: nn.Module, originals, augmented, labels, generator) -> torch.Tensor:
        return F.cross_entropy(model(augmented), labels)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def extra_metrics(self) -> dict[str, float]:
        return {}


class InputMix(Method):
    def __init__(self, name: str, mixer):
        self.name = name
        self.mixer = mixer

    def loss(self, model, originals, augmented, labels, generator):
        mixed, soft = self.mixer(augmented, labels, generator=generator)
        return soft_target_cross_entropy(model(mixed), soft)

    def state_dict(self) -> dict:
        return self.mixer.state_dict() if hasattr(self.mixer, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if hasattr(self.mixer, "load_state_dict"):
            if set(state) == {"step"}:  # checkpoints from before mixers were modules
                state = {"_extra_state": state}
            self.mixer.load_state_dict(state)


class Manifold(Method):
    name = "manifold"

    def __init__(self, mm: ManifoldMixup):
        self.mm = mm

    def loss(self, model, originals, augmented, labels, generator):
        return self.mm.loss(augmented, labels, generator=generator)


class Syner(Method):
    needs_originals = True

    def __init__(self, name: str, syner: SynerMix):
        self.name = name
        self.syner = syner

    def loss(self, model, originals, augmented, labels, generator):
        return self.syner.loss(originals, augmented, labels, generator=generator)


class Trans(Method):
    name = "transmix"

    def __init__(self, tm: TransMix):
        self.tm = tm

    def loss(self, model, originals, augmented, labels, generator):
        return self.tm.loss(augmented, labels, generator=generator)


def _mixer(cfg: TrainConfig, kind: str, k: int):
    if kind == "mixup":
        return MixUp(alpha=cfg.alpha, num_classes=k, mode=cfg.mix_mode)
    if kind == "zeta":
        return ZetaMixup(gamma=cfg.zeta_gamma, num_classes=k)
    if kind == "cutmix":
        return CutMix(alpha=cfg.alpha, num_classes=k, mode=cfg.mix_mode)
    if kind == "fmix":
        return FMix(alpha=cfg.alpha, decay_power=cfg.decay_power, num_classes=k, mode=cfg.mix_mode,
                    spectrum=cfg.fmix_spectrum)
    if kind == "resizemix":
        return ResizeMix(num_classes=k, mode=cfg.mix_mode)
    if kind == "saliencymix":
        return SaliencyMix(alpha=cfg.alpha, num_classes=k, mode=cfg.mix_mode)
    if kind == "gridmix":
        return GridMix(alpha=cfg.alpha, num_classes=k, mode=cfg.mix_mode)
    if kind == "smoothmix":
        return SmoothMix(num_classes=k, mode=cfg.mix_mode)
    raise AssertionError(kind)


def build_method(cfg: TrainConfig, model: nn.Module, num_classes: int) -> Method:
    """The method named by ``cfg.method`` for ``model`` (which needs ``mixing_layers``,
    ``feature_layer`` and ``head`` attributes for the hidden-layer methods). ``model`` may be the
    model in DistributedDataParallel: the hidden-layer methods then forward through the wrapper and
    find their layers in the model it wraps."""
    name, k = cfg.method, num_classes
    base = getattr(model, "module", model)
    if name == "erm":
        return Method()
    if name in ("mixup", "zeta", "cutmix", "fmix", "resizemix", "saliencymix", "gridmix", "smoothmix"):
        return InputMix(name, _mixer(cfg, name, k))
    if name == "mixup+fmix":
        return InputMix(name, Alternate([_mixer(cfg, "mixup", k), _mixer(cfg, "fmix", k)], num_classes=k))
    if name == "cutmix+zeta":
        return InputMix(name, Compose([_mixer(cfg, "cutmix", k), _mixer(cfg, "zeta", k)], num_classes=k))
    if name == "transmix":
        if not hasattr(base, "attention_layer"):
            raise ValueError(f"method transmix: expected a vision transformer with an 'attention_layer' "
                             f"attribute (--model small-vit), got {type(base).__name__}")
        return Trans(TransMix(model, base.attention_layer, mixer=_mixer(cfg, "cutmix", k), num_classes=k))
    for attr in ("mixing_layers", "feature_layer", "head"):
        if not hasattr(base, attr):
            raise ValueError(f"method {name}: expected a model with a '{attr}' attribute (mixkit's "
                             f"models have one), got {type(base).__name__}")
    if name == "manifold":
        return Manifold(ManifoldMixup(model, base.mixing_layers, alpha=cfg.manifold_alpha, num_classes=k))
    if name == "synermix-intra":
        beta = 0.5 if cfg.syner_beta is None else cfg.syner_beta
        return Syner(name, SynerMix(model, base.feature_layer, base.head, beta=beta, inter=None,
                                    num_classes=k))
    beta = 0.1 if cfg.syner_beta is None else cfg.syner_beta
    if name == "synermix":
        inter = MixUp(alpha=cfg.alpha, num_classes=k)
    elif name == "synermix-manifold":
        inter = ManifoldMixup(model, base.mixing_layers, alpha=cfg.manifold_alpha, num_classes=k)
    else:  # pragma: no cover - TrainConfig.validate guards the names
        raise ValueError(f"method: unknown {name!r}")
    return Syner(name, SynerMix(model, base.feature_layer, base.head, beta=beta, inter=inter,
                                num_classes=k))
