"""Residual networks with the CIFAR stem (3x3 convolution, stride 1, no max-pool).

- ``PreActResNet``: the pre-activation ResNet of He et al., "Identity Mappings in Deep Residual
  Networks" (ECCV 2016), in the CIFAR form that the FMix experiments use for CIFAR-10/100 and
  Fashion-MNIST: a 3x3 stem convolution with 64 channels, four stages of ``PreActBlock`` (64,
  128, 256, 512 channels; strides 1, 2, 2, 2), a final batch norm + ReLU, global average pooling
  and a linear classifier. Projection shortcuts take the pre-activated input, as in the paper.
- ``ResNet``: the original (post-activation) ResNet with ``BasicBlock`` (ResNet-18) or
  ``Bottleneck`` (ResNet-50, stride on the 3x3 convolution) blocks, laid out and named like
  torchvision's (``conv1``, ``bn1``, ``layer1`` .. ``layer4``, ``fc``; projection shortcuts in
  ``downsample``), so its state dict matches torchvision's model with the same stem; this is the
  CIFAR set-up of the zeta-mixup and SynerMix experiments.

Both expose ``mixing_layers = ["", "layer1", "layer2"]`` (the input and the outputs of the first
two stages, as in Manifold Mixup), ``feature_layer = "pool"`` (global average pooling to (B, D))
and ``head = "fc"``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._common import attach_head

__all__ = ["PreActBlock", "PreActResNet", "BasicBlock", "Bottleneck", "ResNet"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


# ---------------------------------------------------------------------------------------------
# pre-activation ResNet


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus the identity (or a 1x1 projection of the
    pre-activated input when the shape changes)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.shortcut = _conv1x1(cin, planes, stride) if stride != 1 or cin != planes else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet for small images; ``PreActResNet((2, 2, 2, 2))`` is ResNet-18."""

    def __init__(self, blocks=(2, 2, 2, 2), *, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, 64)
        cin = 64
        stages = []
        for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True):
            layers = []
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(cin, planes, s))
                cin = planes * PreActBlock.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(cin)
        attach_head(self, cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        return self.fc(self.pool(out))


# ---------------------------------------------------------------------------------------------
# original ResNet (torchvision layout, CIFAR stem)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the identity or ``downsample`` (1x1 conv + BN), ReLU."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4; BN after each; residual; ReLU."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with the CIFAR stem; ``ResNet(BasicBlock, (2, 2, 2, 2))`` is ResNet-18 and
    ``ResNet(Bottleneck, (3, 4, 6, 3))`` ResNet-50."""

    def __init__(self, block, blocks, *, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        cin = 64
        stages = []
        for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True):
            cout = planes * block.expansion
            downsample = None
            if stride != 1 or cin != cout:
                downsample = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
            layers = [block(cin, planes, stride, downsample)]
            layers += [block(cout, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        attach_head(self, cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.pool(out))
