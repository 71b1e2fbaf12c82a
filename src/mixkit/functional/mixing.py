"""Blending inputs and labels once the mixing parameters are drawn.

Three ways to mix a batch ``x`` of shape ``(B, *)``:

- by pairing: ``lam * x + (1 - lam) * x[index]`` (mixup), lam per sample;
- by weight matrix: ``W @ x`` over the flattened samples (zeta-mixup);
- by keep mask: ``M * x + (1 - M) * x[index]`` with M over the trailing shape (CutMix, FMix).

Integer inputs (uint8 images, int16 volumes): binary keep masks (CutMix boxes, hard FMix masks;
``blend_mask(..., binary=True)``) copy exact values; interpolating blends are computed in float
and rounded to the nearest integer (half to even), so the dtype is kept. Writing an
interpolated blend in place into an integer tensor is refused (``inplace=True``).

Labels follow with the same parameters (``mix_labels_pairs``, ``mix_labels_matrix``). Every
function returns a new tensor unless ``inplace=True``; the in-place paths write into ``x`` and
give the same values as the out-of-place ones. Their scratch space: for CPU samples of at least
``_WALK_MIN_NUMEL`` elements one sample (or one box region) per permutation cycle, otherwise one
gathered copy of the partners.

Paths that read values on the host (row loops, cycle walks, box slicing) run only on CPU tensors
in eager mode and without autograd recording; elsewhere the same results come from tensor
operations alone (``host_readable``, ``records_grad``).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

from .execution import host_cached, host_readable, records_grad
from .masks import box_keep_mask

__all__ = [
    "to_soft_labels",
    "smooth_labels",
    "check_unit_interval",
    "is_integer",
    "mix_labels_pairs",
    "mix_labels_matrix",
    "blend_pairs",
    "blend_matrix",
    "blend_mask",
    "paste_box",
    "paste_boxes",
    "probability_maps",
    "paste_dense",
    "paste_resized",
]


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
        check_class_ids(labels, num_classes)
        return host_cached(_identity, num_classes, str(labels.device)).index_select(0, labels)
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
        torch._assert_async(((labels >= 0) & (labels < num_classes)).all(),
                            f"{what}: expected class ids in [0, {num_classes - 1}]")
        return
    lo, hi = (int(v) for v in torch.aminmax(labels))
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{what}: expected class ids in [0, {num_classes - 1}], got values in [{lo}, {hi}]")


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


def _cycles(perm: list[int]) -> list[list[int]]:
    """The cycles of the permutation ``perm`` (fixed points left out)."""
    if sorted(perm) != list(range(len(perm))):
        raise ValueError("index: expected a permutation of range(B) for inplace=True")
    seen = [False] * len(perm)
    cycles = []
    for start in range(len(perm)):
        if seen[start] or perm[start] == start:
            seen[start] = True
            continue
        cyc = []
        i = start
        while not seen[i]:
            seen[i] = True
            cyc.append(i)
            i = perm[i]
        cycles.append(cyc)
    return cycles


# From this many elements per sample on, blends of CPU tensors run row by row: one pass per row
# straight into the output (or, in place, along the permutation's cycles), which avoids a gathered
# copy of the batch. Below it, the per-call overhead of a row loop outweighs that, and a vectorised
# gather (through a temporary when writing in place) is faster. Row loops read the permutation on
# the host and write with ``out=``, so they are used only where both are free: CPU tensors, eager
# mode, and no autograd recording (``_rows_ok``).
_WALK_MIN_NUMEL = 1 << 15


# Per-sample boxes are pasted region by region (a Python loop over rows) from this many elements
# per sample on: measured on 2 cores, 3 072 (3x32x32) was 2.2x slower than the masked blend and
# 16 000 was 0.6x of it.
_REGION_MIN_NUMEL = 8192


def is_integer(x: Tensor) -> bool:
    """Integer images (uint8, int16, ...): mixed exactly where values are copied, else rounded."""
    return not (x.is_floating_point() or x.is_complex()) and x.dtype != torch.bool


def _work_dtype(x: Tensor) -> torch.dtype:
    """Float type for interpolating integers exactly enough: float32 up to 16-bit, else float64."""
    return torch.float32 if x.element_size() <= 2 else torch.float64


def _round_into(values: Tensor, like: Tensor) -> Tensor:
    """Round float ``values`` to the nearest integer (half to even) in ``like``'s integer dtype."""
    info = torch.iinfo(like.dtype)
    return values.round_().clamp_(info.min, info.max).to(like.dtype)


