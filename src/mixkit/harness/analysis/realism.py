"""Realism of mixed samples: how far synthetic samples fall from the data.

zeta-mixup (Abhishek, Brown, Hamarneh; arXiv 2204.03323) claims its synthetic samples stay nearer
the data manifold than mixup's; the official code only plots them (2-D half-moons, 512 points,
noise 0.1, batch 32, mixup with alpha = 1). Here the claim is measured.

The metric: the Euclidean distance from each synthetic sample to its nearest real sample
(``nearest_real_distance``). Why this one:

- It needs no model of the manifold: the real samples are the only evidence of where the data
  lie, and a sample that sits far from all of them is off the data in the plainest sense.
- It is in the units of the data, so it can be compared with the noise level (half-moons) or with
  the typical gap between a real sample and its nearest neighbour (images), which makes 1.0 read as
  "as close to the data as a real sample is".
- On the half-moons the manifold is known in closed form (two half circles), so the distance to
  the *clean* manifold (``moons_manifold_distance``) is measured as well: the nearest-real
  distance can be small simply because the synthetic point lands between two noisy real points,
  the clean-manifold distance cannot.

Caveats, stated where the numbers are reported (docs/analysis.md): in pixel space an average of
two images is blurry, and Euclidean distance rewards blur (an average can be nearer to some real
image than either parent is), so pixel-space distances flatter blending methods against masking
ones; a learnt feature space (``feature_fn``) is the fairer judge between the two families. Every
synthetic sample's own source is in the real set by default (as in training), so a method that
barely moves its samples scores well: ``shift`` (distance from the dominant parent) is reported
next to the realism numbers so the trade-off is visible.

Run ``python -m mixkit.harness.analysis.realism`` to print the tables of docs/analysis.md.
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..data.datasets import FASHION_MNIST_DIR, load_fashion_mnist

__all__ = [
    "nearest_real_distance",
    "moons_manifold_distance",
    "make_moons",
    "mix_with_weights",
    "half_moons_realism",
    "plot_half_moons",
    "image_realism",
    "trained_feature_fn",
    "main",
]


# ---------------------------------------------------------------------------------------------
# Distances


def nearest_real_distance(
    synthetic: Tensor, real: Tensor, k: int = 1, *, chunk: int = 1024, return_index: bool = False
):
    """Distance ``(M,)`` from each row of ``synthetic (M, D)`` to its k-th nearest row of
    ``real (N, D)`` (Euclidean, float64 accumulation, computed in chunks of ``chunk`` rows so that
    memory stays at ``chunk * N`` distances).

    To measure real samples against their own set, pass ``k=2``: the nearest one is the sample
    itself at distance 0. ``return_index=True`` also returns the index ``(M,)`` of that real row.
    """
    if synthetic.ndim != 2 or real.ndim != 2 or synthetic.shape[1] != real.shape[1]:
        raise ValueError(
            f"synthetic, real: expected (M, D) and (N, D) with the same D, got "
            f"{tuple(synthetic.shape)} and {tuple(real.shape)}"
        )
    if not 1 <= k <= real.shape[0]:
        raise ValueError(f"k: expected an integer in [1, {real.shape[0]}], got {k}")
    real64 = real.to(torch.float64)
    dist = torch.zeros(0, dtype=torch.float64)
    index = torch.zeros(0, dtype=torch.int64)
    dists, indices = [dist], [index]
    for start in range(0, synthetic.shape[0], chunk):
        block = synthetic[start : start + chunk].to(torch.float64)
        d = torch.cdist(block, real64, compute_mode="use_mm_for_euclid_dist")
        top = d.topk(k, dim=1, largest=False, sorted=True)
        dists.append(top.values[:, k - 1])
        indices.append(top.indices[:, k - 1])
    dist, index = torch.cat(dists), torch.cat(indices)
    return (dist, index) if return_index else dist


def moons_manifold_distance(points: Tensor) -> Tensor:
    """Distance ``(M,)`` from 2-D points ``(M, 2)`` to the noise-free half-moons of
    scikit-learn's ``make_moons``: the upper unit half circle centred at (0, 0) and the lower unit
    half circle centred at (1, 0.5).

    For a point whose direction from a circle's centre falls inside the arc, the nearest arc point
    is the radial projection (distance ``| |p - c| - 1 |``); otherwise it is an end of the arc.
    """
    p = points.to(torch.float64)

    def arc(centre: tuple[float, float], upper: bool, ends: Tensor) -> Tensor:
        rel = p - torch.tensor(centre, dtype=torch.float64)
        radial = (rel.norm(dim=1) - 1.0).abs()
        inside = rel[:, 1] >= 0 if upper else rel[:, 1] <= 0
        to_ends = torch.cdist(p, ends).min(dim=1).values
        return torch.where(inside, radial, to_ends)

    outer = arc((0.0, 0.0), True, torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))
    inner = arc((1.0, 0.5), False, torch.tensor([[0.0, 0.5], [2.0, 0.5]], dtype=torch.float64))
    return torch.minimum(outer, inner)


def make_moons(n: int = 512, noise: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """scikit-learn's ``make_moons`` (imported here, lazily) as float32 points ``(n, 2)`` and int64
    labels ``(n,)``."""
    from sklearn.datasets import make_moons as sk_make_moons

    x, y = sk_make_moons(n_samples=n, noise=noise, random_state=seed)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def _summary(d: Tensor) -> dict[str, float]:
    d = d.to(torch.float64)
    return {
        "mean": float(d.mean()),
        "median": float(d.median()),
        "p90": float(torch.quantile(d, 0.9)),
    }


def _without_classes(mixer):
    """A copy of ``mixer`` (and of the mixers inside a combination) with ``num_classes=None``, so
    that it accepts any probability labels, such as the one-hot sample ids used below."""
    m = copy.deepcopy(mixer)
    stack = [m]
    while stack:
        cur = stack.pop()
        if hasattr(cur, "num_classes"):
            cur.num_classes = None
        stack.extend(getattr(cur, "mixers", []))
    return m


def mix_with_weights(mixer, x: Tensor, generator: torch.Generator | None = None, *,
                     _stripped: bool = False):
    """Mix ``x (B, *)`` once and return ``(mixed, weights, params)``, where ``weights (B, B)``
    row p holds the share of every input sample in synthetic sample p (for masks: the realised
    pixel share). It is read off by mixing one-hot sample ids as labels, so it holds for every
    mixer and combination whose label mixing matches its input mixing."""
    m = mixer if _stripped else _without_classes(mixer)
    params = m.sample(x, generator=generator)
    ids = torch.eye(x.shape[0], dtype=torch.float32, device=x.device)
    mixed, weights = m.apply(x, ids, params)
    return mixed, weights, params


def _synthesize(
    mixer, x: Tensor, batch: int, draws: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle ``x`` into batches of ``batch`` (the last partial batch dropped) ``draws`` times and
    mix each batch. Returns the synthetic samples, their own-sample weights and the index (into
    ``x``) of each one's dominant parent (the input with the largest weight)."""
    n = x.shape[0]
    m = _without_classes(mixer)
    outs, owns, dominant = [], [], []
    for _ in range(draws):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - batch + 1, batch):
            idx = perm[start : start + batch]
            mixed, weights, _ = mix_with_weights(m, x[idx], generator, _stripped=True)
            outs.append(mixed)
            owns.append(weights.diagonal().clone())
            dominant.append(idx[weights.argmax(dim=1)])
    return torch.cat(outs), torch.cat(owns), torch.cat(dominant)


