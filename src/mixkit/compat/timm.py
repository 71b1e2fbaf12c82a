"""timm's ``Mixup`` and ``FastCollateMixup``, with timm's arguments and calls, on mixkit's maths.

Change one import line:

```python
# from timm.data import Mixup, FastCollateMixup
from mixkit.compat.timm import Mixup, FastCollateMixup

mixup_fn = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode="batch",
                 label_smoothing=0.1, num_classes=1000)
samples, targets = mixup_fn(samples, targets)       # targets: float (B, num_classes)
```

What matches timm (``tests/test_compat_timm.py`` compares the two statistically in every mode):

- the arguments: ``mixup_alpha``, ``cutmix_alpha``, ``cutmix_minmax``, ``prob``, ``switch_prob``,
  ``mode`` (``"batch"``, ``"pair"``, ``"elem"``), ``correct_lam``, ``label_smoothing``,
  ``num_classes``, ``multi_label``, and the ``mixup_enabled`` switch a training loop turns off;
- pairing by flipping the batch (sample i with sample B - 1 - i); in ``"pair"`` mode both members
  of a pair share one draw; in ``"elem"`` mode each sample draws whether it is mixed (``prob``),
  MixUp or CutMix (``switch_prob``) and its lam;
- CutMix boxes: side ``int(S * sqrt(1 - lam))``, centre uniform over the pixels, clipped, lam
  corrected to the kept area (``correct_lam``); with ``cutmix_minmax`` the box sides are drawn
  uniformly between the two fractions of the image and lam is always the kept area;
- targets: one-hot smoothed to ``1 - eps + eps / C`` and ``eps / C`` (multi-label: towards 0.5),
  then mixed with lam; ``FastCollateMixup`` takes ``(uint8 image, target)`` samples and returns a
  uint8 batch, MixUp values rounded to the nearest integer.

Where mixkit differs, on purpose:

- the input batch is not modified; the mixed batch is a new tensor (timm writes into ``x``);
- randomness comes from a ``torch.Generator`` (``generator=``), not numpy's global state;
- per-sample modes run as batched tensor operations (on the inputs' device), not a Python loop;
- an odd batch is accepted: its middle sample pairs with itself and stays as it is (timm asserts
  an even batch); ``FastCollateMixup``'s ``"half"`` mode (timm's split-augmentation collate) is
  not offered;
- timm's own classes are the bases where timm is installed: ``isinstance(FastCollateMixup(...),
  timm.data.FastCollateMixup)`` holds, so timm's ``PrefetchLoader.mixup_enabled`` (which checks
  exactly that) reads and sets the switch, and ``--mixup-off-epoch`` in timm's training loop stops
  the mixing; likewise for ``Mixup``. Every method called is mixkit's (timm's ``__init__`` is not
  run); without timm the classes stand alone;
- mixkit's other methods can join the switch: ``extra=[mixkit.FMix(...), mixkit.ZetaMixup(...)]``
  with ``extra_prob``: with that probability per batch one of them (uniformly) mixes the batch
  instead of MixUp/CutMix, with this object's targets (``num_classes``, smoothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import default_collate

from ..base import Targets
from ..functional import mixing, sampling
from ..functional.masks import box_keep_mask, boxes_lambda, sample_boxes
from ..reprs import init_repr

__all__ = ["Mixup", "FastCollateMixup"]

_MODES = ("batch", "pair", "elem")


def _timm_base(name: str) -> tuple[type, ...]:
    """``(timm.data.mixup.<name>,)`` where timm imports, else ``()``: timm's loaders test
    ``isinstance(collate_fn, timm.data.FastCollateMixup)``, which mixkit's classes then pass."""
    try:
        from timm.data import mixup as timm_mixup
    except Exception:  # no timm, or one that fails to import: stand alone
        return ()
    base = getattr(timm_mixup, name, None)
    return (base,) if isinstance(base, type) else ()