def _refuse_inplace_integer(x: Tensor, what: str) -> None:
    raise ValueError(
        f"inplace: expected inplace=False for {x.dtype} inputs: {what} interpolates, and the rounded "
        "result cannot be written into the input's integer memory exactly; got inplace=True"
    )


def _sample_numel(x: Tensor) -> int:
    return x.numel() // x.shape[0] if x.shape[0] else 0


def _rows_ok(x: Tensor) -> bool:
    return _sample_numel(x) >= _WALK_MIN_NUMEL and host_readable(x) and not records_grad(x)


def _walk_cycles(x: Tensor, index: Tensor, weight) -> Tensor:
    """In place: ``x[i] = lerp(x[i], x[index[i]], weight(i))`` for every i, with ``index`` a
    permutation. Each cycle is walked forward, so a row's partner is still unwritten when read;
    the cycle's last row reads a saved copy of its first. Scratch space: one sample per cycle.
    Same formula as the out-of-place path, so the two agree bit for bit."""
    for cyc in _cycles(index.tolist()):
        first = x[cyc[0]].clone()
        for pos, row in enumerate(cyc):
            partner = x[cyc[pos + 1]] if pos + 1 < len(cyc) else first
            torch.lerp(x[row], partner, weight(row), out=x[row])
    return x


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along the batch, keeping x's memory format."""
    return x.index_select(0, index) if x.is_contiguous() else x[index]


def _blend(x: Tensor, index: Tensor, weight: Tensor, row_weight, inplace: bool) -> Tensor:
    """``lerp(x, x[index], weight)``, ``weight`` the partner's share: it broadcasts over x
    (per-sample or per-element); ``row_weight(i)`` is its slice for row i (row loops only).

    Every path evaluates the same ``lerp`` with the own sample as start, so in place and out of
    place agree bit for bit, and writing in place needs only the gathered partners as scratch.
    """
    if _rows_ok(x):
        if inplace:
            return _walk_cycles(x, index, row_weight)
        out = torch.empty_like(x)
        for row, partner in enumerate(index.tolist()):
            torch.lerp(x[row], x[partner], row_weight(row), out=out[row])
        return out
    partners = _gather(x, index)
    if inplace:
        return x.lerp_(partners, weight)
    if records_grad(x) or (isinstance(weight, Tensor) and records_grad(weight)):
        return torch.lerp(x, partners, weight)
    # The gathered copy is a fresh tensor: the result can overwrite it.
    return torch.lerp(x, partners, weight, out=partners)


def blend_pairs(x: Tensor, index: Tensor, lam: Tensor, *, inplace: bool = False) -> Tensor:
    """``lam[i] * x[i] + (1 - lam[i]) * x[index[i]]`` for every sample i.

    ``inplace=True`` writes into ``x`` (``index`` must be a permutation); for large CPU samples it
    walks the permutation's cycles and needs one sample of scratch space per cycle.
    """
    if is_integer(x):
        if inplace:
            _refuse_inplace_integer(x, "a pairwise blend")
        work = _work_dtype(x)
        share = (1.0 - lam.to(device=x.device, dtype=torch.float64)).to(work)
        partners = _gather(x, index).to(work)
        return _round_into(torch.lerp(x.to(work), partners, share.view((-1,) + (1,) * (x.ndim - 1))), x)
    if lam.stride(0) == 0 and x.dtype in (torch.float32, torch.float64) and host_readable(lam):
        # One lam for the batch (an expanded view), on the host: blend with a Python weight. The
        # same number as the tensor path: 1 - lam is exact in double, rounded once to x's dtype.
        weight = 1.0 - float(lam[0])
        return _blend(x, index, weight, lambda row: weight, inplace)
    share = 1.0 - lam.to(device=x.device, dtype=x.dtype)
    if _rows_ok(x):
        values = share.tolist()
        return _blend(x, index, share.view((-1,) + (1,) * (x.ndim - 1)), lambda row: values[row], inplace)
    return _blend(x, index, share.view((-1,) + (1,) * (x.ndim - 1)), None, inplace)


