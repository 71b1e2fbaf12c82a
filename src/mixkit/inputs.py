"""What a mixer's call accepts: the batch structures and torchvision tensor types it understands.

A mixer (or combination) is called as torchvision's v2 transforms are:

- ``mixer(images, labels)`` -> ``(mixed, soft)``;
- ``mixer(images, labels, *rest)`` -> ``(mixed, soft, *rest)``, the rest passed through;
- ``mixer(batch)`` with ``batch`` a tuple or list ``(images, labels, *rest)`` (what a
  ``DataLoader`` yields) -> the same container type, with images and labels mixed;
- ``mixer(batch)`` with ``batch`` a dict (any mapping) ``{"image": images, "labels": labels,
  ...}`` -> a dict of the same keys, the images and labels replaced by the mixed images and the
  soft rows, every other key passed through (``unpack_dict``). With ``masks=`` the mixed masks
  come back under ``"masks"``.

Which keys of a dict hold what (``labels_getter``, a call keyword as torchvision's v2 ``MixUp``
and ``CutMix`` take it in their constructor): the images are under ``"image"``, ``"images"`` or
``"pixel_values"`` (case-insensitive; else the one ``tv_tensors.Image`` or ``Video`` among the
values). With ``labels_getter="default"`` the labels are found as torchvision's default does:
the key ``"labels"`` (case-insensitive), else the first key containing ``"label"``. A callable
``labels_getter(batch)`` returns the labels tensor itself, which must be one of the batch's
values (found by identity, as torchvision does; it is replaced by the soft rows).

torchvision's ``tv_tensors`` are recognised without importing torchvision (mixkit needs torch
alone): a tensor can only be a ``TVTensor`` when torchvision is already loaded.

- ``tv_tensors.Image`` ``(B, C, H, W)``: mixed as a plain tensor and returned as an ``Image``.
- ``tv_tensors.Video`` ``(B, T, C, H, W)``: returned as a ``Video``. Time is not a spatial axis:
  mask methods (CutMix, FMix) view it as ``(B, T * C, H, W)``, so one box or mask covers every
  frame and channel of a sample.
- ``tv_tensors.Mask``, ``BoundingBoxes`` and ``KeyPoints`` are targets tied to the image
  geometry, not images: they are refused wherever they appear among the images and labels, since
  the mixed images would no longer match them. Segmentation masks go in as dense targets,
  ``mixer(images, labels, masks=seg)`` (``dense_view``), and come back mixed.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping, MutableMapping

import torch
from torch import Tensor

__all__ = ["unpack_call", "unpack_dict", "check_labels_getter", "tv_kind", "Plain", "as_plain", "dense_view"]

# tv_tensors that describe where things are in an image: mixing images leaves them wrong.
_GEOMETRY = ("Mask", "BoundingBoxes", "KeyPoints")


def tv_kind(x) -> str | None:
    """The torchvision tensor type of ``x`` (``"Image"``, ``"Video"``, ``"Mask"``, ...) or None."""
    tv = sys.modules.get("torchvision.tv_tensors")
    if tv is None or not isinstance(x, getattr(tv, "TVTensor", ())):
        return None
    for name in ("Image", "Video", *_GEOMETRY):
        cls = getattr(tv, name, None)
        if cls is not None and isinstance(x, cls):
            return name
    return type(x).__name__


def _refuse_geometry(x, where: str, owner: str) -> None:
    kind = tv_kind(x)
    if kind in _GEOMETRY:          # a ValueError, as torchvision's MixUp/CutMix raise for these
        raise ValueError(
            f"{owner}: expected images and labels, got a tv_tensors.{kind} {where}; masks, boxes and "
            "key points follow the image geometry, and mixing the images would leave them wrong. "
            "Mix image batches with their class labels only"
        )


def unpack_call(args: tuple, owner: str, labels_getter="default") -> tuple[Tensor, Tensor, Callable]:
    """``(images, labels, pack)`` from a mixer's positional arguments; ``pack(mixed, soft)``
    rebuilds the structure that came in. ``labels_getter``: how a dict batch's labels are found
    (see the module docstring)."""
    if len(args) == 1:
        sample = args[0]
        if isinstance(sample, Mapping):
            return unpack_dict(sample, owner, labels_getter)
        if isinstance(sample, (tuple, list)) and len(sample) >= 2:
            images, labels, *rest = sample
            kind = type(sample) if type(sample) in (tuple, list) else (list if isinstance(sample, list)
                                                                      else tuple)
            for item in rest:
                _refuse_geometry(item, "among the passed-through items", owner)
            return images, labels, lambda mixed, soft, *more: kind((mixed, soft, *more, *rest))
        _refuse_geometry(sample, "as the batch", owner)
        sized = isinstance(sample, (tuple, list))
        got = f"a {type(sample).__name__}" + (f" of {len(sample)}" if sized else "")
        raise TypeError(
            f"{owner}: expected (images, labels) or a packed (images, labels) tuple, list or dict, got {got} "
            "alone; the labels are missing"
        )
    if len(args) == 0:
        raise TypeError(f"{owner}: expected (images, labels) or a packed (images, labels) tuple, list "
                        "or dict, got no inputs")
    images, labels, *rest = args
    for item in rest:
        _refuse_geometry(item, "among the passed-through items", owner)
    return images, labels, lambda mixed, soft, *more: (mixed, soft, *more, *rest)


# the keys a dict batch holds its images under (case-insensitive), and what the errors name
IMAGE_KEYS = ("image", "images", "pixel_values")
_LABEL_KEYS = ("labels", "label")


def check_labels_getter(labels_getter):
    """``labels_getter`` if it is ``"default"`` or a callable, else a ValueError."""
    if not (labels_getter == "default" if isinstance(labels_getter, str) else callable(labels_getter)):
        raise ValueError(f"labels_getter: expected 'default' or a callable batch -> labels, "
                         f"got {labels_getter!r}")
    return labels_getter


def _image_key(sample: Mapping):
    for key in sample:
        if isinstance(key, str) and key.lower() in IMAGE_KEYS:
            return key
    typed = [key for key, value in sample.items() if tv_kind(value) in ("Image", "Video")]
    return typed[0] if len(typed) == 1 else None


def _labels_key(sample: Mapping, labels_getter):
    """The key of the labels: torchvision's default heuristic, or the key whose value is what
    ``labels_getter(sample)`` returns."""
    names = [key for key in sample if isinstance(key, str)]
    if labels_getter == "default":
        exact = [key for key in names if key.lower() == "labels"]
        return (exact or [key for key in names if "label" in key.lower()] or [None])[0]
    labels = labels_getter(sample)
    for key, value in sample.items():
        if value is labels:
            return key
    raise ValueError(f"labels_getter: expected it to return one of the batch's values (the labels "
                     f"tensor itself), got a {type(labels).__name__} that is none of the values of keys "
                     f"{sorted(map(str, sample))}")


def unpack_dict(sample: Mapping, owner: str, labels_getter="default") -> tuple[Tensor, Tensor, Callable]:
    """``(images, labels, pack)`` from a dict batch; ``pack(mixed, soft)`` (and the mixed masks,
    stored under ``"masks"``) returns a copy of ``sample`` with those values replaced."""
    check_labels_getter(labels_getter)
    image_key = _image_key(sample)
    labels_key = _labels_key(sample, labels_getter)
    if image_key is None or labels_key is None or labels_key == image_key:
        labels = f"a labels key {_LABEL_KEYS}" if labels_getter == "default" else \
            "the labels that labels_getter returns"
        raise ValueError(f"batch: expected a dict with an image key {IMAGE_KEYS} and {labels} for "
                         f"{owner}, got keys {sorted(map(str, sample))}")
    for key, item in sample.items():
        if key not in (image_key, labels_key):
            _refuse_geometry(item, f"under the passed-through key {key!r}", owner)

    def pack(mixed, soft, *more):
        out = copy.copy(sample) if isinstance(sample, MutableMapping) else dict(sample)
        out[image_key], out[labels_key] = mixed, soft
        if more:
            out["masks"] = more[0]
        return out

    return sample[image_key], sample[labels_key], pack


class Plain:
    """A plain-tensor view of a mixer's inputs and the way back to their type.

    ``tensor``: what the maths sees. ``restore(out)``: ``out`` (shaped like ``tensor``) in the
    inputs' shape and torchvision type. ``copy_back(out)``: for in-place mixing through a view
    that had to be copied (a non-contiguous Video), writes the result into the original.
    """

    __slots__ = ("tensor", "_like", "_shape", "_view")

    def __init__(self, tensor: Tensor, like=None, shape=None, view: bool = True):
        self.tensor = tensor
        self._like = like
        self._shape = shape
        self._view = view

    def restore(self, out: Tensor, inplace: bool = False):
        if self._like is None:
            return out
        if self._shape is not None:
            out = out.reshape(self._shape)
        if inplace and not self._view:
            self._like.as_subclass(Tensor).copy_(out)
            return self._like
        if inplace:
            return self._like
        tv = sys.modules["torchvision.tv_tensors"]  # loaded already: the inputs are its type
        return tv.wrap(out, like=self._like)


def as_plain(inputs, owner: str, video_as_frames: bool) -> Plain:
    """``inputs`` as a plain tensor. ``video_as_frames``: a ``(B, T, C, H, W)`` Video becomes
    ``(B, T * C, H, W)`` (mask methods: one mask through all frames and channels)."""
    if type(inputs) is Tensor:  # the common case, without looking for torchvision
        return Plain(inputs)
    kind = tv_kind(inputs)
    if kind is None:
        return Plain(inputs)
    if kind == "Image":
        return Plain(inputs.as_subclass(Tensor), like=inputs)
    if kind == "Video":
        plain = inputs.as_subclass(Tensor)
        if not video_as_frames:
            return Plain(plain, like=inputs)
        if plain.ndim != 5:
            raise ValueError(f"inputs: expected a batched tv_tensors.Video (B, T, C, H, W) for {owner}, "
                             f"got shape {tuple(plain.shape)}")
        frames = plain.reshape(plain.shape[0], -1, *plain.shape[3:])
        # reshape copies only a non-contiguous video; a copy never shares the first element's address
        return Plain(frames, like=inputs, shape=plain.shape, view=frames.data_ptr() == plain.data_ptr())
    _refuse_geometry(inputs, "as the images", owner)
    return Plain(inputs.as_subclass(Tensor), like=inputs)


def dense_view(masks, images: Tensor) -> Plain:
    """Dense targets for ``images`` (plain, ``(B, C, *spatial)``): class maps ``(B, *spatial)``
    (integer) or probability maps ``(B, K, *spatial)`` (float); a ``tv_tensors.Mask`` comes back
    as one where the mixed maps keep its shape and dtype (pasting), else as a plain tensor."""
    if not isinstance(masks, Tensor):
        raise TypeError(f"masks: expected a tensor or tv_tensors.Mask, got {type(masks).__name__}")
    kind = tv_kind(masks)
    if kind not in (None, "Mask"):
        raise ValueError(f"masks: expected class or probability maps (a tensor or tv_tensors.Mask), "
                        f"got a tv_tensors.{kind}")
    plain = masks if kind is None else masks.as_subclass(Tensor)
    b, spatial = images.shape[0], tuple(images.shape[2:])
    classes = plain.ndim == 1 + len(spatial) and not plain.is_floating_point()
    probabilities = plain.ndim == 2 + len(spatial) and plain.is_floating_point()
    if plain.dtype == torch.bool or not (classes or probabilities) or plain.shape[0] != b \
            or tuple(plain.shape[-len(spatial):]) != spatial:
        shape = ", ".join(map(str, spatial))
        raise ValueError(f"masks: expected class maps ({b}, {shape}) of integers or probability maps "
                         f"({b}, K, {shape}) of floats, got {plain.dtype} of shape {tuple(plain.shape)}")
    if plain.device != images.device:
        raise ValueError(f"masks: expected a tensor on the images' device ({images.device}), got one on "
                         f"{plain.device}")
    return _DenseView(plain, masks if kind == "Mask" else None)


class _DenseView(Plain):
    __slots__ = ()

    def __init__(self, tensor: Tensor, like):
        super().__init__(tensor, like=like)

    def restore(self, out: Tensor, inplace: bool = False):
        like = self._like
        if like is None or out.shape != like.shape or out.dtype != like.dtype:
            return out
        return sys.modules["torchvision.tv_tensors"].wrap(out, like=like)