def _non_negative(name: str, value) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _unit(name: str, value, top_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    if not ok or (top_open and value == 1.0):
        raise ValueError(f"{name}: expected a number in [0, 1{')' if top_open else ']'}, got {value!r}")
    return float(value)


class Mixup(*_timm_base("Mixup")):
    """timm's ``Mixup`` (see the module docstring): ``mixup_fn(x, target) -> (mixed, targets)``.

    ``x``: ``(B, C, H, W)`` float or integer images on any device; ``target``: class ids ``(B,)``
    (or ``(B, num_classes)`` multi-hot rows with ``multi_label=True``). Returns the mixed batch
    (same dtype) and float32 targets ``(B, num_classes)``.
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0, cutmix_minmax=None,
                 prob: float = 1.0, switch_prob: float = 0.5, mode: str = "batch", correct_lam: bool = True,
                 label_smoothing: float = 0.1, num_classes: int = 1000, multi_label: bool = False, *,
                 extra: Sequence = (), extra_prob: float = 0.0, generator: torch.Generator | None = None):
        self.mixup_alpha = _non_negative("mixup_alpha", mixup_alpha)
        self.cutmix_alpha = _non_negative("cutmix_alpha", cutmix_alpha)
        if cutmix_minmax is not None:
            ok = (isinstance(cutmix_minmax, Sequence) and len(cutmix_minmax) == 2
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in cutmix_minmax)
                  and 0.0 < cutmix_minmax[0] < cutmix_minmax[1] <= 1.0)
            if not ok:
                raise ValueError(f"cutmix_minmax: expected None or (min, max) with 0 < min < max <= 1, "
                                 f"got {cutmix_minmax!r}")
            cutmix_minmax = (float(cutmix_minmax[0]), float(cutmix_minmax[1]))
            self.cutmix_alpha = 1.0  # as timm: a min-max box turns CutMix on
        self.cutmix_minmax = cutmix_minmax
        self.mix_prob = _unit("prob", prob)
        self.switch_prob = _unit("switch_prob", switch_prob)
        if mode not in _MODES:
            raise ValueError(f"mode: expected one of {', '.join(map(repr, _MODES))}, got {mode!r}")
        self.mode = mode
        self.correct_lam = bool(correct_lam)
        self.label_smoothing = _unit("label_smoothing", label_smoothing, top_open=True)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.multi_label = bool(multi_label)
        if isinstance(extra, (str, bytes)) or not isinstance(extra, Sequence):
            raise TypeError(f"extra: expected a list of mixkit mixers, got {type(extra).__name__}")
        for m in extra:
            if not isinstance(m, Targets):
                raise TypeError(f"extra: expected mixkit mixers or combinations, got {type(m).__name__}")
        self.extra = list(extra)
        self.extra_prob = _unit("extra_prob", extra_prob)
        if self.extra_prob > 0 and not self.extra:
            raise ValueError(f"extra_prob: expected 0 when no extra mixers are given, got {extra_prob}")
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0 and not (self.extra and self.extra_prob == 1.0):
            raise ValueError("mixup_alpha, cutmix_alpha: expected at least one > 0 (or cutmix_minmax, or "
                             "extra mixers with extra_prob=1), got both 0")
        if generator is not None and not (isinstance(generator, torch.Generator)
                                          and generator.device.type == "cpu"):
            raise ValueError(f"generator: expected None or a CPU torch.Generator, got {generator!r}")
        self.generator = generator
        self.mixup_enabled = True  # set to False to stop mixing (timm's training script does at an epoch)

    def __repr__(self) -> str:
        return init_repr(self, prob=None if self.mix_prob == 1.0 else repr(self.mix_prob), generator=None,
                         extra="[" + ", ".join(map(repr, self.extra)) + "]" if self.extra else None)

    # -- the call ----------------------------------------------------------------------------
    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        soft = self._targets(target, x)
        return self._mix(x, soft)

    def _check(self, x) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[0] < 1:
            raise ValueError(f"x: expected images (B, C, H, W) with B >= 1, got shape {tuple(x.shape)}")
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"x: expected a floating-point or integer tensor, got {x.dtype}")

    def _targets(self, target: Tensor, x: Tensor) -> Tensor:
        if isinstance(target, Tensor) and target.device != x.device:
            target = target.to(x.device)  # timm makes targets where they are; mixkit where x is
        if self.multi_label:
            if not (isinstance(target, Tensor) and target.ndim == 2 and target.shape[1] == self.num_classes):
                got = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
                raise ValueError(f"target: expected multi-hot rows ({x.shape[0]}, {self.num_classes}) with "
                                 f"multi_label=True, got {got}")
        soft = mixing.to_soft_labels(target, self.num_classes, batch_size=x.shape[0], device=x.device,
                                     multilabel=self.multi_label)
        return mixing.smooth_labels(soft, self.label_smoothing, self.multi_label)

    def _mix(self, x: Tensor, soft: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        flip = torch.arange(b - 1, -1, -1, device=x.device)
        if not self.mixup_enabled:
            return x.clone(), soft
        if self.extra and self.extra_prob > 0 and sampling.host_uniform(self.generator) < self.extra_prob:
            k = len(self.extra)
            pick = self.extra[min(int(sampling.host_uniform(self.generator) * k), k - 1)]
            return pick._apply_soft(x, soft, pick.sample(x, generator=self.generator), None, check=False)
        if self.mode == "batch":
            return self._mix_batch(x, soft, flip)
        lam, keep = self._per_sample(x)
        mixed = mixing.blend_mask(x, flip, keep)
        return mixed, mixing.mix_labels_pairs(soft, flip, lam)

    def _kinds(self):
        """(MixUp active, CutMix active)."""
        return self.mixup_alpha > 0, self.cutmix_alpha > 0

    def _mix_batch(self, x: Tensor, soft: Tensor, flip: Tensor):
        """One draw for the batch, made on the host (as timm does), applied with mixkit's blends."""
        g = self.generator
        if self.mix_prob < 1.0 and sampling.host_uniform(g) >= self.mix_prob:
            return x.clone(), soft
        mixup_on, cutmix_on = self._kinds()
        use_cutmix = cutmix_on and (not mixup_on or sampling.host_uniform(g) < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = sampling.sample_beta(alpha, size=1, generator=g)  # CPU, float32 (1,)
        spatial = tuple(x.shape[2:])
        if use_cutmix:
            boxes = self._boxes(lam, spatial, g, torch.device("cpu"))
            if self.correct_lam or self.cutmix_minmax is not None:
                lam = boxes_lambda(boxes, spatial)
            mixed = mixing.paste_boxes(x, flip, boxes.to(x.device))
        else:
            mixed = mixing.blend_pairs(x, flip, lam.to(x.device).expand(x.shape[0]))
        return mixed, mixing.mix_labels_pairs(soft, flip, lam.to(soft.device).expand(x.shape[0]))

    def _per_sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``"elem"`` and ``"pair"``: each sample's (or pair's) draw, as lam ``(B,)`` and a keep
        mask ``(B, H, W)`` (a constant lam for MixUp rows, the box for CutMix rows, 1 if unmixed)."""
        b, dev = x.shape[0], x.device
        spatial = tuple(x.shape[2:])
        n = b if self.mode == "elem" else (b + 1) // 2
        g = sampling.device_generator(self.generator, dev)
        mixup_on, cutmix_on = self._kinds()
        if mixup_on and cutmix_on:
            use_cutmix = torch.rand(n, generator=g, device=dev) < self.switch_prob
        else:
            use_cutmix = torch.full((n,), cutmix_on, dtype=torch.bool, device=dev)
        lam_mix = sampling.sample_beta(self.mixup_alpha or self.cutmix_alpha, size=n, generator=g, device=dev)
        if mixup_on and cutmix_on and self.cutmix_alpha != self.mixup_alpha:
            lam_cut = sampling.sample_beta(self.cutmix_alpha, size=n, generator=g, device=dev)
            lam_mix = torch.where(use_cutmix, lam_cut, lam_mix)
        applied = sampling.sample_bernoulli(self.mix_prob, n, generator=g, device=dev)
        boxes = self._boxes(lam_mix, spatial, g, dev)
        box_lam = boxes_lambda(boxes, spatial)
        cut_lam = box_lam if (self.correct_lam or self.cutmix_minmax is not None) else lam_mix
        lam = torch.where(applied, torch.where(use_cutmix, cut_lam, lam_mix), 1.0)
        cut = (use_cutmix & applied).view(n, *(1,) * len(spatial))
        keep = torch.where(cut, box_keep_mask(boxes, spatial), lam.view(n, *(1,) * len(spatial)))
        if self.mode == "pair":  # rows i and B-1-i share a draw (the middle row of an odd batch: none)
            mirror = n - 1 - torch.arange(b - n, device=dev) - (b % 2)
            lam = torch.cat([lam, lam[mirror]])
            keep = torch.cat([keep, keep[mirror]])
            if b % 2:
                lam[n - 1] = 1.0
                keep[n - 1] = 1.0
        return lam, keep

    def _boxes(self, lam: Tensor, spatial: tuple[int, int], g, device) -> Tensor:
        if self.cutmix_minmax is None:
            return sample_boxes(lam, spatial, generator=g)
        return _minmax_boxes(lam.shape[0], spatial, self.cutmix_minmax, g, device)


def _minmax_boxes(n: int, spatial: tuple[int, int], minmax, g, device) -> Tensor:
    """timm's min-max boxes: each side uniform in ``[int(S * min), int(S * max))`` (at least one
    value), the corner uniform over the positions that keep the box inside; ``(n, 2, 2)``."""
    sides, corners = [], []
    for size in spatial:
        lo = int(size * minmax[0])
        hi = max(int(size * minmax[1]), lo + 1)
        side = lo + torch.floor(torch.rand(n, generator=g, device=device, dtype=torch.float64) * (hi - lo))
        side = side.clamp(max=hi - 1).to(torch.int64)
        span = (size - side + 1).to(torch.float64)
        corner = torch.floor(torch.rand(n, generator=g, device=device, dtype=torch.float64) * span)
        corner = torch.minimum(corner.to(torch.int64), size - side)
        sides.append(side)
        corners.append(corner)
    lo = torch.stack(corners, dim=1)
    return torch.stack([lo, lo + torch.stack(sides, dim=1)], dim=-1)


class FastCollateMixup(Mixup, *_timm_base("FastCollateMixup")):
    """timm's ``FastCollateMixup``: a ``collate_fn`` taking ``(image, target)`` samples, images as
    uint8 ``(C, H, W)`` numpy arrays or tensors, and returning ``(uint8 batch, float targets)``.

    Mixing happens on the collated uint8 batch: CutMix copies exact values and MixUp rounds to the
    nearest integer, as timm's does. Modes ``"batch"``, ``"pair"`` and ``"elem"``.
    """

    def __call__(self, batch, _=None) -> tuple[Tensor, Tensor]:
        if not isinstance(batch, Sequence) or len(batch) == 0:
            got = f"a {type(batch).__name__}" + (" of 0" if isinstance(batch, Sequence) else "")
            raise ValueError(f"batch: expected a non-empty list of (image, target) samples, got {got}")
        first = batch[0]
        if not (isinstance(first, Sequence) and len(first) >= 2):
            raise ValueError(f"batch: expected (image, target) samples, got a {type(first).__name__}")
        images = torch.stack([torch.as_tensor(sample[0]) for sample in batch])
        if images.dtype != torch.uint8:
            raise TypeError(f"batch: expected uint8 images (timm's fast collate), got {images.dtype}")
        target = default_collate([sample[1] for sample in batch])
        self._check(images)
        return self._mix(images, self._targets(target, images))
