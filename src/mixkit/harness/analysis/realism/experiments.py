"""The experiments: mixup and zeta-mixup (or any mixers) on the half-moons and on images, in pixel
space or a trained network's feature space, and the ``mixkit compare`` method that trains with a
given mixer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .metric import make_moons, moons_manifold_distance, nearest_real_distance, summary, synthesize


def _compact(value: float) -> str:
    """The shortest text that reads back as ``value``, without a trailing ``.0``: 2.0 -> "2",
    2.4 -> "2.4", 2.0000001 -> "2.0000001" (so that distinct gammas keep distinct names)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def default_mixers(gammas: Sequence[float], alpha: float) -> dict:
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


DEFAULT_ZETA_GAMMA = 2.8  # the gamma of ``mixkit compare``'s method "zeta"


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
        mixers = default_mixers(gammas, alpha)
    real_clean = moons_manifold_distance(x)
    real_nn = nearest_real_distance(x, x, k=2)
    result: dict = {
        "config": {"gammas": list(gammas), "n": n, "noise": noise, "batch": batch, "draws": draws,
                   "seed": seed, "alpha": alpha},
        "real": {"clean_manifold": summary(real_clean), "nearest_other_real": summary(real_nn),
                 "count": n},
        "methods": {},
    }
    if keep_points:
        result["points"] = x
        result["labels"] = y
    for name, mixer in mixers.items():
        synth, own, dominant = synthesize(mixer, x, batch, draws, g)
        shift = (synth.to(torch.float64) - x[dominant].to(torch.float64)).norm(dim=1)
        entry = {
            "nearest_real": summary(nearest_real_distance(synth, x)),
            "clean_manifold": summary(moons_manifold_distance(synth)),
            "shift": float(shift.mean()),
            "own_weight": float(own.mean()),
            "count": int(synth.shape[0]),
        }
        if keep_points:
            entry["points"] = synth
        result["methods"][name] = entry
    return result


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
        mixers = default_mixers(gammas, alpha)
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
            "real": {"nearest_real": summary(real_nn / scale), "count": int(images.shape[0])},
            "methods": {},
        }
        for name, mixer in mixers.items():
            synth, own, dominant = synthesize(mixer, images, batch, draws, g)
            synth_feat = features(synth)
            shift = (synth_feat - real_feat[dominant]).norm(dim=1)
            d, nearest = nearest_real_distance(synth_feat, ref_feat, chunk=chunk, return_index=True)
            agree = None
            if ref_labels is not None:
                agree = float((ref_labels[nearest] == labels[dominant]).to(torch.float64).mean())
            result["methods"][name] = {
                "label_agreement": agree,
                "nearest_real": summary(d / scale),
                "shift": float(shift.mean()) / scale,
                "own_weight": float(own.mean()),
                "count": int(synth.shape[0]),
            }
    return result


def trained_feature_fn(run_dir: str) -> Callable[[Tensor], Tensor]:
    """``images in [0, 1] (B, 1, 28, 28) -> (B, D)`` penultimate features of the model trained in
    ``run_dir`` (its ``config.yaml`` and ``checkpoint.pt``), with the run's own normalisation."""
    from ...features import LayerCapture
    from ...train.saved import load_trained_model

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
