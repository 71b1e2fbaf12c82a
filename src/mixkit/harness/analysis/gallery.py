"""The gallery: pictures of what each mixer does, written as PNGs (docs/gallery by default).

``python -m mixkit.harness.analysis.gallery --out docs/gallery`` (or ``mixkit show`` once wired) writes:

- ``mixed_batch.png``: eight Fashion-MNIST test images mixed by MixUp, zeta-mixup (gamma 2.8),
  CutMix, FMix, ResizeMix, SaliencyMix, GridMix, SmoothMix, MixUp+FMix (both of its alternating
  batches) and CutMix then zeta-mixup, each cell titled with the realised weight of the image's own
  input;
- ``classmix.png``: ClassMix on the same images with a made-up segmentation (background 0, the
  garment's pixels its class + 1): images and segmentations before and after, side by side;
- ``transmix.png`` (with ``--transmix-from RUN_DIR``, a small-vit run): CutMix boxes, and the
  class token's attention that TransMix turns into the own label's weight, beside the area weight;
- ``fmix_masks.png``: FMix masks with the paper's isotropic spectrum beside the official code's
  (``spectrum="official"``), 2-D at 32x32 and 1-D at length 64, all at lambda = 0.5;
- ``zeta_weights.png``: the zeta-mixup weights against rank on log axes, N = 32;
- ``half_moons.png``: real half-moons and the synthetic points of mixup and zeta-mixup;
- ``detection.png`` (when torchvision is installed): Mosaic, MixUp, CutMix and Copy-Paste of
  ``mixkit.detection`` on synthetic scenes, boxes, masks and key points drawn
  (``detection_gallery``).

All randomness comes from ``torch.Generator`` seeded with ``--seed``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace

import torch
from torch import Tensor

from ..data.fashion import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist
from .realism import half_moons_realism, mix_with_weights

__all__ = ["plot_mixed_batch", "plot_classmix", "plot_transmix", "plot_fmix_masks", "plot_zeta_weights",
           "make_gallery", "main"]

DPI = 150


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> str:
    """Lay out (below the suptitle, which ``tight_layout`` alone lets the top row's titles run
    into), write ``path`` at the gallery's DPI, close the figure; return the path."""
    fig.tight_layout()
    title = getattr(fig, "_suptitle", None)
    if title is not None and title.get_text():
        height = title.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
        fig.tight_layout(rect=(0.0, 0.0, 1.0, title.get_position()[1] - height - 0.01))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return str(path)


def _gallery_mixers(gamma: float = 2.8) -> list[tuple[str, object]]:
    """(row title, mixer) for the mixed-batch figure: every input-space method the harness trains
    (``mixkit.registry``), per sample where it has a mode, alpha 1, zeta-mixup's ``gamma``; one
    row per part of a method that takes turns (MixUp+FMix), drawn with that part."""
    from mixkit import registry

    options = SimpleNamespace(alpha=1.0, mix_mode="elem", zeta_gamma=gamma, decay_power=3.0,
                              fmix_spectrum="paper")
    rows = []
    for method in registry.methods("input"):
        if method.build is None:
            continue
        mixer = method.build(options, None, None)
        parts = getattr(mixer, "mixers", None)
        if parts is not None and not getattr(mixer, "sequential", False):
            rows += [(f"{method.name}\nbatch {i + 1} ({type(p).__name__})", p) for i, p in enumerate(parts)]
        elif parts is not None:
            rows.append((f"{method.name}\n" + ", then ".join(type(p).__name__ for p in parts), mixer))
        else:
            rows.append((f"{method.name}\n{_settings(mixer)}", mixer))
    return rows


def _settings(mixer) -> str:
    """A mixer's repr on at most two lines of a row title."""
    text = repr(mixer)
    if len(text) <= 24:
        return text
    cut = text.rfind(", ", 0, 24)
    return text if cut < 0 else text[:cut + 1] + "\n" + text[cut + 2:]


