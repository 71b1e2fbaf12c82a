"""Mosaic (Bochkovskiy et al., "YOLOv4: Optimal Speed and Accuracy of Object Detection",
arXiv 2004.10934; the geometry of YOLOX, Ge et al., arXiv 2107.08430).

Four images, the sample itself and three drawn partners, are laid around a centre on a canvas
of ``2 * size`` filled with ``fill``:

    centre (xc, yc) ~ U[0.5 w, 1.5 w) x U[0.5 h, 1.5 h)   (floored to whole pixels)
    tile k resized by s_k = min(h / h_k, w / w_k) * u_k,  u_k ~ U(scale)
    tile 0 ends at the centre (top-left), 1 starts right of it (top-right), 2 below it
    (bottom-left), 3 at it (bottom-right); what falls off the canvas is cut.

The output is the window of ``output_size`` (default the whole ``2 * size`` canvas) centred on
the canvas. Boxes, masks and key points move with their tiles; boxes are clipped to the output
(the tight box of the mask where masks are given) and objects whose visible box is under
``min_area`` pixels or has a side under ``min_side`` are dropped.

Draws, in order, one batched call each: the partners ``(B, 3)``, the centres ``(B, 2)``, the tile
scales ``(B, 4)``; all on the host (the geometry is Python integers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import targets as T
from .base import DetectionMixer

__all__ = ["Mosaic", "MosaicParams"]


@dataclass(frozen=True)
class MosaicParams:
    """``tiles[i]``: the four image indices of output ``i``; ``centres[i]``: ``(xc, yc)`` on the
    canvas; ``scales[i]``: the four scale multipliers."""

    tiles: tuple
    centres: tuple
    scales: tuple

    @property
    def size(self) -> int:
        return len(self.tiles)


def tile_origins(centre: tuple, sizes: list) -> list:
    """The canvas position ``(x0, y0)`` of each tile's top-left corner (YOLOX's quadrants)."""
    xc, yc = centre
    (h0, w0), (h1, w1), (h2, w2), (h3, w3) = sizes
    return [(xc - w0, yc - h0), (xc, yc - h1), (xc - w2, yc), (xc, yc)]


class Mosaic(DetectionMixer):
    """Mosaic of four images for detection (YOLOv4, arXiv 2004.10934; YOLOX's geometry).

    Arguments: ``size`` (tile size ``(h, w)`` or an int; the canvas is ``2 * size``; default: the
    first image's size), ``output_size`` (the centred window kept; default the whole canvas),
    ``scale`` (range of the random multiplier of each tile's fit-scale, default ``(1.0, 1.0)``),
    ``fill`` (canvas value; default None: YOLOX's grey, 114 for integer images and 114 / 255 for
    float images in [0, 1]), ``min_area`` and ``min_side`` (in output pixels, default 1.0 and 0.0).

    ``mixer(images, targets, generator=g)``, or ``params = mixer.sample(images, targets,
    generator=g)`` then ``mixer.apply(images, targets, params)`` (the same output). The
    draws are made on the host; images stay on their device and per-object data where it is.
    Image-level entries of a target are those of the output's first tile (the sample itself).

    Example:

    ```python
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from mixkit.detection import Mosaic
    >>> images = torch.rand(4, 3, 32, 32)
    >>> targets = [{"boxes": tv_tensors.BoundingBoxes([[4.0, 4.0, 20.0, 20.0]], format="XYXY",
    ...                                               canvas_size=(32, 32)),
    ...             "labels": torch.tensor([i])} for i in range(4)]
    >>> out, res = Mosaic(fill=0.45)(images, targets, generator=torch.Generator().manual_seed(0))
    >>> out.shape, res[0]["boxes"].canvas_size, res[0]["labels"][0].item()
    (torch.Size([4, 3, 64, 64]), (64, 64), 0)

    ```
    """

    _options = ("size", "output_size", "scale", "fill", "min_area", "min_side")

    def __init__(self, size=None, *, output_size=None, scale=(1.0, 1.0), fill=None,
                 min_area: float = 1.0, min_side: float = 0.0):
        self.size = _pair("size", size)
        self.output_size = _pair("output_size", output_size)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale: expected (low, high) with 0 < low <= high, got {scale}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.fill = fill
        if min_area < 0 or min_side < 0:
            raise ValueError(f"min_area, min_side: expected values >= 0, got {min_area}, {min_side}")
        self.min_area, self.min_side = float(min_area), float(min_side)


    def canvas_fill(self, dtype: torch.dtype) -> float:
        """The canvas value for images of ``dtype``: ``fill``, or when it is None YOLOX's grey,
        114 for integer images and 114 / 255 for float ones."""
        if self.fill is not None:
            return self.fill
        return 114.0 / 255.0 if dtype.is_floating_point else 114.0

    def sample(self, images, targets, *, generator=None) -> MosaicParams:
        batch = T.read(images, targets, "Mosaic")
        b, g = batch.size, T.host(generator)
        h, w = self._tile_size(batch)
        partners = torch.randint(0, b, (b, 3), generator=g)
        centre = torch.rand(b, 2, generator=g, dtype=torch.float64)
        u = torch.rand(b, 4, generator=g, dtype=torch.float64)
        lo, hi = self.scale
        scales = (lo + (hi - lo) * u).tolist()
        xc = (0.5 * w + centre[:, 0] * w).floor().long().tolist()
        yc = (0.5 * h + centre[:, 1] * h).floor().long().tolist()
        tiles = tuple((i, *partners[i].tolist()) for i in range(b))
        return MosaicParams(tiles, tuple(zip(xc, yc, strict=True)), tuple(tuple(s) for s in scales))

    def _tile_size(self, batch) -> tuple:
        return self.size if self.size is not None else tuple(batch.images[0].shape[-2:])

    def apply(self, images, targets, params: MosaicParams):
        batch = T.read(images, targets, "Mosaic")
        T.check_params(params, MosaicParams, batch, "Mosaic")
        h, w = self._tile_size(batch)
        oh, ow = self.output_size if self.output_size is not None else (2 * h, 2 * w)
        off = ((2 * w - ow) // 2, (2 * h - oh) // 2)
        outs, objs, extras = [], [], []
        tight = {}  # image index -> the tight boxes of its masks, measured once for the batch
        stacked = None  # a batch in, the output canvases allocated at once (no stacking after)
        if batch.stacked is not None:
            x = batch.stacked
            stacked = x.new_full((batch.size, x.shape[1], oh, ow), self.canvas_fill(x.dtype))
        rows = zip(params.tiles, params.centres, params.scales, strict=True)
        for i, (tiles, centre, scales) in enumerate(rows):
            canvas = None if stacked is None else stacked[i]
            img, obj = self._one(batch, tiles, centre, scales, (h, w), (oh, ow), off, tight, canvas)
            outs.append(img)
            objs.append(obj)
            extras.append(batch.extras[tiles[0]])
        return T.write(batch, outs if stacked is None else stacked, objs, extras)

    def _one(self, batch, tiles, centre, scales, hw, out_hw, off, tight, canvas=None):
        h, w = hw
        oh, ow = out_hw
        first = batch.images[tiles[0]]
        if canvas is None:
            canvas = first.new_full((first.shape[0], oh, ow), self.canvas_fill(first.dtype))
        sizes = []
        for j, s in zip(tiles, scales, strict=True):
            hj, wj = batch.images[j].shape[-2:]
            fit = min(h / hj, w / wj) * s
            sizes.append((max(1, round(hj * fit)), max(1, round(wj * fit))))
        parts, pieces = [], []
        for j, (th, tw), (x0, y0) in zip(tiles, sizes, tile_origins(centre, sizes), strict=True):
            x0, y0 = x0 - off[0], y0 - off[1]
            img = batch.images[j]
            # the part of the tile on the output: rows y_lo:y_hi, columns x_lo:x_hi (maybe none)
            y_lo, x_lo = max(y0, 0), max(x0, 0)
            y_hi, x_hi = max(min(y0 + th, oh), y_lo), max(min(x0 + tw, ow), x_lo)
            src = (slice(y_lo - y0, y_hi - y0), slice(x_lo - x0, x_hi - x0))
            if y_hi > y_lo and x_hi > x_lo:  # the rest of the canvas keeps the fill
                piece = _crop_resized(img, th, tw, src)
                canvas[:, y_lo:y_hi, x_lo:x_hi].copy_(piece)
            obj = T.move(batch.objects[j], (tw / img.shape[-1], th / img.shape[-2]), (x0, y0))
            if "masks" in obj:
                # boxes from the visible piece of each mask; the output masks are drawn once, below
                masks = obj.pop("masks")
                piece = _crop_resized(masks, th, tw, src, nearest=True)
                if tuple(masks.shape[-2:]) == (th, tw):
                    if j not in tight:
                        tight[j] = T.mask_boxes(masks)
                    boxes = _piece_boxes(piece, src, tight[j])
                else:
                    boxes = T.mask_boxes(piece)
                obj["boxes"] = T.shift(boxes.to(obj["boxes"].device), x_lo, y_lo)
                pieces.append((piece, y_lo, x_lo))
            parts.append(obj)
        obj = T.concat(parts)
        if not pieces:
            return canvas, T.finish(obj, oh, ow, min_area=self.min_area, min_side=self.min_side)
        n = obj["boxes"].shape[0]
        obj["masks"] = torch.arange(n, device=obj["boxes"].device)  # stands in for the masks in finish
        obj = T.finish(obj, oh, ow, min_area=self.min_area, min_side=self.min_side, from_masks=False)
        obj["masks"] = _draw(pieces, obj["masks"], oh, ow)
        return canvas, obj


def _crop_resized(x: Tensor, th: int, tw: int, src: tuple, nearest: bool = False) -> Tensor:
    """``x`` resized to ``(th, tw)`` and cut to ``src`` (rows, columns); only the cut part is
    resized when no resize is needed."""
    if tuple(x.shape[-2:]) == (th, tw):
        return x[..., src[0], src[1]]
    return T.resize(x, th, tw, nearest=nearest)[..., src[0], src[1]]


def _piece_boxes(piece: Tensor, src: tuple, tight: Tensor) -> Tensor:
    """``mask_boxes(piece)`` for ``piece = masks[:, src[0], src[1]]``, from the masks' own tight
    boxes ``tight``: an object the cut leaves whole keeps its box (moved), one outside the cut has
    none, and only those the cut crosses are measured on the piece."""
    y0, y1, x0, x1 = src[0].start, src[0].stop, src[1].start, src[1].stop
    tx1, ty1, tx2, ty2 = tight.unbind(1)
    filled = tx2 > tx1
    whole = filled & (tx1 >= x0) & (tx2 <= x1) & (ty1 >= y0) & (ty2 <= y1)
    meets = filled & (tx1 < x1) & (tx2 > x0) & (ty1 < y1) & (ty2 > y0)
    out = torch.where(whole[:, None], tight - tight.new_tensor([x0, y0, x0, y0]), torch.zeros_like(tight))
    cut = meets & ~whole
    if bool(cut.any()):
        out[cut] = T.mask_boxes(piece[cut.to(piece.device)]).to(out.device)
    return out


def _draw(pieces: list, rows: Tensor, oh: int, ow: int) -> Tensor:
    """The ``(len(rows), oh, ow)`` output masks: ``rows[k]`` (increasing) is output object ``k``'s
    index into the concatenated pieces, each ``(piece, y0, x0)`` drawn at row ``y0``, column
    ``x0``; the objects of one piece are consecutive output rows."""
    like = pieces[0][0]
    out = like.new_zeros((rows.shape[0], oh, ow))
    rows = rows.tolist()
    start, at = 0, 0
    for piece, y0, x0 in pieces:
        n = piece.shape[0]
        local = []
        while at + len(local) < len(rows) and rows[at + len(local)] < start + n:
            local.append(rows[at + len(local)] - start)
        ph, pw = piece.shape[-2:]
        if local and ph and pw:
            src = piece if len(local) == n else piece[torch.tensor(local, device=piece.device)]
            out[at:at + len(local), y0:y0 + ph, x0:x0 + pw].copy_(src)
        at += len(local)
        start += n
    return out


def _pair(name, v):
    if v is None:
        return None
    if isinstance(v, int):
        v = (v, v)
    if len(v) != 2 or not all(isinstance(x, int) and x > 0 for x in v):
        raise ValueError(f"{name}: expected a positive int or (h, w), got {v}")
    return (int(v[0]), int(v[1]))
