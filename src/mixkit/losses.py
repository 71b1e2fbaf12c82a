"""Losses for mixed batches: cross-entropy against soft targets.

With mixed labels ``y = lam * onehot(a) + (1 - lam) * onehot(b)`` the soft-target cross-entropy
equals the papers' ``lam * CE(a) + (1 - lam) * CE(b)`` (cross-entropy is linear in the target),
and with zeta-mixup's ``y = W @ onehot`` it is the loss of the zeta-mixup paper. FMix's
reformulated objective (``FMix(reformulate=True)``) keeps each sample's own one-hot label, so the
same function computes it.

Multi-label training (``multilabel=True`` on a mixer: multi-hot rows mixed as they are) uses the
per-class binary cross-entropy against the mixed rows, ``soft_target_binary_cross_entropy``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "soft_target_cross_entropy",
    "mixed_cross_entropy",
    "SoftTargetCrossEntropy",
    "soft_target_binary_cross_entropy",
    "SoftTargetBinaryCrossEntropy",
]


def soft_target_cross_entropy(
    logits: Tensor, targets: Tensor, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """``-sum_c t_c log softmax(z)_c`` per sample, averaged over the batch by default.

    ``targets``: probabilities ``(B, C)`` or class ids ``(B,)``. ``label_smoothing`` eps mixes
    the targets with the uniform distribution: ``t (1 - eps) + eps / C``. Computed in float32 (or
    float64) whatever the logits' dtype, so half-precision training keeps an accurate loss.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (B, C), got {tuple(logits.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    b, c = logits.shape
    if targets.shape[0] != b:
        raise ValueError(f"targets: expected {b} rows (one per logit row), got {targets.shape[0]}")
    work = logits if logits.dtype == torch.float64 else logits.float()
    logp = F.log_softmax(work, dim=1)
    if targets.ndim == 1 and not targets.is_floating_point():
        t = torch.zeros_like(logp).scatter_(1, targets.long()[:, None], 1.0)
    elif targets.ndim == 2 and targets.shape[1] == c:
        t = targets.to(logp.dtype)
    else:
        raise ValueError(
            f"targets: expected class ids (B,) or probabilities (B, {c}), got {targets.dtype} "
            f"of shape {tuple(targets.shape)}"
        )
    if label_smoothing > 0:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    loss = -(t * logp).sum(dim=1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def mixed_cross_entropy(logits: Tensor, labels_a: Tensor, labels_b: Tensor, lam) -> Tensor:
    """The papers' form ``mean(lam * CE(z, a) + (1 - lam) * CE(z, b))`` for class ids a and b;
    ``lam`` a float or a per-sample tensor. Equal to ``soft_target_cross_entropy`` of the mixed
    one-hot labels."""
    ce_a = F.cross_entropy(logits.float(), labels_a, reduction="none")
    ce_b = F.cross_entropy(logits.float(), labels_b, reduction="none")
    lam = torch.as_tensor(lam, dtype=ce_a.dtype, device=ce_a.device)
    return (lam * ce_a + (1.0 - lam) * ce_b).mean()


class SoftTargetCrossEntropy(nn.Module):
    """Module form of ``soft_target_cross_entropy``."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return soft_target_cross_entropy(logits, targets, self.label_smoothing, self.reduction)


def soft_target_binary_cross_entropy(
    logits: Tensor, targets: Tensor, *, pos_weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Binary cross-entropy of each class's logit against a target in [0, 1], for multi-label
    training on mixed multi-hot rows: ``-(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))``.

    ``targets``: float ``(B, C)`` (mixed multi-hot rows need not sum to 1), or bool / integer 0-1.
    ``pos_weight`` ``(C,)`` weighs the positive term per class (as in
    ``torch.nn.BCEWithLogitsLoss``). ``reduction="mean"`` averages over all ``B * C`` entries,
    ``"sum"`` adds them, ``"none"`` returns ``(B, C)``. Computed in float32 (or float64).
    """
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (B, C), got {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(targets, Tensor) or targets.shape != logits.shape:
        got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets: expected a (B, C) tensor shaped like the logits {tuple(logits.shape)}, "
                         f"got {got}")
    work = logits if logits.dtype == torch.float64 else logits.float()
    t = targets.to(work.dtype)
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=work.device, dtype=work.dtype)
    return F.binary_cross_entropy_with_logits(work, t, pos_weight=pos_weight, reduction=reduction)


class SoftTargetBinaryCrossEntropy(nn.Module):
    """Module form of ``soft_target_binary_cross_entropy``; ``pos_weight`` is kept as a buffer,
    so it moves with ``.to(device)``."""

    def __init__(self, pos_weight: Tensor | None = None, reduction: str = "mean"):
        super().__init__()
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight))
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return soft_target_binary_cross_entropy(logits, targets, pos_weight=self.pos_weight,
                                                reduction=self.reduction)