def blend_matrix(x: Tensor, weights: Tensor) -> Tensor:
    """``weights @ x`` over flattened samples: ``out[p] = sum_i weights[p, i] * x[i]``.

    The output keeps ``x``'s dtype (autocast is turned off for the product) and memory format
    (channels-last stays channels-last).
    """
    b = x.shape[0]
    if is_integer(x):
        work = _work_dtype(x)
        with no_autocast(x):
            mixed = weights.to(device=x.device, dtype=work) @ x.reshape(b, -1).to(work)
        return _round_into(mixed, x).view(x.shape)
    w = weights.to(device=x.device, dtype=x.dtype)
    with no_autocast(x):
        if x.is_contiguous():
            # The common case, decided without dim_order() (a Python-level helper costing ~50 us).
            return (w @ x.view(b, -1)).view(x.shape)
        if x.ndim >= 2 and x.dim_order()[0] == 0:
            # Batch dim outermost: view the samples as rows through a permutation that is contiguous.
            order = x.dim_order()
            xp = x.permute(order)
            if xp.is_contiguous():
                out = (w @ xp.reshape(b, -1)).view(xp.shape)
                inverse = sorted(range(x.ndim), key=lambda i: order[i])
                return out.permute(inverse)
        return (w @ x.reshape(b, -1)).view(x.shape)


def blend_mask(x: Tensor, index: Tensor, mask: Tensor, *, inplace: bool = False,
               binary: bool = False) -> Tensor:
    """``mask * x + (1 - mask) * x[index]`` for ``x`` ``(B, C, *spatial)`` and a keep mask
    ``(B, *spatial)`` or ``(1, *spatial)`` with values in [0, 1].

    ``inplace=True`` writes into ``x`` (``index`` must be a permutation) with one sample of
    scratch space per permutation cycle for large CPU samples. ``binary=True`` promises a mask
    of 0s and 1s: integer inputs then take each value from one sample or the other, exactly (and
    may be written in place); a soft mask on integer inputs is blended in float and rounded.
    """
    if is_integer(x):
        partners = _gather(x, index)
        if binary:
            keep = mask.to(device=x.device, dtype=torch.bool).unsqueeze(1)
            mixed = torch.where(keep, x, partners)
            return x.copy_(mixed) if inplace else mixed
        if inplace:
            _refuse_inplace_integer(x, "a soft mask")
        work = _work_dtype(x)
        share = (1.0 - mask.to(device=x.device, dtype=work)).unsqueeze(1)
        return _round_into(torch.lerp(x.to(work), partners.to(work), share), x)
    share = (1.0 - mask.to(device=x.device, dtype=x.dtype)).unsqueeze(1)  # the partner's weight
    if share.shape[0] == 1:
        return _blend(x, index, share, lambda row: share[0], inplace)
    return _blend(x, index, share, lambda row: share[row], inplace)


def paste_box(x: Tensor, index: Tensor, box: Tensor, *, inplace: bool = False) -> Tensor:
    """CutMix with one box for the whole batch: ``x[i]`` with the region ``box`` taken from
    ``x[index[i]]``. ``box`` is int ``(d, 2)`` of ``[lo, hi)`` over the trailing d axes."""
    return paste_boxes(x, index, box[None], inplace=inplace)


