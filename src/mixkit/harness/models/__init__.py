"""The mixkit model zoo: the networks of the papers' experiments, built by name.

``build_model(name, num_classes=K, input_shape=shape)`` returns one of ``MODELS``:

- ``"preact-resnet18"``: pre-activation ResNet-18 with the CIFAR stem (FMix's CIFAR and
  Fashion-MNIST experiments);
- ``"resnet18"``, ``"resnet50"``: ResNet-18 / ResNet-50 with the CIFAR stem (3x3 convolution,
  stride 1, no max-pool), laid out like torchvision's (zeta-mixup and SynerMix CIFAR set-ups);
- ``"small-cnn"``: a small CNN that trains on CPU in seconds (28x28 Fashion-MNIST, 8x8 digits);
- ``"cnn1d"``: a 1-D CNN for MNIST-1D signals;
- ``"small-vit"``: a small vision transformer with a class token (4 blocks, width 64) in 4x4
  patches (2x2 for sides under 16), the model ``--method transmix`` needs.

``input_shape`` is (C, H, W) for the image models and (C, L) for ``"cnn1d"``; C sets the
input channels. Every model carries three plain attributes that the hidden-layer methods
(``mixkit.ManifoldMixup``, ``mixkit.SynerMix``) take by name:

- ``mixing_layers``: ``["", "layer1", "layer2"]``, the input and the outputs of the first two
  stages, the layers Manifold Mixup mixes at; each runs exactly once per forward;
- ``feature_layer``: ``"pool"``, global average pooling whose output is the (B, D) penultimate
  feature;
- ``head``: ``"fc"``, the linear classifier mapping (B, D) to (B, num_classes).

``small-vit`` also names ``attention_layer``, the attention module ``mixkit.TransMix`` reads.

``forward`` ends with ``self.fc(self.pool(out))``: a forward hook on ``feature_layer`` sees the
features and ``getattr(model, model.head)(features)`` gives the logits. Convolutions use
Kaiming-normal initialisation, batch norms weight 1 and bias 0, linear layers PyTorch's default.

Example:

```python
>>> import torch, mixkit
>>> from mixkit.harness.models import build_model
>>> net = build_model("small-cnn", num_classes=10, input_shape=(1, 28, 28))
>>> net(torch.randn(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> mm = mixkit.ManifoldMixup(net, net.mixing_layers, num_classes=10)

```
"""

from __future__ import annotations

from torch import nn

from ..checks import positive_int
from .resnet import BasicBlock, Bottleneck, PreActResNet, ResNet
from .small import CNN1d, SmallCNN
from .vit import SmallViT

__all__ = ["MODELS", "build_model", "count_parameters", "PreActResNet", "ResNet", "SmallCNN", "CNN1d",
           "SmallViT"]

MODELS: tuple[str, ...] = ("preact-resnet18", "resnet18", "resnet50", "small-cnn", "cnn1d", "small-vit")

# The models that take (C, L) signals; all others take (C, H, W) images.
_SIGNAL_MODELS = ("cnn1d",)
# Smallest spatial size (H and W) the image models accept: small-cnn max-pools twice.
_MIN_SIZE = {"small-cnn": 4, "small-vit": 2}


def build_model(name: str, *, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """A freshly initialised model of ``MODELS`` for inputs of shape (B, *input_shape).

    Raises ValueError for an unknown ``name``, a ``num_classes`` that is not an integer >= 1, or
    an ``input_shape`` of the wrong kind: (C, H, W) for the image models, (C, L) for ``cnn1d``.
    """
    if name not in MODELS:
        raise ValueError(f"name: expected one of {', '.join(repr(m) for m in MODELS)}, got {name!r}")
    positive_int("num_classes", num_classes)
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape: expected a tuple of ints, got {input_shape!r}") from None
    if name in _SIGNAL_MODELS:
        want, layout = 2, "(C, L) for a 1-D signal"
    else:
        want, layout = 3, "(C, H, W) for an image"
    if len(shape) != want:
        raise ValueError(f"input_shape: model {name!r} expected {layout}, got {shape!r} "
                         f"({len(shape)} dimension{'s' if len(shape) != 1 else ''})")
    for s in shape:
        positive_int(f"input_shape {shape!r}", s)
    low = _MIN_SIZE.get(name, 1)
    if any(s < low for s in shape[1:]):
        raise ValueError(f"input_shape: model {name!r} expected spatial sizes >= {low}, got {shape!r}")

    channels = shape[0]
    if name == "preact-resnet18":
        return PreActResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=channels)
    if name == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=channels)
    if name == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=channels)
    if name == "small-cnn":
        return SmallCNN(num_classes=num_classes, in_channels=channels)
    if name == "small-vit":
        patch = 4 if min(shape[1:]) >= 16 else 2
        return SmallViT(num_classes=num_classes, in_channels=channels, image_size=shape[1:], patch_size=patch)
    return CNN1d(num_classes=num_classes, in_channels=channels)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
