"""Evaluation metrics from sufficient statistics, so they reduce exactly across processes.

``MetricState`` accumulates, batch by batch, a confusion matrix, the summed negative
log-likelihood and a 15-bin calibration histogram; summing two states (or all-reducing them
across ranks) and then calling ``finish`` gives the same numbers as computing on all samples at
once. Reported: error rate, micro-F1 (equal to accuracy for single-label classification),
macro-F1 (the unweighted mean of per-class F1; a class never predicted nor present counts 0 and
is left out), NLL and expected calibration error (Guo et al. 2017, equal-width bins).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MetricState", "ECE_BINS"]

ECE_BINS = 15


class MetricState:
    def __init__(self, num_classes: int, n_bins: int = ECE_BINS):
        self.num_classes = num_classes
        self.n_bins = n_bins
        # one float64 vector: [confusion (K*K) | nll sum | count | bin counts | bin conf | bin correct]
        self.buffer = torch.zeros(num_classes * num_classes + 2 + 3 * n_bins, dtype=torch.float64)

    def update(self, logits: Tensor, labels: Tensor) -> None:
        k, nb = self.num_classes, self.n_bins
        logits = logits.detach().float().cpu()
        labels = labels.detach().cpu()
        logp = torch.log_softmax(logits, dim=1)
        nll = -logp.gather(1, labels[:, None]).sum().double()
        conf, pred = logp.exp().max(dim=1)
        conf = conf.double()
        correct = (pred == labels).double()
        cm = torch.bincount(labels * k + pred, minlength=k * k).double()
        bins = (torch.ceil(conf * nb) - 1).clamp(0, nb - 1).long()
        off = k * k
        self.buffer[:off] += cm
        self.buffer[off] += nll
        self.buffer[off + 1] += labels.numel()
        base = off + 2
        self.buffer[base:base + nb] += torch.bincount(bins, minlength=nb).double()
        self.buffer[base + nb:base + 2 * nb].index_add_(0, bins, conf)
        self.buffer[base + 2 * nb:base + 3 * nb].index_add_(0, bins, correct)

    def finish(self) -> dict[str, float]:
        k, nb = self.num_classes, self.n_bins
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
        base = k * k + 2
        conf_sum = self.buffer[base + nb:base + 2 * nb]
        acc_sum = self.buffer[base + 2 * nb:base + 3 * nb]
        accuracy = float(tp.sum()) / n
        return {
            "test_error": 1.0 - accuracy,
            "test_accuracy": accuracy,
            "micro_f1": accuracy,
            "macro_f1": float(f1[present].mean()),
            "nll": float(self.buffer[k * k]) / n,
            "ece": float((conf_sum - acc_sum).abs().sum()) / n,
            "n_test": int(n),
        }