def paste_boxes(x: Tensor, index: Tensor, boxes: Tensor, *, inplace: bool = False) -> Tensor:
    """CutMix: ``x[i]`` with the region ``boxes[i]`` (or ``boxes[0]`` for all, when ``boxes`` is
    ``(1, d, 2)``) taken from ``x[index[i]]``. ``boxes`` is int ``(B|1, d, 2)`` of ``[lo, hi)``
    over the trailing d axes.

    CPU tensors in eager mode copy the regions alone (the boxes are read on the host; per-sample
    boxes only for samples of at least ``_REGION_MIN_NUMEL`` elements). Elsewhere, and when autograd
    records per-sample boxes, the boxes become keep masks and the batch is blended with them, so
    nothing is read back and no ``out=`` is used.
    """
    if boxes.shape[0] > 1 and not (_sample_numel(x) >= _REGION_MIN_NUMEL and host_readable(x)
                                   and not records_grad(x)):
        # Per-sample boxes on small samples, under autograd or on a device: one vectorised masked
        # blend (below _REGION_MIN_NUMEL a Python loop over rows costs more than it saves).
        return blend_mask(x, index, box_keep_mask(boxes, tuple(x.shape[2:])), inplace=inplace, binary=True)
    if boxes.shape[0] > 1:
        return _paste_regions(x, index.tolist(), boxes.tolist(), inplace)
    if not host_readable(boxes) or not host_readable(x):
        return blend_mask(x, index, box_keep_mask(boxes, tuple(x.shape[2:])), inplace=inplace, binary=True)
    bounds = boxes[0].tolist()
    region = (Ellipsis,) + tuple(slice(lo, hi) for lo, hi in bounds)
    out = x if inplace else x.clone()
    if any(hi <= lo for lo, hi in bounds):
        return out
    index = index.to(x.device)
    if records_grad(x):
        out[region] = x[region].index_select(0, index)
        return out
    if not inplace:
        # Gather the partners' regions straight into the output's region: no temporary.
        torch.index_select(x[region], 0, index, out=out[region])
        return out
    if _sample_numel(x) >= _WALK_MIN_NUMEL:
        # In place, large samples: walk the permutation's cycles, saving one region per cycle.
        for cyc in _cycles(index.tolist()):
            first = x[cyc[0]][region].clone()
            for pos, row in enumerate(cyc):
                x[row][region] = x[cyc[pos + 1]][region] if pos + 1 < len(cyc) else first
        return x
    x[region] = x[region].index_select(0, index)
    return x


def _paste_regions(x: Tensor, perm: list[int], bounds: list, inplace: bool) -> Tensor:
    """Per-sample boxes on the host: copy each row's region from its partner, nothing else.

    Out of place: a copy of the batch, then one region copy per row. In place: along the
    permutation's cycles, each row reads its partner before the partner is written; the cycle's
    last row reads a saved copy of the first row's region (the last row's box). Scratch space:
    one region per cycle.
    """
    regions = [(Ellipsis,) + tuple(slice(lo, hi) for lo, hi in box) for box in bounds]
    if not inplace:
        out = x.clone()
        for row, partner in enumerate(perm):
            if partner != row:
                out[row][regions[row]] = x[partner][regions[row]]
        return out
    for cyc in _cycles(perm):
        saved = x[cyc[0]][regions[cyc[-1]]].clone()
        for pos, row in enumerate(cyc):
            src = x[cyc[pos + 1]][regions[row]] if pos + 1 < len(cyc) else saved
            x[row][regions[row]] = src
    return x



# ---------------------------------------------------------------------------------------------
# Dense targets (segmentation): class maps (B, *spatial) or probability maps (B, C, *spatial),
# mixed with the parameters of their images.


def probability_maps(masks: Tensor, num_classes: int | None) -> Tensor:
    """Class maps ``(B, *spatial)`` -> one-hot float32 ``(B, C, *spatial)``; probability maps are
    returned as they are (float32 at least). Interpolating methods mix these."""
    if masks.is_floating_point():
        return masks if masks.dtype in (torch.float32, torch.float64) else masks.float()
    if num_classes is None:
        raise ValueError("num_classes: expected an int to turn class maps into probability maps for a "
                         "blending mixer, got None; pass num_classes=... to the mixer")
    check_class_ids(masks.reshape(-1), num_classes, what="masks")
    # scatter, not one_hot: one_hot reads the maximum back to the host (a device sync)
    shape = (masks.shape[0], num_classes, *masks.shape[1:])
    out = torch.zeros(shape, dtype=torch.float32, device=masks.device)
    return out.scatter_(1, masks.long().unsqueeze(1), 1.0)


