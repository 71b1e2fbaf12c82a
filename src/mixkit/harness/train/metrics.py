"""Evaluation metrics of a trained model: classification, calibration and feature scatter.

``MetricState`` accumulates, batch by batch, a confusion matrix, the summed negative
log-likelihood and a 15-bin calibration histogram; summing two states (or all-reducing them
across ranks) and then calling ``finish`` gives the same numbers as computing on all samples at
once. Reported: error rate, micro-F1 (equal to accuracy for single-label classification),
macro-F1 (the unweighted mean of per-class F1; a class never predicted nor present counts 0 and
is left out), NLL and expected calibration error (Guo et al. 2017, equal-width bins).

``expected_calibration_error`` is the same calibration error computed at once from probabilities
(both go through ``calibration_histogram``). ``scatter_ratios`` is the within- and between-class
scatter of features (SynerMix's cohesion and separability) that a run reports for its test set's
penultimate features.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import positive_int

__all__ = ["MetricState", "ECE_BINS", "calibration_histogram", "expected_calibration_error", "scatter_ratios"]

ECE_BINS = 15


# ---------------------------------------------------------------------------------------------
# Calibration


def calibration_histogram(confidence: Tensor, correct: Tensor, n_bins: int) -> Tensor:
    """Float64 ``(3, n_bins)`` on the CPU: per equal-width confidence bin the number of samples,
    their summed confidence and their summed correctness (1 for a right prediction).

    Bin b holds confidences in ``(b/n_bins, (b+1)/n_bins]`` (a confidence of exactly 0 goes to the
    first bin). Histograms of parts of a data set add up to the histogram of the whole.
    """
    conf = confidence.detach().to(torch.float64).cpu()
    right = correct.detach().to(torch.float64).cpu()
    bins = (torch.ceil(conf * n_bins) - 1).clamp(0, n_bins - 1).to(torch.int64)
    hist = torch.zeros(3, n_bins, dtype=torch.float64)
    hist[0] = torch.bincount(bins, minlength=n_bins).to(torch.float64)
    hist[1].index_add_(0, bins, conf)
    hist[2].index_add_(0, bins, right)
    return hist


def _ece(hist: Tensor, n: float) -> float:
    """``sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|`` from a calibration histogram."""
    return float((hist[1] - hist[2]).abs().sum()) / n


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error (Guo et al., ICML 2017) with ``n_bins`` equal-width bins.

    Confidence is the largest probability of each row of ``probs (N, C)``, the prediction its
    argmax. Bin b holds confidences in ``(b/n_bins, (b+1)/n_bins]`` (a confidence of exactly 0
    goes to the first bin). ``ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|``.
    """
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probs, labels: expected (N, C) and (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    n_bins = positive_int("n_bins", n_bins)
    n = probs.shape[0]
    if n == 0:
        raise ValueError("probs: expected at least one sample, got 0")
    conf, pred = probs.detach().to(torch.float64).max(dim=1)
    correct = pred == labels.to(pred.device)
    return _ece(calibration_histogram(conf, correct, n_bins), n)


# ---------------------------------------------------------------------------------------------
# Classification, accumulated over batches and ranks


class MetricState:
    def __init__(self, num_classes: int, n_bins: int = ECE_BINS):
        self.num_classes = num_classes
        self.n_bins = n_bins
        # one float64 vector: [confusion (K*K) | nll sum | count | bin counts | bin conf | bin correct]
        self.buffer = torch.zeros(num_classes * num_classes + 2 + 3 * n_bins, dtype=torch.float64)

    def _histogram(self) -> Tensor:
        """The calibration histogram part of the buffer, ``(3, n_bins)`` (a view)."""
        base = self.num_classes * self.num_classes + 2
        return self.buffer[base:base + 3 * self.n_bins].view(3, self.n_bins)

    def update(self, logits: Tensor, labels: Tensor) -> None:
        k = self.num_classes
        logits = logits.detach().float().cpu()
        labels = labels.detach().cpu()
        if not bool(torch.isfinite(logits).all()):
            raise FloatingPointError("evaluation: the model's outputs are not finite (nan or inf) on the "
                                     "test set: the model has diverged")
        logp = torch.log_softmax(logits, dim=1)
        nll = -logp.gather(1, labels[:, None]).sum().double()
        conf, pred = logp.exp().max(dim=1)
        cm = torch.bincount(labels * k + pred, minlength=k * k).double()
        off = k * k
        self.buffer[:off] += cm
        self.buffer[off] += nll
        self.buffer[off + 1] += labels.numel()
        self._histogram().add_(calibration_histogram(conf, pred == labels, self.n_bins))

    def finish(self) -> dict[str, float]:
        k = self.num_classes
        cm = self.buffer[:k * k].view(k, k)
        n = float(self.buffer[k * k + 1])
        if n == 0:
            raise ValueError("metrics: expected at least one evaluated sample, got 0")
        tp = cm.diag()
        pred_count = cm.sum(0)
        true_count = cm.sum(1)
        denom = pred_count + true_count
        present = denom > 0
        f1 = torch.where(present, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
        accuracy = float(tp.sum()) / n
        return {
            "test_error": 1.0 - accuracy,
            "test_accuracy": accuracy,
            "micro_f1": accuracy,
            "macro_f1": float(f1[present].mean()),
            "nll": float(self.buffer[k * k]) / n,
            "ece": _ece(self._histogram(), n),
            "n_test": int(n),
        }


# ---------------------------------------------------------------------------------------------
# Feature scatter (cohesion and separability)


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
