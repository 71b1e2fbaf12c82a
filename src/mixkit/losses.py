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

from .functional.execution import host_readable
from .functional.mixing import check_class_ids

__all__ = [
    "soft_target_cross_entropy",
    "mixed_cross_entropy",
    "SoftTargetCrossEntropy",
    "soft_target_binary_cross_entropy",
    "SoftTargetBinaryCrossEntropy",
]


def _check_logits(logits, what: str = "logits", dense: bool = True) -> None:
    shape = "(B, C) or (B, C, *spatial)" if dense else "(B, C)"
    if not isinstance(logits, Tensor):
        raise ValueError(f"{what}: expected a tensor of shape {shape}, got {type(logits).__name__}")
    if logits.ndim < 2 or (not dense and logits.ndim != 2):
        raise ValueError(f"{what}: expected shape {shape}, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"{what}: expected floating-point scores, got {logits.dtype}")
    if logits.shape[0] == 0:
        raise ValueError(f"{what}: expected a non-empty batch, got 0 rows (the mean of no losses is NaN)")


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")


def _is_class_ids(t: Tensor) -> bool:
    """Integer class ids of any integer dtype (uint8, int8, int16, int32, int64); not bool."""
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def _check_ids(ids: Tensor, num_classes: int, what: str) -> Tensor:
    """Class ids in [0, num_classes) as int64: a ValueError on the host, an asynchronous
    device-side assert on an accelerator (no host read)."""
    check_class_ids(ids, num_classes, what)
    return ids.long()


def _tolerance(t: Tensor) -> float:
    """How far a probability row may sum from 1: 1e-3, or 1e-2 for half-precision targets."""
    return 1e-2 if t.dtype in (torch.float16, torch.bfloat16) else 1e-3


def _check_rows(t: Tensor, tol: float, what: str = "targets") -> None:
    """Non-negative probabilities summing to 1 along dim 1 (within ``tol``)."""
    sums = t.sum(dim=1)
    if not host_readable(t):
        ok = (t >= 0).all() & ((sums - 1).abs() <= tol).all()
        torch._assert_async(ok, f"{what}: expected non-negative probability rows summing to 1")
        return
    low = float(t.min())
    if not low >= 0:
        raise ValueError(f"{what}: expected non-negative probabilities, got entries down to {low:g}")
    worst = float((sums - 1).abs().max())
    if not worst <= tol:
        raise ValueError(f"{what}: expected probability rows summing to 1 (within {tol:g}), got rows off "
                         f"by up to {worst:.3g}; for multi-hot targets use soft_target_binary_cross_entropy")


def _check_unit(t: Tensor, what: str) -> None:
    """Every value in [0, 1] (NaN refused)."""
    if not host_readable(t):
        torch._assert_async(((t >= 0) & (t <= 1)).all(), f"{what}: expected values in [0, 1]")
        return
    lo, hi = (float(v) for v in torch.aminmax(t))
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(f"{what}: expected values in [0, 1], got values in [{lo:g}, {hi:g}]")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def soft_target_cross_entropy(
    logits: Tensor, targets: Tensor, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """``-sum_c t_c log softmax(z)_c`` per sample, averaged over the batch by default.

    ``logits``: ``(B, C)``, or dense ``(B, C, *spatial)`` (as ``F.cross_entropy`` takes them).
    ``targets``: probabilities shaped like the logits (each row, along dim 1, non-negative and
    summing to 1 within 1e-3), or class ids ``(B,)`` / ``(B, *spatial)`` of any integer dtype.
    ``label_smoothing`` eps mixes the targets with the uniform distribution: ``t (1 - eps) + eps /
    C``. ``reduction="mean"`` averages over every sample and position (``F.cross_entropy``'s
    mean), ``"none"`` returns ``(B, *spatial)``. Computed in float32 (or float64) whatever the
    logits' dtype. Targets are checked on the host on CPU, with a device-side assert elsewhere.
    """
    _check_logits(logits)
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
    _check_reduction(reduction)
    b, c, spatial = logits.shape[0], logits.shape[1], tuple(logits.shape[2:])
    if not isinstance(targets, Tensor):
        raise ValueError(f"targets: expected a tensor of class ids {(b, *spatial)} or probabilities "
                         f"{tuple(logits.shape)}, got {type(targets).__name__}")
    if targets.ndim == 0 or targets.shape[0] != b:
        got = "a scalar" if targets.ndim == 0 else targets.shape[0]
        raise ValueError(f"targets: expected {b} rows (one per logit row), got {got}")
    if targets.device != logits.device:
        raise ValueError(f"targets: expected a tensor on the logits' device ({logits.device}), got one on "
                         f"{targets.device}")
    work = logits if logits.dtype == torch.float64 else logits.float()
    logp = F.log_softmax(work, dim=1)
    if _is_class_ids(targets) and tuple(targets.shape) == (b, *spatial):
        t = torch.zeros_like(logp).scatter_(1, _check_ids(targets, c, "targets").unsqueeze(1), 1.0)
    elif targets.is_floating_point() and targets.shape == logits.shape:
        _check_rows(targets, _tolerance(targets))
        t = targets.to(logp.dtype)
    else:
        raise ValueError(
            f"targets: expected class ids {(b, *spatial)} or probabilities {tuple(logits.shape)}, got "
            f"{targets.dtype} of shape {tuple(targets.shape)}"
        )
    if label_smoothing > 0:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    return _reduce(-(t * logp).sum(dim=1), reduction)


def _check_lam(lam, b: int, like: Tensor) -> Tensor:
    """``lam``: a number or a tensor of shape () or (B,), every value in [0, 1]."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, Tensor)):
        raise ValueError(f"lam: expected a number or a tensor in [0, 1], got {type(lam).__name__}")
    if not isinstance(lam, Tensor):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam: expected a value in [0, 1], got {lam}")
        return torch.as_tensor(lam, dtype=like.dtype, device=like.device)
    if lam.ndim > 1 or (lam.ndim == 1 and lam.shape[0] != b):
        raise ValueError(f"lam: expected a scalar or {b} values (one per sample), "
                         f"got shape {tuple(lam.shape)}")
    lam = lam.to(device=like.device, dtype=like.dtype)
    if lam.numel():
        _check_unit(lam, "lam")
    return lam


def mixed_cross_entropy(logits: Tensor, labels_a: Tensor, labels_b: Tensor, lam) -> Tensor:
    """The papers' form ``mean(lam * CE(z, a) + (1 - lam) * CE(z, b))`` for class ids a and b
    (any integer dtype, ``(B,)`` or dense ``(B, *spatial)``); ``lam`` a number or a per-sample
    tensor ``(B,)`` in [0, 1]. Equal to ``soft_target_cross_entropy`` of the mixed one-hot
    labels."""
    _check_logits(logits)
    b, c, spatial = logits.shape[0], logits.shape[1], tuple(logits.shape[2:])
    ids = []
    for what, labels in (("labels_a", labels_a), ("labels_b", labels_b)):
        ok = isinstance(labels, Tensor) and _is_class_ids(labels) and tuple(labels.shape) == (b, *spatial)
        if not ok:
            got = (f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, Tensor)
                   else type(labels).__name__)
            raise ValueError(f"{what}: expected integer class ids of shape {(b, *spatial)}, got {got}")
        ids.append(_check_ids(labels.to(logits.device), c, what))
    ce_a = F.cross_entropy(logits.float(), ids[0], reduction="none")
    ce_b = F.cross_entropy(logits.float(), ids[1], reduction="none")
    lam = _check_lam(lam, b, ce_a)
    if lam.ndim == 1 and spatial:
        lam = lam.view(b, *([1] * len(spatial)))
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

    ``targets``: float ``(B, C)`` with values in [0, 1] (mixed multi-hot rows need not sum to 1),
    or bool / integer 0-1. ``pos_weight`` ``(C,)`` weighs the positive term per class (as in
    ``torch.nn.BCEWithLogitsLoss``). ``reduction="mean"`` averages over all ``B * C`` entries,
    ``"sum"`` adds them, ``"none"`` returns ``(B, C)``. Computed in float32 (or float64).
    """
    _check_logits(logits, dense=False)
    _check_reduction(reduction)
    if not isinstance(targets, Tensor) or targets.shape != logits.shape:
        got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets: expected a (B, C) tensor shaped like the logits {tuple(logits.shape)}, "
                         f"got {got}")
    if targets.is_complex():
        raise ValueError(f"targets: expected values in [0, 1] (float, bool or integer), got {targets.dtype}")
    work = logits if logits.dtype == torch.float64 else logits.float()
    t = targets.to(device=work.device, dtype=work.dtype)
    if targets.dtype != torch.bool:
        _check_unit(t, "targets")
    if pos_weight is not None:
        if not isinstance(pos_weight, Tensor):
            pos_weight = torch.as_tensor(pos_weight)
        c = logits.shape[1]
        if pos_weight.ndim != 1 or pos_weight.shape[0] != c:
            raise ValueError(f"pos_weight: expected {c} values (one per class), "
                             f"got shape {tuple(pos_weight.shape)}")
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