def paste_dense(masks: Tensor, index: Tensor, keep: Tensor) -> Tensor:
    """Each pixel of each map from the sample the image pixel came from: ``masks[i]`` where
    ``keep`` (bool ``(B|1, *spatial)``) holds, else ``masks[index[i]]``. Class maps ``(B,
    *spatial)`` and probability maps ``(B, C, *spatial)`` alike; values are copied exactly."""
    partners = _gather(masks, index)
    if masks.ndim == keep.ndim + 1:  # probability maps: one keep mask for every class channel
        keep = keep.unsqueeze(1)
    return torch.where(keep, masks, partners)


# ---------------------------------------------------------------------------------------------
# ResizeMix: the whole partner, resampled into a box.

_RESAMPLING = ("nearest", "linear")


def paste_resized(x: Tensor, index: Tensor, boxes: Tensor, *, mode: str = "linear") -> Tensor:
    """ResizeMix: ``x[i]`` with the whole of ``x[index[i]]`` resampled into ``boxes[i]`` (or
    ``boxes[0]`` for all). ``x``: ``(B, C, *spatial)`` with 1 to 3 spatial dims.

    Output pixel p of a box ``[lo, lo + e)`` on an axis of size S reads the partner at pixel
    centre ``c = (p + 0.5 - lo) S / e - 0.5`` (``F.interpolate``'s convention), computed in
    float64. ``mode="linear"``: separable (bi-/tri-)linear interpolation between ``floor(c)`` and
    the next pixel, clamped at the border, as ``F.interpolate(align_corners=False)``; integer
    inputs are interpolated in float and rounded. ``mode="nearest"``: the pixel
    ``floor((2 (p - lo) + 1) S / (2 e))`` in integer arithmetic (``"nearest-exact"``), values
    copied exactly. Batched gathers on ``x``'s device, no host reads, differentiable.
    """
    if mode not in _RESAMPLING:
        raise ValueError(f"mode: expected 'linear' or 'nearest', got {mode!r}")
    spatial = tuple(x.shape[2:])
    boxes = boxes.to(x.device)
    keep = box_keep_mask(boxes, spatial, dtype=torch.bool).unsqueeze(1)
    out = _gather(x, index)
    if mode == "linear" and not x.is_floating_point():
        out = out.to(_work_dtype(x))
    for a, n in enumerate(spatial):
        lo = boxes[:, a, 0:1]
        extent = (boxes[:, a, 1:2] - lo).clamp_min(1)
        pos = torch.arange(n, device=x.device)
        if mode == "nearest":
            src = ((2 * (pos - lo) + 1) * n).div(2 * extent, rounding_mode="floor").clamp(0, n - 1)
            out = _take(out, a, src)
            continue
        offset = (pos - lo).to(torch.float64)  # float64, not the default float32
        centre = ((offset + 0.5) * n / extent.to(torch.float64) - 0.5).clamp(0, n - 1)  # (B|1, S_a)
        left = centre.floor().to(torch.int64)
        right = (left + 1).clamp_max(n - 1)
        weight = (centre - left).to(out.dtype)
        shape = [weight.shape[0]] + [1] * (out.ndim - 1)
        shape[a + 2] = n
        out = torch.lerp(_take(out, a, left), _take(out, a, right), weight.view(shape))
    if not x.is_floating_point() and out.is_floating_point():
        out = _round_into(out, x)
    return torch.where(keep, x, out)


def _take(t: Tensor, axis: int, src: Tensor) -> Tensor:
    """``t`` with spatial axis ``axis`` re-indexed per sample: ``out[b, ..., p, ...] = t[b, ...,
    src[b, p], ...]`` (``src``: ``(B|1, S_axis)``)."""
    dim = axis + 2
    shape = [src.shape[0]] + [1] * (t.ndim - 1)
    shape[dim] = src.shape[1]
    return t.gather(dim, src.view(shape).expand(t.shape))
