"""Blending inputs once the mixing parameters are drawn: the reference tensor code of every method's
mix, each formula first.

Three ways to mix a batch ``x`` of shape ``(B, *)``:

- by pairing: ``lam * x + (1 - lam) * x[index]`` (mixup), lam per sample (``blend_pairs``);
- by weight matrix: ``W @ x`` over the flattened samples (zeta-mixup, ``blend_matrix``);
- by keep mask: ``M * x + (1 - M) * x[index]`` with M over the trailing shape (CutMix, FMix;
  ``blend_mask``, ``paste_boxes``), and a resampled partner (ResizeMix, ``paste_resized``).

Integer inputs (uint8 images, int16 volumes): binary keep masks (CutMix boxes, hard FMix masks;
``blend_mask(..., binary=True)``) copy exact values; interpolating blends are computed in float
and rounded to the nearest integer (half to even), so the dtype is kept. Writing an
interpolated blend in place into an integer tensor is refused (``inplace=True``).

Every function returns a new tensor unless ``inplace=True``; the in-place paths write into ``x`` and
give the same values as the out-of-place ones, with one gathered copy of the partners as scratch.
Where the host can read the permutation and the boxes for free (CPU, eager, no autograd
recording), the same values come from the row loops and region copies of ``host`` (tested equal
to these). Labels follow with the same parameters (``labels``: ``mix_labels_pairs``,
``mix_labels_matrix``; re-exported here).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import host
from .execution import finite_on_host, host_readable, records_grad
from .labels import (
    check_class_ids,
    check_probabilities,
    check_unit_interval,
    mix_labels_matrix,
    mix_labels_pairs,
    no_autocast,
    smooth_labels,
    to_soft_labels,
)
from .masks import box_keep_mask

__all__ = [
    "to_soft_labels",
    "check_class_ids",
    "check_probabilities",
    "no_autocast",
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


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along the batch, keeping x's memory format."""
    return x.index_select(0, index) if x.is_contiguous() else x[index]


def _blend(x: Tensor, index: Tensor, weight: Tensor, row_weight, inplace: bool) -> Tensor:
    """``lerp(x, x[index], weight)``, ``weight`` the partner's share: it broadcasts over x
    (per-sample or per-element); ``row_weight(i)`` is its slice for row i (row loops only).

    Every path evaluates the same ``lerp`` with the own sample as start, so in place and out of
    place agree bit for bit, and writing in place needs only the gathered partners as scratch.
    """
    if host.rows_ok(x):
        return host.blend_rows(x, index, row_weight, inplace)
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
    if host.rows_ok(x):
        values = share.tolist()
        return _blend(x, index, share.view((-1,) + (1,) * (x.ndim - 1)), lambda row: values[row], inplace)
    return _blend(x, index, share.view((-1,) + (1,) * (x.ndim - 1)), None, inplace)


def blend_matrix(x: Tensor, weights: Tensor, *, exact: bool | None = None) -> Tensor:
    """``weights @ x`` over flattened samples: ``out[p] = sum_i weights[p, i] * x[i]``.

    The output keeps ``x``'s dtype (autocast is turned off for the product) and memory format
    (channels-last stays channels-last). ``exact`` keeps a non-finite sample to the rows that
    give it weight (the plain product spreads it to every row: 0 * inf is NaN): ``None`` (the
    default) does so on the CPU, where it costs one sum read back (and the exact product only for
    a batch holding a non-finite value), and takes the plain product elsewhere; ``True`` also on
    accelerators and under ``torch.compile``, at the cost of a second product and a select;
    ``False`` never (a caller whose weights hold no zeros: every row takes a non-finite value).
    """
    b = x.shape[0]
    if exact is not False and not is_integer(x):
        if host_readable(x):
            if not finite_on_host(x):
                return _blend_matrix_nonfinite(x, weights)
        elif exact:
            return _blend_matrix_exact(x, weights)
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


def _blend_matrix_exact(x: Tensor, weights: Tensor) -> Tensor:
    """``_blend_matrix_nonfinite`` without host reads (accelerators, torch.compile): the product
    over the finite samples, and the plain product for the rows that give a non-finite sample
    weight; equal to the plain product when every sample is finite."""
    b = x.shape[0]
    flat = x.reshape(b, -1)
    bad = ~torch.isfinite(flat).all(dim=1)
    w = weights.to(device=x.device, dtype=x.dtype)
    with no_autocast(x):
        reach = (w != 0).to(w.dtype) @ bad.to(w.dtype)  # > 0: the row gives a non-finite sample weight
        out = torch.where(reach[:, None] > 0, w @ flat, w @ torch.where(bad[:, None], 0.0, flat))
    return _like(out.view(x.shape), x)


def _blend_matrix_nonfinite(x: Tensor, weights: Tensor) -> Tensor:
    """``weights @ x`` for a batch holding non-finite values (on the host): a sample reaches only
    the rows that give it weight (the plain product would spread it to every row, 0 * inf being
    NaN). Rows that give a non-finite sample weight are the plain product's, non-finite as the
    sum is; the others are the product over the finite samples."""
    b = x.shape[0]
    flat = x.reshape(b, -1)
    bad = ~torch.isfinite(flat).all(dim=1)
    w = weights.to(device=x.device, dtype=x.dtype)
    with no_autocast(x):
        out = w @ torch.where(bad[:, None], 0.0, flat)
        touched = (w[:, bad] != 0).any(dim=1)
        out[touched] = w[touched] @ flat
    return _like(out.view(x.shape), x)


