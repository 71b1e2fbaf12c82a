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

Run ``python -m mixkit.harness.analysis.realism`` to print the tables of docs/analysis.md. With
``--features-from RUN_DIR [RUN_DIR ...]`` the image tables are measured in each trained network's
feature space and summarised over the networks (mean ± std); ``--gammas`` sweeps zeta-mixup's
gamma; ``--results CSV`` (a ``mixkit compare`` results.csv) sets realism against test error with
their Spearman rank correlation; ``--plot PNG`` draws both against gamma; ``--out MD`` writes
everything printed to a Markdown file.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import sys
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..data.fashion import FASHION_MNIST_DIR, load_fashion_mnist
from ..files import atomic_write_text

__all__ = [
    "nearest_real_distance",
    "moons_manifold_distance",
    "make_moons",
    "mix_with_weights",
    "half_moons_realism",
    "plot_half_moons",
    "image_realism",
    "trained_feature_fn",
    "compare_method",
    "spearman_rank_correlation",
    "read_compare_results",
    "summarize_networks",
    "plot_realism_sweep",
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


def _compact(value: float) -> str:
    """The shortest text that reads back as ``value``, without a trailing ``.0``: 2.0 -> "2",
    2.4 -> "2.4", 2.0000001 -> "2.0000001" (so that distinct gammas keep distinct names)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _default_mixers(gammas: Sequence[float], alpha: float) -> dict:
    from mixkit.mixers import MixUp, ZetaMixup

    seen: set[float] = set()
    for g in gammas:
        if float(g) in seen:
            raise ValueError(f"gammas: expected distinct values, got {_compact(g)} more than once "
                             f"in {[float(x) for x in gammas]}")
        seen.add(float(g))
    mixers = {f"mixup (alpha={_compact(alpha)})": MixUp(alpha=alpha)}
    for g in gammas:
        mixers[f"zeta-mixup (gamma={_compact(g)})"] = ZetaMixup(gamma=g)
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
    from ..features import LayerCapture
    from ..train.loop import load_trained_model

    model, cfg, data = load_trained_model(run_dir)
    if cfg.dataset != "fashion-mnist":
        raise ValueError(f"run_dir: expected a run trained on fashion-mnist, got {cfg.dataset!r}")
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    capture = LayerCapture(model, model.feature_layer)

    @torch.no_grad()
    def features(images: Tensor) -> Tensor:
        return capture((images.float() - mean) / std)

    return features


# ---------------------------------------------------------------------------------------------
# Several networks, a gamma sweep, and test error


DEFAULT_ZETA_GAMMA = 2.8  # the gamma of ``mixkit compare``'s method "zeta"
RESULTS_COLUMNS = ("method", "seed", "test_error")
REFERENCES = ("same images", "held-out")


def compare_method(mixer) -> str | None:
    """The ``mixkit compare`` method name that trains with ``mixer``, or None when there is none:
    mixup with alpha = 1 -> ``"mixup"``; zeta-mixup at gamma g -> ``"zeta"`` for g = 2.8, else
    ``"zeta-g"`` + g written compactly (2.0 -> ``"zeta-g2"``, 2.4 -> ``"zeta-g2.4"``); CutMix ->
    ``"cutmix"``; FMix -> ``"fmix"``."""
    from mixkit.mixers import CutMix, FMix, MixUp, ZetaMixup

    if type(mixer) is MixUp:
        return "mixup" if float(mixer.alpha) == 1.0 else None
    if type(mixer) is ZetaMixup:
        g = float(mixer.gamma)
        return "zeta" if g == DEFAULT_ZETA_GAMMA else f"zeta-g{_compact(g)}"
    if type(mixer) is CutMix:
        return "cutmix"
    if type(mixer) is FMix:
        return "fmix"
    return None


def _average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``values``; tied values share the mean of the ranks they occupy."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for pos in range(start, end + 1):
            ranks[order[pos]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of the pairs ``(x[i], y[i])``: the Pearson correlation of their
    ranks, ties given the average of the ranks they span. NaN when either side has a single
    distinct value (no ranking to correlate)."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) != len(y):
        raise ValueError(f"x, y: expected the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"x, y: expected at least 2 pairs, got {len(x)}")
    if not all(math.isfinite(v) for v in x + y):
        raise ValueError(f"x, y: expected finite values, got {x} and {y}")
    rx, ry = _average_ranks(x), _average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def read_compare_results(path: str | os.PathLike) -> dict[str, list[float]]:
    """The test errors (fractions) per method of a ``mixkit compare`` ``results.csv`` (columns
    ``method, seed, test_error, ...``), in file order. A missing column, a test error that is not a
    finite number or a (method, seed) given twice raise ValueError naming the file."""
    errors: dict[str, list[float]] = {}
    seen: set[tuple[str, str]] = set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        missing = [c for c in RESULTS_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"results CSV {path}: expected the columns {', '.join(RESULTS_COLUMNS)} "
                             f"(a mixkit compare results.csv), got {columns} (missing {missing})")
        for line, row in enumerate(reader, start=2):
            method, seed, text = row["method"], row["seed"], row["test_error"]
            try:
                value = float(text)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f"results CSV {path}, line {line}: expected a finite number in "
                                 f"test_error, got {text!r}")
            if (method, seed) in seen:
                raise ValueError(f"results CSV {path}, line {line}: expected one row per method and "
                                 f"seed, got method {method!r} seed {seed!r} again")
            seen.add((method, seed))
            errors.setdefault(method, []).append(value)
    return errors


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value), as the comparisons
    compute them."""
    from ..train.compare import _mean_std as compare_mean_std

    mean, std = compare_mean_std(list(values))
    return mean, None if math.isnan(std) else std


def summarize_networks(results: Sequence[dict]) -> dict[str, dict]:
    """Per method of several ``image_realism`` results (one per network, same methods): the mean
    and sample std over networks of ``nearest_real`` mean and of ``shift`` (std None for one
    network) and ``n``, the number of networks."""
    if not results:
        raise ValueError("results: expected at least one image_realism result, got none")
    names = list(results[0]["methods"])
    for res in results[1:]:
        if list(res["methods"]) != names:
            raise ValueError(f"results: expected the same methods in every result, got {names} and "
                             f"{list(res['methods'])}")
    return {name: {"nearest_real": _mean_std([r["methods"][name]["nearest_real"]["mean"] for r in results]),
                   "shift": _mean_std([r["methods"][name]["shift"] for r in results]),
                   "n": len(results)}
            for name in names}


def _std_text(std: float | None) -> str:
    return "–" if std is None else f"{std:.3f}"


def _summary_table(summary: dict[str, dict]) -> str:
    rows = ["| method | nearest real mean | ± std | shift | ± std | networks |",
            "|---|---|---|---|---|---|"]
    for name, e in summary.items():
        (nr, nr_sd), (sh, sh_sd) = e["nearest_real"], e["shift"]
        rows.append(f"| {name} | {nr:.3f} | {_std_text(nr_sd)} | {sh:.3f} | {_std_text(sh_sd)} | "
                    f"{e['n']} |")
    return "\n".join(rows)


def _results_section(summary: dict[str, dict], mixers: dict, test_errors: dict[str, list[float]],
                     csv_path: str, space: str) -> list[str]:
    """The realism-vs-test-error table, the methods missing from the CSV and Spearman's rho."""
    lines = [f"\n## Realism against test error ({csv_path})",
             f"\nrealism: nearest real mean, held-out reference, {space}; test error: mean over "
             "seeds of the compare run (n seeds).\n",
             "| method | compare method | realism (held-out) | test error % | seeds |",
             "|---|---|---|---|---|"]
    pairs, missing, unmapped = [], [], []
    for name, entry in summary.items():
        realism = entry["nearest_real"][0]
        method = compare_method(mixers[name])
        if method is None:
            unmapped.append(name)
            lines.append(f"| {name} | – | {realism:.3f} | – | – |")
        elif method not in test_errors:
            missing.append(method)
            lines.append(f"| {name} | {method} | {realism:.3f} | missing | 0 |")
        else:
            errors = test_errors[method]
            mean = sum(errors) / len(errors)
            pairs.append((realism, mean))
            lines.append(f"| {name} | {method} | {realism:.3f} | {100 * mean:.2f} | {len(errors)} |")
    lines.append("")
    if missing:
        lines.append(f"missing from {csv_path}: {', '.join(missing)}")
    if unmapped:
        lines.append(f"no compare method for: {', '.join(unmapped)}")
    if len(pairs) < 2:
        lines.append(f"Spearman rank correlation (realism vs test error): undefined, "
                     f"{len(pairs)} method(s) in both")
    else:
        rho = spearman_rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])
        text = "undefined (a side without variation)" if math.isnan(rho) else f"{rho:+.3f}"
        lines.append(f"Spearman rank correlation (realism vs test error): rho = {text} over "
                     f"{len(pairs)} methods (positive: methods whose samples lie farther from real "
                     "images have higher test error)")
    return lines


