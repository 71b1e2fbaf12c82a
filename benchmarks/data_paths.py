"""Training images per second through the harness's two data paths, on this machine.

    python benchmarks/data_paths.py [--out docs/bench/data_paths.md] [--epochs 2]

For each case it times whole epochs of ``train/feed.py``: the in-memory feed (gather by index,
batched crop/flip/Cutout on the device) and the streaming feed (DataLoader with 0, 1 and 2
workers, per-sample torchvision v2 transforms), first feeding only (loading and augmentation), then
feeding plus a training step of the small CNN with MixUp (what ``mixkit train`` reports as img/s).
Cases: Fashion-MNIST (28 x 28 greyscale, 10,000 training images; ``digits`` when the Fashion-MNIST
files are absent) and an ImageFolder of 600 JPEG photos of 320 x 240 pixels written to a temporary
folder, read at 64 x 64 (crop-flip) and with RandomResizedCrop (stream only). The best of the
timed epochs is kept (the first epoch is a warm-up). Figures are printed and, with ``--out``,
written as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch

from mixkit.harness.data.datasets import load_dataset
from mixkit.harness.models import build_model
from mixkit.harness.train.config import TrainConfig
from mixkit.harness.train.dist import DistInfo
from mixkit.harness.train.feed import build_feed, epoch_batches
from mixkit.losses import soft_target_cross_entropy
from mixkit.mixers import MixUp


def _photos(root: str, n: int = 600, classes: int = 4) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", n // 5)):
        for i in range(count):
            c = i % classes
            d = os.path.join(root, split, f"c{c}")
            os.makedirs(d, exist_ok=True)
            base = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            img = Image.fromarray(base).resize((320, 240), Image.Resampling.BICUBIC)
            img.save(os.path.join(d, f"{i}.jpg"), quality=90)
    return root


def _epoch(feed, cfg, epoch, step=None) -> float:
    """Images per second of one epoch of ``feed`` (with ``step(augmented, labels)`` per batch)."""
    gen = torch.Generator().manual_seed(epoch)
    batches = epoch_batches(cfg, feed.meta.n_train, epoch, DistInfo(), None)
    n = sum(len(b) for b in batches)
    t0 = time.perf_counter()
    for _, augmented, labels in feed.train_batches(epoch, batches, gen):
        if step is not None:
            step(augmented, labels, gen)
    return n / (time.perf_counter() - t0)


def _trainer(feed, cfg):
    model = build_model(cfg.model, num_classes=feed.meta.num_classes, input_shape=feed.meta.input_shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mixer = MixUp(alpha=1.0, num_classes=feed.meta.num_classes)

    def step(x, y, gen):
        mixed, soft = mixer(x, y, generator=gen)
        loss = soft_target_cross_entropy(model(mixed), soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _cases(photos: str) -> list[tuple[str, dict]]:
    try:
        load_dataset("fashion-mnist", train_size=100)
        small = dict(dataset="fashion-mnist", train_size=10000, test_size=1000)
        label = "Fashion-MNIST 28x28, 10,000 images"
    except (FileNotFoundError, OSError):
        small = dict(dataset="digits")
        label = "digits 8x8, 1,437 images"
    folder = dict(dataset="imagefolder", data_dir=photos, image_size=64)
    return [(label, dict(small, augment="crop-flip", cutout=8)),
            ("ImageFolder 600 JPEGs 320x240 -> 64x64, crop-flip", dict(folder, augment="crop-flip")),
            ("ImageFolder 600 JPEGs 320x240 -> 64x64, rrc-flip", dict(folder, augment="rrc-flip"))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="write the table (Markdown) here")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement (after a warm-up)")
    ns = p.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = _photos(os.path.join(tmp, "photos"))
        for label, fields in _cases(photos):
            for loader, workers in (("memory", 0), ("stream", 0), ("stream", 1), ("stream", 2)):
                if fields["augment"] == "rrc-flip" and loader == "memory":
                    continue
                cfg = TrainConfig(**fields, loader=loader, workers=workers, batch_size=64, model="small-cnn",
                                  device="cpu")
                t0 = time.perf_counter()
                feed = build_feed(cfg, torch.device("cpu"), with_originals=False)
                setup = time.perf_counter() - t0
                feed_only = max(_epoch(feed, cfg, e) for e in range(ns.epochs + 1))
                step = _trainer(feed, cfg)
                train = max(_epoch(feed, cfg, e, step) for e in range(ns.epochs + 1))
                rows.append((label, loader, workers if loader == "stream" else "–", setup, feed_only, train))
                print(f"{label:52s} {loader:6s} workers {rows[-1][2]!s:2s} set-up {setup:6.2f} s  "
                      f"feed {feed_only:9.0f} img/s  feed+train {train:7.0f} img/s", flush=True)
    table = ["| data | loader | workers | set-up (s) | feeding only (img/s) | feeding + MixUp training "
             "step, small CNN (img/s) |", "|---|---|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d:.2f} | {e:,.0f} | {f:,.0f} |" for a, b, c, d, e, f in rows]
    machine = platform.processor() or platform.machine()
    text = (f"# Data paths: training images per second\n\n{time.strftime('%Y-%m-%d %H:%M')} UTC, "
            f"{machine}, {os.cpu_count()} cores, torch {torch.__version__}, batch 64, best of "
            f"{ns.epochs} epochs after a warm-up. Command: `python benchmarks/data_paths.py`.\n\n"
            + "\n".join(table) + "\n")
    print(text)
    if ns.out:
        with open(ns.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