def _default_mixers(gammas: Sequence[float], alpha: float) -> dict:
    from mixkit.mixers import MixUp, ZetaMixup

    mixers = {f"mixup (alpha={alpha:g})": MixUp(alpha=alpha)}
    for g in gammas:
        mixers[f"zeta-mixup (gamma={g:g})"] = ZetaMixup(gamma=g)
    return mixers


# ---------------------------------------------------------------------------------------------
# Half-moons


def half_moons_realism(
    gammas: Sequence[float] = (2.0, 2.8, 4.0),
    n: int = 512,
    noise: float = 0.1,
    batch: int = 32,
    draws: int = 20,
    seed: int = 0,
    *,
    alpha: float = 1.0,
    mixers: dict | None = None,
    keep_points: bool = False,
) -> dict:
    """Mix the half-moons (scikit-learn ``make_moons``, as the official zeta-mixup demo) with
    mixup (Beta(alpha, alpha)) and zeta-mixup at each gamma, and measure how far the synthetic
    points fall from the data.

    Each of ``draws`` passes shuffles the ``n`` points into batches of ``batch`` and mixes every
    batch, so each method makes ``draws * (n // batch) * batch`` synthetic points.

    Returns a dict with ``config``, ``real`` (the real points' own numbers: distance to the clean
    manifold, which is the noise, and to the nearest *other* real point) and ``methods``: for each
    method ``nearest_real`` and ``clean_manifold`` (each ``mean`` / ``median`` / ``p90``),
    ``shift`` (mean distance to the dominant parent), ``own_weight`` (mean weight of the own
    sample), ``count``; with ``keep_points=True`` also ``points`` (real) and per method
    ``points`` (synthetic) for plotting.
    """
    x, y = make_moons(n, noise, seed)
    g = torch.Generator().manual_seed(seed)
    if mixers is None:
        mixers = _default_mixers(gammas, alpha)
    real_clean = moons_manifold_distance(x)
    real_nn = nearest_real_distance(x, x, k=2)
    result: dict = {
        "config": {"gammas": list(gammas), "n": n, "noise": noise, "batch": batch, "draws": draws,
                   "seed": seed, "alpha": alpha},
        "real": {"clean_manifold": _summary(real_clean), "nearest_other_real": _summary(real_nn),
                 "count": n},
        "methods": {},
    }
    if keep_points:
        result["points"] = x
        result["labels"] = y
    for name, mixer in mixers.items():
        synth, own, dominant = _synthesize(mixer, x, batch, draws, g)
        shift = (synth.to(torch.float64) - x[dominant].to(torch.float64)).norm(dim=1)
        entry = {
            "nearest_real": _summary(nearest_real_distance(synth, x)),
            "clean_manifold": _summary(moons_manifold_distance(synth)),
            "shift": float(shift.mean()),
            "own_weight": float(own.mean()),
            "count": int(synth.shape[0]),
        }
        if keep_points:
            entry["points"] = synth
        result["methods"][name] = entry
    return result