def _like(out: Tensor, x: Tensor) -> Tensor:
    """``out`` (contiguous, shaped like ``x``) in ``x``'s channels-last format where it has one."""
    for fmt in (torch.channels_last, torch.channels_last_3d):
        if x.ndim == (4 if fmt is torch.channels_last else 5) and not x.is_contiguous() \
                and x.is_contiguous(memory_format=fmt):
            return out.contiguous(memory_format=fmt)
    return out


def blend_mask(x: Tensor, index: Tensor, mask: Tensor, *, inplace: bool = False,
               binary: bool = False, exact: bool = True) -> Tensor:
    """``mask * x + (1 - mask) * x[index]`` for ``x`` ``(B, C, *spatial)`` and a keep mask
    ``(B, *spatial)`` or ``(1, *spatial)`` with values in [0, 1] (or bool, for a binary one).

    ``inplace=True`` writes into ``x`` (``index`` must be a permutation) with one sample of
    scratch space per permutation cycle for large CPU samples. ``binary=True`` promises a mask
    of 0s and 1s: integer inputs then take each value from one sample or the other, exactly (and
    may be written in place); a soft mask on integer inputs is blended in float and rounded.

    A binary mask copies each value from one sample: a non-finite partner reaches only the pixels
    it gives. On the CPU that exactness costs one sum read back per call (a ``torch.where`` there
    is several times slower than ``lerp``, so it runs only for a batch holding a non-finite
    value); ``exact=False`` skips the check and blends, and then a pixel a row keeps turns NaN
    where its partner is non-finite (0 * inf). Mixers pass it where every row is mixed (``p = 1``).
    On accelerators and under ``torch.compile`` binary masks always select.
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
    if binary and (not host_readable(x) or (exact and not finite_on_host(x))):
        return _select(x, index, mask.to(device=x.device, dtype=torch.bool).unsqueeze(1), inplace)
    share = (1.0 - mask.to(device=x.device, dtype=x.dtype)).unsqueeze(1)  # the partner's weight
    if share.shape[0] == 1:
        return _blend(x, index, share, lambda row: share[0], inplace)
    return _blend(x, index, share, lambda row: share[row], inplace)


def _select(x: Tensor, index: Tensor, keep: Tensor, inplace: bool) -> Tensor:
    """``where(keep, x, x[index])``: a binary mask copies each element from one sample, exactly,
    so a non-finite partner never reaches the elements it does not give (a blend with weight 0
    would: 0 * inf is NaN). The values equal the lerp with weights 0 and 1 wherever both are
    finite; taken on accelerators, and on the CPU for batches holding a non-finite value (where
    ``torch.where`` is several times slower than ``lerp``)."""
    if host.rows_ok(x):
        return host.select_rows(x, index, (lambda row: keep[0]) if keep.shape[0] == 1 else
                                (lambda row: keep[row]), inplace)
    partners = _gather(x, index)
    if records_grad(x):  # (in place on a leaf that requires grad: torch's own error, from copy_)
        mixed = torch.where(keep, x, partners)
        return x.copy_(mixed) if inplace else mixed
    # The gathered copy is a fresh tensor: the result can overwrite it (scratch: the partners only).
    torch.where(keep, x, partners, out=partners)
    return x.copy_(partners) if inplace else partners


def paste_box(x: Tensor, index: Tensor, box: Tensor, *, inplace: bool = False) -> Tensor:
    """CutMix with one box for the whole batch: ``x[i]`` with the region ``box`` taken from
    ``x[index[i]]``. ``box`` is int ``(d, 2)`` of ``[lo, hi)`` over the trailing d axes."""
    return paste_boxes(x, index, box[None], inplace=inplace)


def paste_boxes(x: Tensor, index: Tensor, boxes: Tensor, *, inplace: bool = False) -> Tensor:
    """CutMix: ``x[i]`` with the region ``boxes[i]`` (or ``boxes[0]`` for all, when ``boxes`` is
    ``(1, d, 2)``) taken from ``x[index[i]]``. ``boxes`` is int ``(B|1, d, 2)`` of ``[lo, hi)``
    over the trailing d axes.

    The reference is the masked blend with the boxes' keep mask (what runs on devices and under
    autograd: nothing is read back, no ``out=``); CPU tensors in eager mode copy the regions
    alone (``host.paste_regions``, ``host.paste_region``).
    """
    if host.regions_ok(x, boxes):
        if boxes.shape[0] > 1:
            return host.paste_regions(x, index.tolist(), boxes.tolist(), inplace)
        return host.paste_region(x, index, boxes[0].tolist(), inplace)
    keep = box_keep_mask(boxes, tuple(x.shape[2:]), dtype=torch.bool)  # (a bool mask: no conversions)
    return blend_mask(x, index, keep, inplace=inplace, binary=True)


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
