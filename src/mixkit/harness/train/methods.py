"""Training methods by name: how one step's loss is computed from a batch.

Every method is an object with ``loss(model, originals, augmented, labels, generator)``:
``originals`` is the batch as loaded, ``augmented`` after crop/flip. Input-space mixers and
Manifold Mixup use the augmented batch only; SynerMix's intra-class term uses the originals (the
unaugmented images, as in the paper) and its inter-class term the augmented ones. ``state_dict``
/ ``load_state_dict`` carry any position a method keeps (MixUp+FMix alternation) across a resume.

The methods, their descriptions and their defaults are ``mixkit.registry``'s (``mixkit train
--help`` lists them); this module only wraps what the registry builds into a training step, by
its kind: plain training, an input-space mixer, or a model-aware method.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixkit import registry
from mixkit.losses import soft_target_cross_entropy

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


class ModelAware(Method):
    """A model-aware method (``mixkit.model.ModelMixer``): its own ``loss`` runs the forward."""

    def __init__(self, name: str, method):
        self.name = name
        self.method = method
        self.needs_originals = bool(getattr(method, "needs_originals", False))

    def loss(self, model, originals, augmented, labels, generator):
        if self.needs_originals:
            return self.method.loss(originals, augmented, labels, generator=generator)
        return self.method.loss(augmented, labels, generator=generator)


def build_method(cfg: TrainConfig, model: nn.Module, num_classes: int) -> Method:
    """The method named by ``cfg.method`` for ``model`` (model-aware methods read the layer names
    mixkit's models carry: ``mixing_layers``, ``feature_layer``, ``head``, ``attention_layer``).
    ``model`` may be the model in DistributedDataParallel: the model-aware methods then forward
    through the wrapper and find their layers in the model it wraps."""
    built = registry.build(cfg.method, cfg, num_classes, model)
    kind = registry.get(cfg.method).kind
    if kind == "erm":
        return Method()
    if kind == "model":
        return ModelAware(cfg.method, built)
    return InputMix(cfg.method, built)