def plot_half_moons(result: dict, path: str | os.PathLike | None = None, *, max_points: int = 2048,
                    seed: int = 0):
    """Scatter the real points (grey) and each method's synthetic points, one panel per method.

    ``result`` comes from ``half_moons_realism(..., keep_points=True)``. Returns the matplotlib
    figure; with ``path`` it is also saved there (PNG) and closed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "points" not in result:
        raise ValueError("result: expected the output of half_moons_realism(..., keep_points=True)")
    real = result["points"].numpy()
    methods = result["methods"]
    panels = len(methods)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 2.7), sharex=True, sharey=True,
                             squeeze=False)
    g = torch.Generator().manual_seed(seed)
    for ax, (name, entry) in zip(axes[0], methods.items(), strict=True):
        pts = entry["points"]
        if pts.shape[0] > max_points:
            pts = pts[torch.randperm(pts.shape[0], generator=g)[:max_points]]
        ax.scatter(real[:, 0], real[:, 1], s=4, c="0.6", label="real", linewidths=0)
        ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), s=3, c="tab:red", alpha=0.35,
                   label="synthetic", linewidths=0)
        nr, cm = entry["nearest_real"], entry["clean_manifold"]
        ax.set_title(f"{name}\nnearest real {nr['mean']:.3f}, manifold {cm['mean']:.3f}",
                     fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle(f"half-moons (n={result['config']['n']}, noise={result['config']['noise']}, "
                 f"batch {result['config']['batch']}): mean distances of synthetic points",
                 fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig


# ---------------------------------------------------------------------------------------------
# Images


def image_realism(
    images: Tensor,
    labels: Tensor,
    gammas: Sequence[float] = (2.0, 2.8, 4.0),
    *,
    reference: Tensor | None = None,
    batch: int = 128,
    draws: int = 1,
    alpha: float = 1.0,
    seed: int = 0,
    mixers: dict | None = None,
    reference_labels: Tensor | None = None,
    feature_fn: Callable[[Tensor], Tensor] | None = None,
    chunk: int = 1024,
) -> dict:
    """Nearest-real-image distances of mixed images, in pixel space (or ``feature_fn`` space).

    ``images (N, C, H, W)`` are shuffled into batches of ``batch`` and mixed (``draws`` passes) by
    mixup (alpha) and zeta-mixup at each gamma, or by ``mixers`` (a name -> mixer dict). Each
    synthetic image is flattened (or mapped by ``feature_fn``, which takes a batch of images and
    returns ``(B, D)``) and its distance to the nearest image of ``reference`` (default: ``images``
    themselves, the training set the samples came from) is taken.

    Normalisation: distances are divided by the median distance from a real image of ``images``
    to its nearest *other* image of the reference set (``k=2`` when the reference is ``images``),
    so 1.0 means "as close to the data as a typical real image is to its nearest neighbour".
    Euclidean distance on raw pixels is used because it is the plainest model-free notion of
    "near the data" and can be checked by eye; its bias (blur is rewarded) is discussed in the
    module docstring.

    Returns ``config``, ``scale`` (the normaliser), ``real`` (the real images' normalised
    nearest-other distances) and ``methods``: ``nearest_real`` (normalised mean / median / p90),
    ``shift`` (mean normalised distance to the dominant parent), ``own_weight``, ``count`` and
    ``label_agreement``: the fraction of synthetic images whose nearest real image has the label
    of their dominant parent (``labels`` against ``reference_labels``, which default to
    ``labels`` when the reference is ``images``; None when no reference labels are known).
    """
    g = torch.Generator().manual_seed(seed)
    if mixers is None:
        mixers = _default_mixers(gammas, alpha)
    embed = feature_fn if feature_fn is not None else (lambda t: t.reshape(t.shape[0], -1))

    def features(t: Tensor) -> Tensor:
        parts = [embed(t[i : i + chunk]).reshape(min(chunk, t.shape[0] - i), -1)
                 for i in range(0, t.shape[0], chunk)]
        return torch.cat(parts).to(torch.float64)

    with torch.no_grad():
        real_feat = features(images)
        ref_feat = real_feat if reference is None else features(reference)
        k_real = 2 if reference is None else 1
        real_nn = nearest_real_distance(real_feat, ref_feat, k=k_real, chunk=chunk)
        ref_labels = labels if reference is None else reference_labels
        scale = float(real_nn.median())
        result: dict = {
            "config": {"gammas": list(gammas), "n": int(images.shape[0]), "batch": batch,
                       "draws": draws, "alpha": alpha, "seed": seed,
                       "reference": "images" if reference is None else int(reference.shape[0]),
                       "space": "pixels" if feature_fn is None else "features"},
            "scale": scale,
            "real": {"nearest_real": _summary(real_nn / scale), "count": int(images.shape[0])},
            "methods": {},
        }
        for name, mixer in mixers.items():
            synth, own, dominant = _synthesize(mixer, images, batch, draws, g)
            synth_feat = features(synth)
            shift = (synth_feat - real_feat[dominant]).norm(dim=1)
            d, nearest = nearest_real_distance(synth_feat, ref_feat, chunk=chunk, return_index=True)
            agree = None
            if ref_labels is not None:
                agree = float((ref_labels[nearest] == labels[dominant]).to(torch.float64).mean())
            result["methods"][name] = {
                "label_agreement": agree,
                "nearest_real": _summary(d / scale),
                "shift": float(shift.mean()) / scale,
                "own_weight": float(own.mean()),
                "count": int(synth.shape[0]),
            }
    return result


# ---------------------------------------------------------------------------------------------
# Command line: prints the tables of docs/analysis.md


def _table(result: dict, keys: Sequence[str], agreement: bool = False) -> str:
    rows = []
    extra = " | NN label = parent's |" if agreement else " |"
    header = "| method | own weight | shift | " + " | ".join(
        f"{k} mean | {k} median | {k} p90" for k in keys) + extra
    rows.append(header)
    rows.append("|" + "---|" * (3 + 3 * len(keys) + int(agreement)))
    for name, e in result["methods"].items():
        cells = [name, f"{e['own_weight']:.3f}", f"{e['shift']:.3f}"]
        for k in keys:
            cells += [f"{e[k]['mean']:.3f}", f"{e[k]['median']:.3f}", f"{e[k]['p90']:.3f}"]
        if agreement:
            cells.append(f"{e['label_agreement']:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def trained_feature_fn(run_dir: str) -> Callable[[Tensor], Tensor]:
    """``images in [0, 1] (B, 1, 28, 28) -> (B, D)`` penultimate features of the model trained in
    ``run_dir`` (its ``config.yaml`` and ``checkpoint.pt``), with the run's own normalisation."""
    from ..data.datasets import load_dataset
    from ..features import LayerCapture
    from ..models import build_model
    from ..train.checkpoint import load_checkpoint
    from ..train.config import config_from_dict, read_yaml

    cfg = config_from_dict(read_yaml(os.path.join(run_dir, "config.yaml")))
    if cfg.dataset != "fashion-mnist":
        raise ValueError(f"run_dir: expected a run trained on fashion-mnist, got {cfg.dataset!r}")
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, train_size=cfg.train_size,
                        test_size=cfg.test_size, seed=cfg.data_seed)
    model = build_model(cfg.model, num_classes=data.num_classes, input_shape=data.input_shape)
    model.load_state_dict(load_checkpoint(os.path.join(run_dir, "checkpoint.pt"))["model"])
    model.eval()
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    capture = LayerCapture(model, model.feature_layer)

    @torch.no_grad()
    def features(images: Tensor) -> Tensor:
        return capture((images.float() - mean) / std)

    return features


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mixkit.harness.analysis.realism [--moons-draws 20] [--images 5000] [--skip-images]``"""
    parser = argparse.ArgumentParser(prog="python -m mixkit.harness.analysis.realism",
                                     description="Realism of mixup vs zeta-mixup samples.")
    parser.add_argument("--gammas", type=float, nargs="+", default=[2.0, 2.8, 4.0])
    parser.add_argument("--moons-draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=5000, help="Fashion-MNIST training images")
    parser.add_argument("--image-batch", type=int, default=128)
    parser.add_argument("--data-root", default=FASHION_MNIST_DIR)
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--with-masks", action="store_true",
                        help="add CutMix and FMix rows to the image table")
    parser.add_argument("--image-draws", type=int, default=1)
    parser.add_argument("--features-from", default=None, metavar="RUN_DIR",
                        help="measure in the penultimate-feature space of the model trained in "
                             "RUN_DIR (a mixkit train run on fashion-mnist) instead of pixels")
    args = parser.parse_args(argv)

    moons = half_moons_realism(tuple(args.gammas), draws=args.moons_draws, seed=args.seed)
    r = moons["real"]
    print(f"## half-moons (n=512, noise=0.1, batch 32, {args.moons_draws} passes, seed {args.seed})")
    print(f"real points: clean manifold mean {r['clean_manifold']['mean']:.3f} median "
          f"{r['clean_manifold']['median']:.3f} p90 {r['clean_manifold']['p90']:.3f}; nearest other "
          f"real mean {r['nearest_other_real']['mean']:.3f} median "
          f"{r['nearest_other_real']['median']:.3f} p90 {r['nearest_other_real']['p90']:.3f}")
    print(_table(moons, ["nearest_real", "clean_manifold"]))
    if args.skip_images:
        return 0
    images, labels = load_fashion_mnist("train", args.images, args.data_root)
    mixers = _default_mixers(tuple(args.gammas), 1.0)
    if args.with_masks:
        from mixkit.mixers import CutMix, FMix

        mixers["CutMix (alpha=1)"] = CutMix(alpha=1.0)
        mixers["FMix (alpha=1, delta=3)"] = FMix(alpha=1.0, decay_power=3.0)
    all_images, all_labels = load_fashion_mnist("train", 2 * args.images, args.data_root)
    held_out = (all_images[args.images :], all_labels[args.images :])
    feature_fn, space = None, "pixels"
    if args.features_from:
        feature_fn = trained_feature_fn(args.features_from)
        space = f"penultimate features of {args.features_from}"
    for ref_name, reference, ref_labels in (("same images", None, None),
                                            ("held-out", *held_out)):
        res = image_realism(images, labels, tuple(args.gammas), reference=reference,
                            reference_labels=ref_labels, batch=args.image_batch,
                            draws=args.image_draws, seed=args.seed, mixers=mixers, feature_fn=feature_fn)
        print(f"\n## Fashion-MNIST ({space}), {args.images} training images, batch {args.image_batch}, "
              f"reference: {ref_name}; scale (median real nearest-neighbour distance) "
              f"{res['scale']:.3f}")
        rr = res["real"]["nearest_real"]
        print(f"real images: mean {rr['mean']:.3f} median {rr['median']:.3f} p90 {rr['p90']:.3f}")
        print(_table(res, ["nearest_real"], agreement=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
