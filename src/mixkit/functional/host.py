"""Host fast paths of the blends in ``mixing``: the same values, computed with fewer copies, where
reading the permutation and the boxes on the host is free (CPU tensors, eager mode, no autograd
recording; see ``execution``). Each is tested equal, bit for bit, to the tensor path it stands in
for (tests/test_functional.py).

- Row loops (``blend_rows``): from ``WALK_MIN_NUMEL`` elements per sample on, a pairwise blend
  runs row by row straight into the output, or in place along the permutation's cycles, which
  avoids a gathered copy of the batch. Below it, a Python loop costs more than the copy it saves.
- Region copies (``paste_regions``, ``paste_region``): CutMix's boxes copied alone, instead of a
  masked blend over the whole image; per-sample boxes from ``REGION_MIN_NUMEL`` elements per
  sample on (measured on 2 cores: at 3 072 = 3x32x32 the loop was 2.2x slower than the masked
  blend, at 16 000 0.6x of it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .execution import host_readable, records_grad

__all__ = ["WALK_MIN_NUMEL", "REGION_MIN_NUMEL", "cycles", "rows_ok", "blend_rows", "select_rows",
           "combine_rows", "regions_ok", "paste_regions", "paste_region"]

WALK_MIN_NUMEL = 1 << 15
REGION_MIN_NUMEL = 8192


def sample_numel(x: Tensor) -> int:
    return x.numel() // x.shape[0] if x.shape[0] else 0


def cycles(perm: list[int]) -> list[list[int]]:
    """The cycles of the permutation ``perm`` (fixed points left out)."""
    if sorted(perm) != list(range(len(perm))):
        raise ValueError("index: expected a permutation of range(B) for inplace=True")
    seen = [False] * len(perm)
    found = []
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
        found.append(cyc)
    return found


def rows_ok(x: Tensor) -> bool:
    """Whether a blend of ``x`` runs row by row here."""
    return sample_numel(x) >= WALK_MIN_NUMEL and host_readable(x) and not records_grad(x)


def blend_rows(x: Tensor, index: Tensor, row_weight, inplace: bool) -> Tensor:
    """``lerp(x[i], x[index[i]], row_weight(i))`` for every row i, row by row (``mixing._blend``);
    the same ``lerp`` as the tensor path, so they agree bit for bit."""
    def lerp(own, partner, row, out):
        torch.lerp(own, partner, row_weight(row), out=out)
    return combine_rows(x, index, lerp, inplace)


def select_rows(x: Tensor, index: Tensor, row_keep, inplace: bool) -> Tensor:
    """``where(row_keep(i), x[i], x[index[i]])`` for every row i, row by row (``mixing.blend_mask``
    with a binary mask): each element copied from one sample, exactly."""
    def where(own, partner, row, out):
        torch.where(row_keep(row), own, partner, out=out)
    return combine_rows(x, index, where, inplace)


def combine_rows(x: Tensor, index: Tensor, op, inplace: bool) -> Tensor:
    """``op(x[i], x[index[i]], i, out)`` writing row i of the result, row by row.

    In place, each cycle of ``index`` (a permutation) is walked forward, so a row's partner is
    still unwritten when read; the cycle's last row reads a saved copy of its first. Scratch
    space: one sample per cycle.
    """
    if inplace:
        for cyc in cycles(index.tolist()):
            first = x[cyc[0]].clone()
            for pos, row in enumerate(cyc):
                partner = x[cyc[pos + 1]] if pos + 1 < len(cyc) else first
                op(x[row], partner, row, x[row])
        return x
    out = torch.empty_like(x)
    for row, partner in enumerate(index.tolist()):
        op(x[row], x[partner], row, out[row])
    return out


def regions_ok(x: Tensor, boxes: Tensor) -> bool:
    """Whether ``mixing.paste_boxes`` copies the boxes' regions here."""
    if boxes.shape[0] > 1:
        return sample_numel(x) >= REGION_MIN_NUMEL and host_readable(x) and not records_grad(x)
    return host_readable(boxes) and host_readable(x)


def paste_regions(x: Tensor, perm: list[int], bounds: list, inplace: bool) -> Tensor:
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
    for cyc in cycles(perm):
        saved = x[cyc[0]][regions[cyc[-1]]].clone()
        for pos, row in enumerate(cyc):
            src = x[cyc[pos + 1]][regions[row]] if pos + 1 < len(cyc) else saved
            x[row][regions[row]] = src
    return x


def paste_region(x: Tensor, index: Tensor, bounds: list, inplace: bool) -> Tensor:
    """One box ``bounds`` (``[(lo, hi)]`` per axis) for the batch, copied from the partners."""
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
    if sample_numel(x) >= WALK_MIN_NUMEL:
        # In place, large samples: walk the permutation's cycles, saving one region per cycle.
        for cyc in cycles(index.tolist()):
            first = x[cyc[0]][region].clone()
            for pos, row in enumerate(cyc):
                x[row][region] = x[cyc[pos + 1]][region] if pos + 1 < len(cyc) else first
        return x
    x[region] = x[region].index_select(0, index)
    return x