def _display_batch(images: Tensor, labels: Tensor, show: int, batch: int) -> tuple[Tensor, Tensor]:
    """A batch of ``batch`` images whose first ``show`` are of distinct classes where possible."""
    chosen: list[int] = []
    for c in labels.unique().tolist():
        if len(chosen) == show:
            break
        chosen.append(int((labels == c).nonzero()[0]))
    rest = [i for i in range(images.shape[0]) if i not in set(chosen)]
    order = (chosen + rest)[:batch]
    return images[order], labels[order]


def plot_mixed_batch(images: Tensor, labels: Tensor, path, *, generator: torch.Generator,
                     show: int = 8, batch: int = 128, gamma: float = 2.8) -> str:
    """Mix a batch of ``batch`` images (``(N, 1, H, W)`` in [0, 1]) with each gallery method and
    plot the first ``show``, titled with the realised weight of each image's own input (read off
    the weight matrix, so for zeta-mixup it is the rank-1 weight for N = ``batch``)."""
    plt = _plt()
    x, y = _display_batch(images, labels, show, batch)
    rows = _gallery_mixers(gamma)
    fig, axes = plt.subplots(len(rows) + 1, show, figsize=(1.25 * show + 1.6, 1.45 * (len(rows) + 1)),
                             squeeze=False)
    for j in range(show):
        ax = axes[0][j]
        ax.imshow(x[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        label = int(y[j])
        name = FASHION_MNIST_CLASSES[label] if label < len(FASHION_MNIST_CLASSES) else str(label)
        ax.set_title(name, fontsize=8)
    axes[0][0].set_ylabel("original", fontsize=8, rotation=0, ha="right", va="center")
    for r, (title, mixer) in enumerate(rows, start=1):
        mixed, weights, _ = mix_with_weights(mixer, x, generator)
        own = weights.diagonal()
        for j in range(show):
            ax = axes[r][j]
            ax.imshow(mixed[j, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"own {float(own[j]):.2f}", fontsize=8)
        axes[r][0].set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Fashion-MNIST test images mixed within a batch of {x.shape[0]}; "
                 "title: weight of the image's own input", fontsize=9)
    return _save(plt, fig, path)


def plot_fmix_masks(path, *, generator: torch.Generator, size: int = 32, length: int = 64,
                    count: int = 6, decay_power: float = 3.0, lam: float = 0.5) -> str:
    """FMix keep masks at ``lam``: 2-D (``size`` x ``size``) and 1-D (``length``), the paper's
    isotropic spectrum beside the official code's (``spectrum="official"``)."""
    from mixkit.functional import fourier_masks

    plt = _plt()
    lam_t = torch.full((count,), float(lam))
    fig = plt.figure(figsize=(1.3 * count + 1.5, 5.8))
    grid = fig.add_gridspec(4, count, height_ratios=[1, 1, 0.55, 0.55])
    for r, spectrum in enumerate(("paper", "official")):
        masks = fourier_masks(lam_t, (size, size), decay_power, generator=generator, spectrum=spectrum)
        for j in range(count):
            ax = fig.add_subplot(grid[r, j])
            ax.imshow(masks[j].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"2-D\n{spectrum}", fontsize=8, rotation=0, ha="right", va="center")
    for r, spectrum in enumerate(("paper", "official"), start=2):
        masks = fourier_masks(lam_t, (length,), decay_power, generator=generator, spectrum=spectrum)
        ax = fig.add_subplot(grid[r, :])
        ax.imshow(masks.numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(count))
        ax.set_yticklabels([str(i + 1) for i in range(count)], fontsize=6)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylabel(f"1-D\n{spectrum}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"FMix keep masks (white = own image), lambda = {lam:g}, delta = {decay_power:g}: "
                 f"paper spectrum vs official code's", fontsize=9)
    return _save(plt, fig, path)


def plot_zeta_weights(path, *, n: int = 32,
                      gammas: Sequence[float] = (1.0, 1.7286, 2.0, 2.8, 4.0)) -> str:
    """The normalised p-series ``k^-gamma / C_n(gamma)`` against rank k, log-log, one line per
    gamma, with the rank-1 (own-sample) weight in the legend."""
    from mixkit.functional import zeta_weights

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    k = torch.arange(1, n + 1)
    for g in gammas:
        w = zeta_weights(n, g)
        ax.loglog(k.numpy(), w.numpy(), marker="o", markersize=3,
                  label=f"gamma={g:g} (own {float(w[0]):.2f})")
    ax.axhline(0.5, color="0.6", linestyle=":", linewidth=1)
    ax.text(n * 0.7, 0.55, "0.5", fontsize=7, color="0.4")
    ax.set_xlabel("rank k (1 = the sample itself)", fontsize=8)
    ax.set_ylabel("weight", fontsize=8)
    ax.set_title(f"zeta-mixup weights, N = {n}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_classmix(images: Tensor, labels: Tensor, path, *, generator: torch.Generator, show: int = 8) -> str:
    """ClassMix on ``show`` images of distinct classes, with a segmentation made from them (pixels
    above 0.1 take the class + 1, the rest 0): originals, their maps, the mixed images and the
    mixed maps (each pasted pixel keeps its partner's class)."""
    from mixkit.mixers import ClassMix

    plt = _plt()
    x, y = _display_batch(images, labels, show, show)
    seg = torch.where(x[:, 0] > 0.1, y.view(-1, 1, 1) + 1, 0)
    classes = int(seg.max()) + 1
    mixed, _, seg_mixed = ClassMix(num_classes=classes)(x, None, masks=seg, generator=generator)
    rows = [("image", x[:, 0], "gray"), ("segmentation", seg, "tab20"),
            ("ClassMix\nimage", mixed[:, 0], "gray"), ("ClassMix\nsegmentation", seg_mixed, "tab20")]
    fig, axes = plt.subplots(len(rows), show, figsize=(1.25 * show + 1.6, 1.45 * len(rows)), squeeze=False)
    for r, (title, data, cmap) in enumerate(rows):
        for j in range(show):
            ax = axes[r][j]
            gray = cmap == "gray"
            ax.imshow(data[j].numpy(), cmap=cmap, vmin=0, vmax=1 if gray else 19, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("ClassMix: half of the classes present in the partner's map (here background or garment) "
                 "pasted with their pixels", fontsize=9)
    return _save(plt, fig, path)


def plot_transmix(run_dir: str, images: Tensor, labels: Tensor, path, *, generator: torch.Generator,
                  show: int = 8) -> str:
    """TransMix with the ViT trained in ``run_dir`` (``--model small-vit``) on ``show`` images of
    distinct classes, one CutMix box each (elem mode): the image, its partner, the mixed image,
    and the class token's attention on the patch grid of the mixed image (the ViT's last
    attention layer, as TransMix reads it) with the pasted box outlined; each column is titled
    with the area weight of the image's own label and the weight TransMix computes from the
    attention (the share of the attention on the image's own pixels)."""
    from mixkit.mixers import CutMix
    from mixkit.transmix import TransMix

    from ..train.saved import load_trained_model

    model, cfg, data = load_trained_model(run_dir)
    if not hasattr(model, "attention_layer"):
        raise ValueError(f"run_dir: expected a run trained with --model small-vit, got {cfg.model!r} "
                         f"in {run_dir}")
    plt = _plt()
    x, y = _display_batch(images, labels, show, show)
    mixer = CutMix(alpha=1.0, mode="elem", num_classes=data.num_classes)
    replay = torch.Generator().set_state(generator.get_state())
    params = mixer.sample(x, generator=replay)
    mixed = mixer.apply(x, y, params)[0]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    tm = TransMix(model, model.attention_layer, mixer=mixer, num_classes=data.num_classes, area_weight=0.0)
    model.train()   # TransMix mixes only in training mode (the small ViT has no dropout or batch norm)
    try:
        with torch.no_grad():
            tm((x - mean) / std, y, generator=generator)
        attention = tm.taps.rows[:, model.num_prefix_tokens:].reshape(show, *model.grid)
        lam_attn = tm.last_lam_attn
    finally:
        tm.taps.remove()
        model.eval()
    index = params.index
    rows = [("image", x[:, 0]), ("partner", x[index, 0]), ("CutMix", mixed[:, 0])]
    fig, axes = plt.subplots(4, show, figsize=(1.25 * show + 1.6, 1.55 * 4), squeeze=False)
    for r, (title, data_row) in enumerate(rows):
        for j in range(show):
            axes[r][j].imshow(data_row[j].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r][0].set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
    height, width = x.shape[-2:]
    for j in range(show):
        ax = axes[3][j]
        ax.imshow(mixed[j, 0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.imshow(attention[j].numpy(), cmap="inferno", alpha=0.6, interpolation="nearest",
                  extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        (y0, y1), (x0, x1) = (int(v) for v in params.boxes[j, 0]), (int(v) for v in params.boxes[j, 1])
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="cyan", lw=1))
        ax.set_title(f"area {float(params.lam[j]):.2f}\nattn {float(lam_attn[j]):.2f}", fontsize=7)
    axes[3][0].set_ylabel("class-token\nattention", fontsize=8, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"TransMix: the own label's weight from the class token's attention ({cfg.model} of "
                 f"{os.path.basename(os.path.normpath(run_dir))}; cyan: the partner's box)", fontsize=9)
    return _save(plt, fig, path)


def make_gallery(out, *, images: Tensor | None = None, labels: Tensor | None = None, seed: int = 0,
                 data_root: str = FASHION_MNIST_DIR, moon_draws: int = 4,
                 gammas: Sequence[float] = (2.0, 2.8, 4.0), batch: int = 128,
                 transmix_from: str | None = None) -> list[str]:
    """Write every gallery PNG into ``out`` and return their paths. ``images``/``labels``
    (``(N, 1, H, W)`` in [0, 1]) default to the first 1,000 Fashion-MNIST test images.
    ``transmix_from``: a run directory of a small-vit trained on those images' data set; adds
    ``transmix.png`` (TransMix needs a trained ViT's attention, so it is drawn only when given)."""
    if transmix_from is not None:   # refused before any picture is drawn, not after the others
        from ..train.saved import check_run_dir
        check_run_dir(transmix_from, "transmix_from")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    if images is None:
        images, labels = load_fashion_mnist("test", 1000, data_root)
    if labels is None:
        raise ValueError("labels: expected a tensor when images are given, got None")
    paths = [
        plot_mixed_batch(images, labels, os.path.join(out, "mixed_batch.png"), generator=g,
                         batch=min(batch, images.shape[0])),
        plot_classmix(images, labels, os.path.join(out, "classmix.png"), generator=g),
        plot_fmix_masks(os.path.join(out, "fmix_masks.png"), generator=g),
        plot_zeta_weights(os.path.join(out, "zeta_weights.png")),
    ]
    if transmix_from is not None:
        paths.append(plot_transmix(transmix_from, images, labels, os.path.join(out, "transmix.png"),
                                   generator=g))
    from .realism import plot_half_moons

    moons = half_moons_realism(tuple(gammas), draws=moon_draws, seed=seed, keep_points=True)
    moons_path = os.path.join(out, "half_moons.png")
    plot_half_moons(moons, moons_path, seed=seed)
    paths.append(moons_path)
    if importlib.util.find_spec("torchvision") is not None:
        from .detection_gallery import plot_detection

        paths.append(plot_detection(os.path.join(out, "detection.png"), generator=g))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mixkit show``: write the gallery PNGs and print their paths."""
    parser = argparse.ArgumentParser(prog="mixkit show", description="Write the gallery PNGs.")
    parser.add_argument("--out", default="docs/gallery", help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=0, help="torch.Generator seed")
    parser.add_argument("--data-root", default=FASHION_MNIST_DIR,
                        help="folder with the Fashion-MNIST IDX .gz files")
    parser.add_argument("--moon-draws", type=int, default=4,
                        help="passes over the 512 half-moon points per method")
    parser.add_argument("--transmix-from", default=None, metavar="RUN_DIR",
                        help="also draw transmix.png with the small-vit trained in RUN_DIR "
                             "(e.g. mixkit train --preset transmix-fmnist --method transmix)")
    args = parser.parse_args(argv)
    if args.moon_draws < 1:
        print(f"mixkit show: error: --moon-draws: expected an integer >= 1, got {args.moon_draws}",
              file=sys.stderr)
        return 2
    for p in make_gallery(args.out, seed=args.seed, data_root=args.data_root,
                          moon_draws=args.moon_draws, transmix_from=args.transmix_from):
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
