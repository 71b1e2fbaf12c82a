"""Small networks that train in seconds on a CPU.

- ``SmallCNN``: a VGG-like CNN for small grey or colour images (28x28 Fashion-MNIST, and 8x8
  scikit-learn digits): ``layer1`` = two 3x3 conv-BN-ReLU (16 channels) then 2x2 max-pool,
  ``layer2`` = the same with 32 channels, ``layer3`` = one 3x3 conv-BN-ReLU with 64 channels,
  global average pooling, a linear classifier (36k parameters for 10 classes). Padding keeps
  the sizes, so 28x28 inputs pool to 14x14 and 7x7, 8x8 inputs to 4x4 and 2x2. At this width a
  forward + backward of a 128x1x28x28 batch takes about 60 ms on two CPU threads (a 10k-image
  epoch in about 5 s); twice the width costs about 3.5x the time.
- ``CNN1d``: a 1-D CNN for MNIST-1D signals (1 channel, length 40): three stages of
  Conv1d(kernel 5, padding 2)-BN-ReLU, the last two with stride 2, global average pooling, a
  linear classifier.

Both expose ``mixing_layers = ["", "layer1", "layer2"]``, ``feature_layer = "pool"`` and
``head = "fc"``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._common import attach_head

__all__ = ["SmallCNN", "CNN1d"]


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class _ThreeStages(nn.Module):
    """layer1, layer2, layer3, then the pooled head (``attach_head``)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.layer3(self.layer2(self.layer1(x)))))


class SmallCNN(_ThreeStages):
    """conv(c)x2-pool, conv(2c)x2-pool, conv(4c), global average pool, fc; ``c = width``."""

    def __init__(self, *, num_classes: int, in_channels: int = 1, width: int = 16):
        super().__init__()
        c = width
        self.layer1 = nn.Sequential(*_conv_bn_relu(in_channels, c), *_conv_bn_relu(c, c), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(*_conv_bn_relu(c, 2 * c), *_conv_bn_relu(2 * c, 2 * c), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(*_conv_bn_relu(2 * c, 4 * c))
        attach_head(self, 4 * c, num_classes)


def _conv1d_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 5, stride=stride, padding=2, bias=False),
                         nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class CNN1d(_ThreeStages):
    """Conv1d stages of 32, 64, 128 channels (strides 1, 2, 2), global average pool, fc."""

    def __init__(self, *, num_classes: int, in_channels: int = 1, width: int = 32):
        super().__init__()
        c = width
        self.layer1 = _conv1d_bn_relu(in_channels, c, 1)
        self.layer2 = _conv1d_bn_relu(c, 2 * c, 2)
        self.layer3 = _conv1d_bn_relu(2 * c, 4 * c, 2)
        attach_head(self, 4 * c, num_classes)