def _short_label(run_dir: str) -> str:
    parts = [p for p in os.path.normpath(run_dir).split(os.sep) if p]
    return os.sep.join(parts[-2:]) if parts else run_dir


def plot_realism_sweep(held_out: Sequence[tuple[str, dict]], mixers: dict, path: str | os.PathLike,
                       test_errors: dict[str, list[float]] | None = None) -> None:
    """Write a PNG to ``path`` (atomically): nearest-real mean against zeta-mixup's gamma, one thin
    line per network (``held_out``: (label, ``image_realism`` result) pairs, held-out reference)
    and their mean as a thick line, mixup's value per network as a dashed horizontal line; with
    ``test_errors`` (method -> test errors over seeds, as ``read_compare_results``) a second panel
    with test error (mean ± std over seeds) against gamma and mixup's as a dashed line."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixkit.mixers import ZetaMixup

    from ..files import atomic_write_bytes

    zeta = sorted((float(m.gamma), name) for name, m in mixers.items() if type(m) is ZetaMixup)
    if not zeta:
        raise ValueError(f"mixers: expected at least one zeta-mixup to plot against gamma, got "
                         f"{list(mixers)}")
    if not held_out:
        raise ValueError("held_out: expected at least one network's result, got none")
    mixup = [name for name, m in mixers.items() if compare_method(m) == "mixup"]
    gammas = [g for g, _ in zeta]
    panels = 1 if test_errors is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels, 4.0), squeeze=False, sharex=True)
    ax = axes[0][0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = []
    for i, (label, res) in enumerate(held_out):
        colour = colours[i % len(colours)]
        ys = [res["methods"][name]["nearest_real"]["mean"] for _, name in zeta]
        curves.append(ys)
        ax.plot(gammas, ys, color=colour, lw=0.9, alpha=0.8, marker=".", label=_short_label(label))
        for name in mixup:
            ax.axhline(res["methods"][name]["nearest_real"]["mean"], color=colour, lw=0.9, ls="--",
                       alpha=0.8)
    mean = [sum(col) / len(col) for col in zip(*curves, strict=True)]
    ax.plot(gammas, mean, color="black", lw=2.6, marker="o", label=f"mean of {len(curves)}")
    if mixup:
        ax.plot([], [], color="0.4", lw=0.9, ls="--", label="mixup (alpha=1)")
    ax.set_xlabel("zeta-mixup gamma")
    ax.set_ylabel("nearest real mean (held-out, feature space)")
    ax.set_title("realism of synthetic images (lower: nearer real images)", fontsize=9)
    ax.legend(fontsize=7)
    if test_errors is not None:
        ax2 = axes[0][1]
        points = []
        for g, name in zeta:
            method = compare_method(mixers[name])
            if method in test_errors:
                m, sd = _mean_std(test_errors[method])
                points.append((g, 100 * m, 0.0 if sd is None else 100 * sd))
        if points:
            ax2.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                         color="tab:red", marker="o", capsize=3, label="zeta-mixup")
        if "mixup" in test_errors:
            ax2.axhline(100 * _mean_std(test_errors["mixup"])[0], color="0.3", ls="--",
                        label="mixup (alpha=1)")
        if not points and "mixup" not in test_errors:
            ax2.text(0.5, 0.5, "no zeta-mixup or mixup rows in the results", ha="center",
                     va="center", transform=ax2.transAxes, fontsize=8)
        else:
            ax2.legend(fontsize=7)
        ax2.set_xlabel("zeta-mixup gamma")
        ax2.set_ylabel("test error (%)")
        ax2.set_title("test error, mean ± std over seeds", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _check_run_dir(run_dir: str) -> None:
    expected = "a mixkit train run directory holding config.yaml and checkpoint.pt"
    if not os.path.isdir(run_dir):
        raise ValueError(f"--features-from {run_dir}: expected {expected}, got no such directory")
    missing = [n for n in ("config.yaml", "checkpoint.pt") if not os.path.isfile(os.path.join(run_dir, n))]
    if missing:
        raise ValueError(f"--features-from {run_dir}: expected {expected}, got a directory without "
                         f"{' and '.join(missing)}")


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--features-from", nargs="+", default=None, metavar="RUN_DIR",
                        help="measure in the penultimate-feature space of the model trained in each "
                             "RUN_DIR (mixkit train runs on fashion-mnist) instead of pixels, and "
                             "summarise over the networks")
    parser.add_argument("--results", default=None, metavar="CSV",
                        help="a mixkit compare results.csv: print realism against mean test error "
                             "per method and their Spearman rank correlation")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="PNG of realism (and, with --results, test error) against gamma; "
                             "needs --features-from")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="also write everything printed to this Markdown file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mixkit.harness.analysis.realism [--gammas G ...] [--features-from RUN_DIR ...]
    [--results CSV] [--plot PNG] [--out MD]``; bad inputs print ``realism: error: ...`` and
    return 2."""
    from ..train.checkpoint import CheckpointError

    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, CheckpointError) as e:
        message = " ".join(str(e).split())
        print(f"realism: error: {message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    runs = list(args.features_from or [])
    # Every input is checked before anything is computed.
    if args.plot and not runs:
        raise ValueError("--plot: expected --features-from RUN_DIR [RUN_DIR ...] as well (the plot "
                         "is in the networks' feature spaces), got no --features-from")
    if args.skip_images and (runs or args.results or args.plot):
        given = [f for f, v in (("--features-from", runs), ("--results", args.results),
                                ("--plot", args.plot)) if v]
        raise ValueError(f"--skip-images: expected without --features-from, --results and --plot "
                         f"(they need the image tables), got {', '.join(given)}")
    if not args.skip_images and not 2 <= args.image_batch <= args.images:
        raise ValueError(f"--image-batch: expected an integer in [2, --images = {args.images}], "
                         f"got {args.image_batch}")
    mixers = _default_mixers(tuple(args.gammas), 1.0)
    for run in runs:
        _check_run_dir(run)
    test_errors = read_compare_results(args.results) if args.results else None
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot: expected matplotlib to be installed (pip install "
                             "'mixkit[harness]'), got no matplotlib") from None
    networks = [(run, trained_feature_fn(run)) for run in runs]

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text)
        lines.append(text)

    moons = half_moons_realism(tuple(args.gammas), draws=args.moons_draws, seed=args.seed)
    r = moons["real"]
    say(f"## half-moons (n=512, noise=0.1, batch 32, {args.moons_draws} passes, seed {args.seed})")
    say(f"\nreal points: clean manifold mean {r['clean_manifold']['mean']:.3f} median "
        f"{r['clean_manifold']['median']:.3f} p90 {r['clean_manifold']['p90']:.3f}; nearest other "
        f"real mean {r['nearest_other_real']['mean']:.3f} median "
        f"{r['nearest_other_real']['median']:.3f} p90 {r['nearest_other_real']['p90']:.3f}\n")
    say(_table(moons, ["nearest_real", "clean_manifold"]))
    if not args.skip_images:
        _image_sections(args, mixers, networks, test_errors, say)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


