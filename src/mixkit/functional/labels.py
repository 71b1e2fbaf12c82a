"""Labels as target rows, and how they are mixed: class ids or probabilities become float
``(B, C)`` rows, smoothed, then mixed with the same parameters as their inputs.

    pairs:   lam * y + (1 - lam) * y[index]          (mix_labels_pairs)
    matrix:  W @ y                                   (mix_labels_matrix, zeta-mixup)

Checks of labels read the host on CPU (a ValueError naming what came) and are asynchronous
device-side asserts on accelerators (no host read).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

from .execution import host_cached, host_readable

__all__ = ["to_soft_labels", "check_class_ids", "check_probabilities", "check_unit_interval", "smooth_labels",
           "mix_labels_pairs", "mix_labels_matrix", "no_autocast"]


def to_soft_labels(labels: Tensor, num_classes: int | None = None, batch_size: int | None = None,
                   device: torch.device | None = None, *, multilabel: bool = False) -> Tensor:
    """Class ids ``(B,)`` or probabilities ``(B, C)`` -> float probabilities ``(B, C)``.

    Class ids need ``num_classes`` and become one-hot float32 (never the images' dtype: a bf16
    cast would corrupt large ids). Probability rows must be non-negative and sum to 1 (to 1e-3);
    they are kept in their dtype, promoted to at least float32.

    ``multilabel=True``: rows are multi-hot targets (any number of classes on), ``(B, C)`` float
    with values in [0, 1], or bool / integer 0-1 (made float32); rows are not required to sum to
    1 and are never renormalised. Class ids ``(B,)`` still become one-hot rows.
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels: expected a torch.Tensor, got {type(labels).__name__}")
    if device is not None and labels.device != device:
        raise ValueError(f"labels: expected a tensor on the inputs' device ({device}), got one on "
                         f"{labels.device}; move them with labels.to(inputs.device)")
    if batch_size is not None and (labels.ndim == 0 or labels.shape[0] != batch_size):
        got = "a scalar" if labels.ndim == 0 else labels.shape[0]
        raise ValueError(f"labels: expected {batch_size} labels (one per input), got {got}")
    if labels.ndim == 1 and not labels.is_floating_point() and not labels.is_complex():
        if labels.dtype == torch.bool:
            raise TypeError("labels: expected integer class ids or float probabilities, got bool")
        if num_classes is None:
            raise ValueError(
                "num_classes: expected an int when labels are class ids (B,), got None; "
                "pass num_classes=... to the mixer or give probabilities (B, C)"
            )
        if labels.dtype not in (torch.int32, torch.int64):  # uint8, int8, int16 ids (timm takes int8)
            labels = labels.long()
        rows = host_cached(_identity, num_classes, str(labels.device))
        if not host_readable(labels):
            check_class_ids(labels, num_classes)  # the device-side assert
            return rows.index_select(0, labels)
        try:  # on the host index_select checks the range itself: the clear error only when it fails
            return rows.index_select(0, labels)
        except IndexError:
            message = _out_of_range(labels, num_classes, "labels")
            if message is None:
                raise
            raise ValueError(message) from None
    if labels.ndim == 2 and (labels.is_floating_point() or (multilabel and not labels.is_complex())):
        what = "multi-hot targets" if multilabel else "probabilities"
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(f"labels: expected {what} with {num_classes} columns, got {labels.shape[1]}")
        probs = labels if labels.dtype in (torch.float32, torch.float64) else labels.float()
        if multilabel:
            check_unit_interval(probs)
        else:
            check_probabilities(probs)
        return probs
    hint = ""
    if labels.ndim == 2 and not multilabel:
        hint = "; for multi-hot (multi-label) targets pass multilabel=True"
    raise ValueError(
        "labels: expected integer class ids of shape (B,) or float probabilities of shape (B, C), "
        f"got {labels.dtype} of shape {tuple(labels.shape)}{hint}"
    )


@functools.lru_cache(maxsize=16)
def _identity(num_classes: int, device: str) -> Tensor:
    """The one-hot rows of ``num_classes`` classes, float32, kept per device (never written)."""
    return torch.eye(num_classes, dtype=torch.float32, device=device)


