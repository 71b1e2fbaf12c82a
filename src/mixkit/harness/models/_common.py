"""Pieces shared by the mixkit model zoo: the global pooling module and the weight init.

``GlobalAvgPool`` is the penultimate ``feature_layer`` of every model: adaptive average pooling
to size 1 over all spatial (or temporal) axes, then a flatten, so its output is (B, D) and a
forward hook on it captures the features that the ``head`` maps to logits.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["GlobalAvgPool", "attach_head", "init_weights"]


class GlobalAvgPool(nn.Module):
    """Mean over every axis after the channel axis: (B, C, *S) -> (B, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2).mean(dim=2)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions (fan-out, ReLU gain), batch norm weight 1 and bias 0.

    Linear layers keep PyTorch's default initialisation.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def attach_head(model: nn.Module, features: int, num_classes: int) -> None:
    """Give ``model`` its pooling and linear head, initialise its weights, and name the layers
    the hidden-layer methods use: ``mixing_layers`` (the input and the outputs of the first two
    stages), ``feature_layer`` (the pooled features) and ``head``."""
    model.pool = GlobalAvgPool()
    model.fc = nn.Linear(features, num_classes)
    init_weights(model)
    model.mixing_layers = ["", "layer1", "layer2"]
    model.feature_layer = "pool"
    model.head = "fc"
