"""Cohesion, separability and calibration of a trained model's features and outputs.

SynerMix (Xu et al., arXiv 2403.14137) claims intra-class mixing makes features of one class more
cohesive and classes more separable, but its code computes no metric. Here: the traces of the
within-class and between-class scatter matrices of penultimate features (Fisher's criterion in
trace form). ``ratio = tr(S_b) / tr(S_w)`` is unitless and invariant to a global rescaling or
rotation of the features, so it can be compared across models whose features differ in scale;
``within`` and ``between`` alone cannot. Calibration (expected calibration error with
equal-width confidence bins, Guo et al. 2017) is here too, since mixing methods are often
credited with better calibration.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["scatter_ratios", "penultimate_features", "expected_calibration_error"]


def scatter_ratios(features: Tensor, labels: Tensor) -> dict:
    """Within- and between-class scatter of ``features (N, D)`` grouped by ``labels (N,)``.

    With class means ``mu_c`` (``n_c`` samples) and the overall mean ``mu``:

    - ``within  = tr(S_w) / N = (1/N) sum_c sum_{i in c} |x_i - mu_c|^2`` (cohesion: smaller is
      tighter),
    - ``between = tr(S_b) / N = (1/N) sum_c n_c |mu_c - mu|^2`` (separation of the class means),
    - ``total = within + between`` (the features' total variance, ``tr(S_t) / N``),
    - ``ratio = between / within`` (larger: more separable; inf when every class is a point).

    Also ``per_class_within`` (``(K,)`` mean squared distance to the class mean, classes in sorted
    label order), ``classes`` (the sorted labels) and ``n``. Computed in float64.
    """
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features, labels: expected (N, D) and (N,), got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise ValueError("features: expected at least one sample, got 0")
    x = features.detach().to(torch.float64)
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    k = classes.shape[0]
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, inverse, x)
    means = sums / counts[:, None].to(torch.float64)
    sq = ((x - means[inverse]) ** 2).sum(dim=1)
    per_class = torch.zeros(k, dtype=torch.float64, device=x.device).index_add_(0, inverse, sq)
    n = x.shape[0]
    mu = x.mean(dim=0)
    within = float(per_class.sum()) / n
    between = float((counts.to(torch.float64) * ((means - mu) ** 2).sum(dim=1)).sum()) / n
    ratio = between / within if within > 0 else float("inf")
    return {
        "within": within,
        "between": between,
        "total": within + between,
        "ratio": ratio,
        "per_class_within": per_class / counts.to(torch.float64),
        "classes": classes,
        "n": n,
    }


def penultimate_features(
    model: nn.Module,
    loader,
    layer_name: str,
    *,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The output of ``model``'s sub-module ``layer_name`` (as in ``model.named_modules()``),
    flattened per sample, for every batch of ``loader`` (which yields ``(inputs, labels, ...)``).

    The model runs in eval mode under ``torch.no_grad()`` and its previous mode is restored; the
    forward hook is removed even if a batch fails. Returns ``(features (N, D) float32 on the CPU,
    labels (N,))``.
    """
    modules = dict(model.named_modules())
    if layer_name not in modules:
        names = [n for n in modules if n]
        raise ValueError(f"layer_name: expected one of {names[:20]}, got {layer_name!r}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    captured: list[Tensor] = []

    def hook(_module, _inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        captured.append(out.detach().reshape(out.shape[0], -1).float().cpu())

    was_training = model.training
    handle = modules[layer_name].register_forward_hook(hook)
    feats, labs = [], []
    try:
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                inputs, labels = batch[0], batch[1]
                captured.clear()
                model(inputs.to(device))
                if len(captured) != 1:
                    raise RuntimeError(
                        f"layer {layer_name!r}: expected one output per forward pass, got {len(captured)}"
                    )
                feats.append(captured[0])
                labs.append(torch.as_tensor(labels).cpu())
    finally:
        handle.remove()
        model.train(was_training)
    if not feats:
        raise ValueError("loader: expected at least one batch, got none")
    return torch.cat(feats), torch.cat(labs)


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al., ICML 2017) with ``n_bins`` equal-width bins.

    Confidence is the largest probability of each row of ``probs (N, C)``, the prediction its
    argmax. Bin b holds confidences in ``(b/n_bins, (b+1)/n_bins]`` (a confidence of exactly 0
    goes to the first bin). ``ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|``.
    """
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probs, labels: expected (N, C) and (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins: expected an integer >= 1, got {n_bins!r}")
    n = probs.shape[0]
    if n == 0:
        raise ValueError("probs: expected at least one sample, got 0")
    p = probs.detach().to(torch.float64)
    conf, pred = p.max(dim=1)
    correct = (pred == labels.to(pred.device)).to(torch.float64)
    bins = (torch.ceil(conf * n_bins) - 1).clamp(0, n_bins - 1).to(torch.int64)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins.cpu(), conf.cpu())
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins.cpu(), correct.cpu())
    return float((conf_sum - acc_sum).abs().sum() / n)