def check_class_ids(labels: Tensor, num_classes: int, what: str = "labels") -> None:
    """Class ids in [0, num_classes): a ValueError on the host, an async assert on a device."""
    if not labels.numel():
        return
    if not host_readable(labels):
        # On the device: an asynchronous assert, raised at the next synchronisation.
        torch._assert_async(_ids_in_range(labels, num_classes),
                            f"{what}: expected class ids in [0, {num_classes - 1}]")
        return
    message = _out_of_range(labels, num_classes, what)
    if message is not None:
        raise ValueError(message)


def _out_of_range(labels: Tensor, num_classes: int, what: str) -> str | None:
    """The error for host class ids outside [0, num_classes), or None when they are inside."""
    lo, hi = (int(v) for v in torch.aminmax(labels))
    if lo < 0 or hi >= num_classes:
        return f"{what}: expected class ids in [0, {num_classes - 1}], got values in [{lo}, {hi}]"
    return None


def _ids_in_range(labels: Tensor, num_classes: int) -> Tensor:
    """Whether every id is in [0, num_classes), as a one-element tensor: for integer ids, whether
    clamping them to the range leaves them unchanged (three ops, not four for two bounds and &;
    the upper bound capped at the dtype's largest value, which clamp requires)."""
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        return ((labels >= 0) & (labels < num_classes)).all()
    top = min(num_classes - 1, torch.iinfo(labels.dtype).max)
    return labels.clamp(0, top).eq(labels).all()


def check_probabilities(probs: Tensor) -> None:
    """Non-negative rows summing to 1 (to 1e-3): a ValueError on the host, an async assert on a device."""
    if not probs.numel():
        return
    sums = probs.sum(dim=1)
    if not host_readable(probs):
        ok = (probs >= 0).all() & ((sums - 1).abs() <= 1e-3).all()
        torch._assert_async(ok, "labels: expected non-negative probability rows summing to 1")
        return
    if bool((probs < 0).any()):
        raise ValueError("labels: expected non-negative probabilities, got negative entries")
    worst = float((sums - 1).abs().max())
    if not worst <= 1e-3:
        raise ValueError("labels: expected probability rows summing to 1, got rows off by up to "
                         f"{worst:.3g}; for multi-hot (multi-label) targets pass multilabel=True")


def check_unit_interval(targets: Tensor) -> None:
    """Multi-hot targets: every value in [0, 1] (a ValueError on the host, an async assert on a device)."""
    if not targets.numel():
        return
    if not host_readable(targets):
        torch._assert_async(((targets >= 0) & (targets <= 1)).all(),
                            "labels: expected multi-hot targets with values in [0, 1]")
        return
    lo, hi = (float(v) for v in torch.aminmax(targets))
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError("labels: expected multi-hot targets with values in [0, 1], "
                         f"got values in [{lo:g}, {hi:g}]")


def smooth_labels(soft: Tensor, smoothing: float, multilabel: bool = False) -> Tensor:
    """Label smoothing of target rows: ``soft * (1 - eps) + eps / C`` (timm's and torch's form),
    so probability rows still sum to 1. Multi-hot rows (``multilabel``) are smoothed per class
    towards 0.5, ``soft * (1 - eps) + eps / 2`` (each class is its own binary target; timm's
    multi-label form). ``eps = 0`` returns ``soft`` itself."""
    if smoothing == 0.0:
        return soft
    return soft * (1.0 - smoothing) + smoothing * (0.5 if multilabel else 1.0 / soft.shape[1])


def mix_labels_pairs(soft: Tensor, index: Tensor, lam: Tensor) -> Tensor:
    """``lam * soft + (1 - lam) * soft[index]`` with lam per sample ``(B,)``."""
    if lam.stride(0) == 0 and host_readable(lam):  # one lam for the batch, on the host
        return torch.lerp(soft.index_select(0, index), soft, float(lam[0]))
    return torch.lerp(soft.index_select(0, index), soft, lam.to(soft.dtype)[:, None])


def mix_labels_matrix(soft: Tensor, weights: Tensor) -> Tensor:
    """``weights @ soft``: each row a convex combination of the batch's labels (in soft's dtype,
    also under autocast)."""
    with no_autocast(soft):
        return weights.to(soft.dtype) @ soft


def no_autocast(t: Tensor):
    """A context that turns autocast off for ``t``'s device type (mixing keeps the input's dtype)."""
    kind = t.device.type
    if torch.amp.is_autocast_available(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()
