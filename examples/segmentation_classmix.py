"""Semantic segmentation with ClassMix and CutMix: images and class maps mixed together.

Scenes of 32x32 pixels hold one to three objects (squares, discs, crosses: classes 1-3, 0 is the
background), each in a random colour, so only shape tells the classes apart. A small dilated
FCN learns to label every pixel; it is trained three ways from the same initialisation and the
same batches (no mixing, CutMix with the class maps pasted box for box, ClassMix pasting half of
each image's classes onto its partner) and scored by mean IoU on held-out scenes.

Run: ``python examples/segmentation_classmix.py [--steps 300]`` (one to three minutes on 2 CPU cores).
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import mixkit

K = 4                   # background, square, disc, cross
SIZE = 32


def scenes(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` scenes: images (n, 3, SIZE, SIZE) in [0, 1] and class maps (n, SIZE, SIZE), int64."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images = 0.15 * torch.rand(n, 3, SIZE, SIZE, generator=generator)
    maps = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            kind = int(torch.randint(1, K, (1,), generator=generator))
            r = int(torch.randint(4, 8, (1,), generator=generator))
            cy, cx = (int(v) for v in torch.randint(r, SIZE - r, (2,), generator=generator))
            dy, dx = (yy - cy).abs(), (xx - cx).abs()
            if kind == 1:
                shape = (dy <= r) & (dx <= r)
            elif kind == 2:
                shape = dy**2 + dx**2 <= r**2
            else:
                shape = ((dy <= r) & (dx <= 1)) | ((dx <= r) & (dy <= 1))
            colour = 0.3 + 0.7 * torch.rand(3, 1, generator=generator)
            images[i][:, shape] = colour + 0.05 * torch.randn(3, int(shape.sum()), generator=generator)
            maps[i][shape] = kind
    return images.clamp(0, 1), maps


def fcn() -> nn.Module:
    layers, width = [], 32
    for cin, dilation in ((3, 1), (width, 2), (width, 4), (width, 8)):
        layers += [nn.Conv2d(cin, width, 3, padding=dilation, dilation=dilation, bias=False),
                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Conv2d(width, K, 1))


def mean_iou(model: nn.Module, images: torch.Tensor, maps: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(images).argmax(dim=1)
    model.train()
    ious = [((pred == c) & (maps == c)).sum() / ((pred == c) | (maps == c)).sum().clamp(min=1)
            for c in range(K)]
    return float(torch.stack(ious).mean())


def train(mixer, steps: int, batches, init_state) -> nn.Module:
    model = fcn()
    model.load_state_dict(init_state)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        x, seg = batches[step % len(batches)]
        if mixer is not None:
            # labels=None: segmentation only; the mixed class maps come back as the third element
            x, _, seg = mixer(x, None, masks=seg, generator=g)
        loss = F.cross_entropy(model(x), seg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(0)
    train_x, train_seg = scenes(256, data)
    test_x, test_seg = scenes(256, data)
    batches = [(train_x[i:i + args.batch], train_seg[i:i + args.batch])
               for i in range(0, len(train_x), args.batch)]
    init_state = fcn().state_dict()
    for name, mixer in (("none", None), ("cutmix", mixkit.CutMix(num_classes=K, mode="elem")),
                        ("classmix", mixkit.ClassMix(num_classes=K))):
        model = train(mixer, args.steps, batches, init_state)
        print(f"{name}: test mIoU {mean_iou(model, test_x, test_seg):.3f}")


if __name__ == "__main__":
    main()