def _image_sections(args, mixers: dict, networks: list, test_errors: dict | None, say) -> None:
    if args.with_masks:
        from mixkit.mixers import CutMix, FMix

        mixers["CutMix (alpha=1)"] = CutMix(alpha=1.0)
        mixers["FMix (alpha=1, delta=3)"] = FMix(alpha=1.0, decay_power=3.0)
    all_images, all_labels = load_fashion_mnist("train", 2 * args.images, args.data_root)
    if all_images.shape[0] < 2 * args.images:
        raise ValueError(f"--images {args.images}: expected at least {2 * args.images} Fashion-MNIST "
                         f"training images in {args.data_root} ({args.images} source and "
                         f"{args.images} held-out), got {all_images.shape[0]}")
    images, labels = all_images[: args.images], all_labels[: args.images]
    held_out = (all_images[args.images :], all_labels[args.images :])
    by_reference: dict[str, list[dict]] = {ref: [] for ref in REFERENCES}
    for run, feature_fn in networks or [(None, None)]:
        space = "pixels" if run is None else f"penultimate features of {run}"
        for ref_name, reference, ref_labels in ((REFERENCES[0], None, None), (REFERENCES[1], *held_out)):
            res = image_realism(images, labels, tuple(args.gammas), reference=reference,
                                reference_labels=ref_labels, batch=args.image_batch,
                                draws=args.image_draws, seed=args.seed, mixers=mixers,
                                feature_fn=feature_fn)
            by_reference[ref_name].append(res)
            say(f"\n## Fashion-MNIST ({space}), {args.images} training images, batch "
                f"{args.image_batch}, reference: {ref_name}; scale (median real nearest-neighbour "
                f"distance) {res['scale']:.3f}")
            rr = res["real"]["nearest_real"]
            say(f"\nreal images: mean {rr['mean']:.3f} median {rr['median']:.3f} p90 {rr['p90']:.3f}\n")
            say(_table(res, ["nearest_real"], agreement=True))
    summaries = {ref: summarize_networks(results) for ref, results in by_reference.items()}
    if networks:
        for ref_name in REFERENCES:
            say(f"\n## Summary over {len(networks)} network(s) (penultimate features), reference: "
                f"{ref_name}")
            say("\nmean and sample std (n - 1) over the networks of each one's nearest real mean "
                "and shift; std '–' for a single network\n")
            say(_summary_table(summaries[ref_name]))
    if test_errors is not None:
        space = (f"mean over {len(networks)} network(s)' feature spaces" if networks
                 else "pixel space")
        for line in _results_section(summaries[REFERENCES[1]], mixers, test_errors, args.results, space):
            say(line)
    if args.plot:
        plot_realism_sweep([(run, res) for (run, _), res in zip(networks, by_reference[REFERENCES[1]],
                                                                strict=True)],
                           mixers, args.plot, test_errors)
        say(f"\nplot written to {args.plot}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
