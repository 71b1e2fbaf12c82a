"""The mixers users hold: MixUp, ZetaMixup, CutMix, FMix, ResizeMix, SaliencyMix, GridMix, SmoothMix
and ClassMix.

Every mixer is an ``nn.Module`` and keeps one contract::

    mixer = mixkit.MixUp(alpha=1.0, num_classes=10)      # keyword-only, checked here
    mixed, soft = mixer(inputs, labels)                   # labels: ids (B,) or probabilities (B, C)
    mixed, soft = mixer((inputs, labels))                 # a packed batch, as torchvision's v2 takes
    params = mixer.sample(inputs, generator=g)            # every random draw, on inputs' device
    mixed, soft = mixer.apply(inputs, labels, params)     # deterministic replay

``params.lam`` is always the weight of each sample's own (unpermuted) input, as realised: mask
methods report the mask's mean, CutMix the clipped box (with ``correct_lam``). ``soft`` is float
(B, C), non-negative, rows summing to 1, so mixers compose. Shape, dtype, device and memory
format of the inputs are kept; inputs are only written to with ``inplace=True``. torchvision's
``tv_tensors.Image`` and ``Video`` keep their type (see ``mixkit.inputs``).

Options every mixer takes:

- ``num_classes``: needed when labels come as class ids.
- ``label_smoothing`` eps: targets become ``onehot * (1 - eps) + eps / C`` before mixing (timm's
  order: smooth, then mix); rows still sum to 1. Multi-hot rows are smoothed towards 0.5 per
  class. Combinations smooth once, not once per part.
- ``multilabel=True``: labels may be multi-hot rows ``(B, C)`` (values in [0, 1], any number of
  classes on); they are mixed as they are, never renormalised. Train on them with
  ``mixkit.soft_target_binary_cross_entropy``.
- Integer images (uint8, ...) are mixed in their dtype: mask methods copy exact values, blends
  (MixUp, zeta-mixup, soft FMix edges) round to the nearest integer; those cannot be written in
  place (``inplace=True`` is refused for them).

MixUp, CutMix and FMix mix each sample with a partner chosen by ``pairing``: ``"permutation"``
(default, the papers': a random permutation, so about one sample in B is its own partner),
``"roll"`` (torchvision's v2 MixUp/CutMix: sample i with sample i - 1) or ``"flip"`` (timm's
Mixup: sample i with sample B - 1 - i); see ``mixkit.functional.sample_pairing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from .functional import masks, mixing, saliency, sampling
from .inputs import as_plain, dense_view, unpack_call
from .reprs import init_repr

__all__ = ["MixParams", "Targets", "Mixer", "MixUp", "ZetaMixup", "CutMix", "FMix", "ResizeMix",
           "SaliencyMix", "GridMix", "SmoothMix", "ClassMix"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass
class MixParams:
    """Everything random about one mixing call; ``apply`` replays it exactly.

    lam:      (B,) float32, realised weight of each sample's own input.
    index:    (B,) int64, the partner of each sample (pairing methods), else None.
    weights:  (B, B) float32, zeta-mixup's weight matrix (row p mixes into sample p), else None.
    mask:     (B, *spatial) or (1, *spatial) float32 keep mask (FMix), else None.
    boxes:    (B, d, 2) or (1, d, 2) int64 ``[lo, hi)`` pasted boxes (CutMix), else None.
    applied:  (B,) bool, which samples were mixed (the ``p`` draw).
    """

    lam: Tensor
    applied: Tensor
    index: Tensor | None = None
    weights: Tensor | None = None
    mask: Tensor | None = None
    boxes: Tensor | None = None

    def to(self, device) -> MixParams:
        """The same parameters on another device."""
        return MixParams(
            **{f.name: (None if (v := getattr(self, f.name)) is None else v.to(device)) for f in fields(self)}
        )


# ---------------------------------------------------------------------------------------------
# Argument checks shared by all mixers (errors name what was expected and what came).


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number > 0, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number > 0, got {value}")
    return float(value)


def _probability(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"p: expected a probability in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"p: expected a probability in [0, 1], got {value}")
    return float(value)


def _num_classes(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"num_classes: expected None or an integer >= 1, got {value!r}")
    return value


def _pairing(value) -> str:
    if value not in sampling.PAIRINGS:
        raise ValueError(f"pairing: expected one of {', '.join(repr(k) for k in sampling.PAIRINGS)}, "
                         f"got {value!r}")
    return value


def _smoothing(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"label_smoothing: expected a number in [0, 1), got {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1), got {value}")
    return float(value)


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def _mode(value) -> str:
    if value not in ("batch", "elem"):
        raise ValueError(f"mode: expected 'batch' or 'elem', got {value!r}")
    return value


class Targets(nn.Module):
    """What mixers and combinations share: the call forms and how labels become targets.

    ``targets(inputs, labels)`` makes the float ``(B, C)`` rows that get mixed (one-hot or given
    probabilities, multi-hot with ``multilabel``, then ``label_smoothing``). ``apply`` is
    ``apply_soft`` on those rows; combinations call their parts' ``apply_soft``, so labels are
    converted and smoothed once per call however deep the nesting.
    """

    num_classes: int | None
    label_smoothing: float
    multilabel: bool

    def forward(self, *batch, generator: torch.Generator | None = None, masks=None):
        """``mixer(images, labels)``, ``mixer(images, labels, *rest)`` or ``mixer((images, labels,
        *rest))`` (a tuple or list): the same structure back, images mixed, labels as soft rows.
        With ``masks=`` (dense targets, see ``apply``) the mixed masks follow the labels:
        ``(mixed, soft, mixed_masks, *rest)``."""
        images, labels, pack = unpack_call(batch, type(self).__name__)
        params = self.sample(images, generator=generator, masks=masks)
        if masks is None:
            return pack(*self.apply(images, labels, params))
        return pack(*self.apply(images, labels, params, masks=masks))

    def targets(self, inputs: Tensor, labels: Tensor | None) -> Tensor | None:
        """Labels as the float ``(B, C)`` rows that get mixed (see the class docstring); None
        stays None (segmentation-only use, with ``masks=``)."""
        if not isinstance(inputs, Tensor) or inputs.ndim == 0:
            got = "a scalar tensor" if isinstance(inputs, Tensor) else type(inputs).__name__
            raise TypeError(f"inputs: expected a batch tensor (B, ...), got {got}")
        if labels is None:
            return None
        soft = mixing.to_soft_labels(labels, self.num_classes, batch_size=inputs.shape[0],
                                     device=inputs.device, multilabel=self.multilabel)
        return mixing.smooth_labels(soft, self.label_smoothing, self.multilabel)

    def apply(self, inputs, labels=None, params=None, *, masks=None):
        """Mix ``inputs`` and ``labels`` with ``params`` (from ``sample``); returns ``(mixed, soft)``.

        ``masks``: dense targets that follow the images, pixel for pixel: class maps ``(B,
        *spatial)`` (integer) or probability maps ``(B, C, *spatial)`` (float), ``spatial`` the
        images' trailing shape; a ``tv_tensors.Mask`` is accepted. Then the result is ``(mixed,
        soft, mixed_masks)``. Methods that paste (CutMix, hard FMix, ...) copy each mask pixel from
        the sample its image pixel came from, keeping class maps as class maps; methods that blend
        (MixUp, zeta-mixup, soft FMix edges) return probability maps (class maps need
        ``num_classes``). ``labels`` may be None (soft is then None).

        Called with a single function, as ``nn.Module.apply(fn)`` is when a model tree holding
        this mixer is walked (``model.apply(init_weights)``), it does that instead.
        """
        if labels is None and params is None and callable(inputs) and not isinstance(inputs, Tensor):
            return nn.Module.apply(self, inputs)
        if params is None:
            raise TypeError(f"params: expected the parameters from {type(self).__name__}.sample(inputs), "
                            "got None")
        self._check_call(inputs)
        return self.apply_soft(inputs, self.targets(inputs, labels), params, masks=masks)

    def _check_call(self, inputs) -> None:
        """Checks of the inputs that come before the labels' (their errors are the clearer)."""

    def apply_soft(self, inputs, soft: Tensor | None, params, *, masks=None):  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return init_repr(self)


class Mixer(Targets):
    """Base class of the input mixers: argument checks, the call contract and the ``p`` draw.

    Subclasses implement ``_sample(inputs, generator)`` and ``_mix(inputs, soft, params)`` on
    plain tensors; this class turns torchvision types into plain tensors and back, and checks.
    Mixers are ``nn.Module``s without parameters or buffers: they move, print and nest in module
    trees, and behave the same in ``train()`` and ``eval()`` (as torchvision's transforms do).
    """

    #: the ranks of inputs accepted, e.g. (2, None) = any (B, *) with at least one feature dim
    _min_ndim = 2
    _max_ndim: int | None = None
    _shape_hint = "(B, *) with at least one dimension after the batch"
    #: mask methods view a Video's frames as channels: one mask through time
    _video_as_frames = False
    #: whether ``sample`` draws from the segmentation (ClassMix)
    _needs_masks = False

    def __init__(self, *, num_classes: int | None = None, p: float = 1.0, inplace: bool = False,
                 label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.p = _probability(p)
        self.inplace = _flag("inplace", inplace)
        self.label_smoothing = _smoothing(label_smoothing)
        self.multilabel = _flag("multilabel", multilabel)

    # -- the contract ------------------------------------------------------------------------
    def sample(self, inputs: Tensor, generator: torch.Generator | None = None, *, masks=None) -> MixParams:
        """Draw every random quantity for a batch shaped like ``inputs``.

        Everything is drawn on ``inputs``' device and nothing is read back to the host. A CPU
        ``generator`` drives draws for inputs on any device (for an accelerator through a
        device generator seeded from it); see ``mixkit.functional.sampling.device_generator``.
        When the batch is not mixed (``p``), the parameters are the identity (lam = 1). Most
        mixers read only the shape of ``inputs``; SaliencyMix reads the images (its boxes follow
        their saliency) and ClassMix the segmentation ``masks`` (required there, ignored elsewhere).
        """
        plain = self._plain(inputs).tensor
        self.check_inputs(plain)
        generator = sampling.device_generator(generator, plain.device)
        if not self._needs_masks:
            return self._sample(plain, generator)
        if masks is None:
            raise ValueError(f"masks: expected the segmentation of the batch for {type(self).__name__} "
                             "(class maps (B, *spatial) or probability maps (B, K, *spatial)), got None")
        return self._sample_from_masks(plain, generator, dense_view(masks, plain).tensor)

    def apply_soft(self, inputs: Tensor, soft: Tensor | None, params: MixParams, *, masks=None):
        """``apply`` with labels already made into target rows (``targets``): float ``(B, C)``,
        or None."""
        view = self._plain(inputs)
        plain = view.tensor
        self.check_inputs(plain)
        dense = None if masks is None else dense_view(masks, plain)
        labelled = soft is not None
        if not labelled:  # segmentation only: mix a column of ones and drop it
            soft = torch.ones(plain.shape[0], 1, device=plain.device)
        if not (isinstance(soft, Tensor) and soft.ndim == 2 and soft.is_floating_point()
                and soft.shape[0] == plain.shape[0]):
            got = (f"{soft.dtype} of shape {tuple(soft.shape)}" if isinstance(soft, Tensor)
                   else type(soft).__name__)
            raise ValueError(f"soft: expected float target rows ({plain.shape[0]}, C), got {got}")
        if self.inplace and mixing.is_integer(plain) and self._interpolates():
            raise ValueError(
                f"inplace: expected inplace=False for {plain.dtype} inputs: {type(self).__name__} "
                f"interpolates, and rounded values cannot be written into the input exactly; got inplace=True"
            )
        if params.lam.shape != (plain.shape[0],):
            raise ValueError(
                f"params: expected parameters for a batch of {plain.shape[0]}, "
                f"got lam of shape {tuple(params.lam.shape)}"
            )
        if params.lam.device != plain.device:
            params = params.to(plain.device)
        mixed, soft = self._mix(plain, soft, params)
        out = (view.restore(mixed, inplace=self.inplace), soft if labelled else None)
        if dense is None:
            return out
        return (*out, dense.restore(self._mix_dense(dense.tensor, params)))

    def _mix_dense(self, masks: Tensor, params: MixParams) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_call(self, inputs) -> None:
        self.check_inputs(self._plain(inputs).tensor)

    def _plain(self, inputs):
        return as_plain(inputs, type(self).__name__, self._video_as_frames)

    def _interpolates(self) -> bool:
        """Whether mixed values are weighted sums (rounded for integers) rather than copies."""
        return True

    # -- checks ------------------------------------------------------------------------------
    def check_inputs(self, inputs: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs: expected a torch.Tensor, got {type(inputs).__name__}")
        if inputs.dtype not in _FLOAT_DTYPES and inputs.dtype not in _INT_DTYPES:
            raise TypeError(
                "inputs: expected a floating-point or integer tensor (float16, bfloat16, float32, "
                f"float64, uint8, int8, int16, int32 or int64), got {inputs.dtype}"
            )
        if inputs.ndim < self._min_ndim or (self._max_ndim is not None and inputs.ndim > self._max_ndim):
            raise ValueError(
                f"inputs: expected {self._shape_hint} for {name}, got shape {tuple(inputs.shape)}"
            )
        if inputs.shape[0] < 1:
            raise ValueError("inputs: expected a batch of at least one sample, got an empty batch")

    def _draw_applied(self, count: int, batch: int, generator, device) -> Tensor:
        """Which samples get mixed: one draw for the batch (count=1) or one per sample."""
        if self.p >= 1.0:
            return torch.ones(batch, dtype=torch.bool, device=device)
        applied = sampling.sample_bernoulli(self.p, count, generator=generator, device=device)
        return applied.expand(batch).contiguous() if count == 1 else applied

    def _where_applied(self, applied: Tensor, value: Tensor, identity) -> Tensor:
        """``value`` where the batch (or sample) is mixed, else ``identity``: the parameters that
        leave it unchanged (lam = 1, an empty box, an all-ones mask, the identity matrix). The one
        place ``p`` acts: unmixed samples go through the same arithmetic, so no branch depends on
        a random draw (nothing is read back from the device)."""
        if self.p >= 1.0:
            return value
        return torch.where(applied.view(applied.shape + (1,) * (value.ndim - applied.ndim)), value, identity)

    # subclasses
    def _sample(self, inputs: Tensor, generator) -> MixParams:  # pragma: no cover - abstract
        raise NotImplementedError

    def _mix(self, inputs: Tensor, soft: Tensor, params: MixParams):  # pragma: no cover
        raise NotImplementedError

    def _sample_from_masks(self, inputs: Tensor, generator, masks: Tensor) -> MixParams:  # pragma: no cover
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------


class MixUp(Mixer):
    """mixup (Zhang et al., ICLR 2018, arXiv 1710.09412).

    ``x = lam * x_i + (1 - lam) * x_j``, ``y = lam * y_i + (1 - lam) * y_j`` with
    lam ~ Beta(alpha, alpha) and j a random permutation of the batch. ``mode="batch"`` draws one
    lam per batch, ``mode="elem"`` one per sample. ``p`` is the chance that the batch
    (``"batch"``) or each sample (``"elem"``) is mixed at all. Works on any ``(B, *)`` input.

    Example::

        >>> import torch, mixkit
        >>> mix = mixkit.MixUp(alpha=1.0, num_classes=10)
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> mixed, soft = mix(x, y, generator=torch.Generator().manual_seed(0))
        >>> mixed.shape, soft.shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 10]))
    """

    def __init__(self, *, alpha: float = 1.0, num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = _positive("alpha", alpha)
        self.mode = _mode(mode)
        self.pairing = _pairing(pairing)

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev).expand(b)
        lam = self._where_applied(applied, lam, 1.0)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam, applied=applied, index=index)

    def _mix(self, inputs, soft, params):
        mixed = mixing.blend_pairs(inputs, params.index, params.lam, inplace=self.inplace)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        return mixing.blend_pairs(mixing.probability_maps(masks, self.num_classes), params.index, params.lam)


class ZetaMixup(Mixer):
    """zeta-mixup (Abhishek, Brown, Hamarneh; arXiv 2204.03323, J. Big Data 2024).

    Each synthetic sample is a convex combination of N samples:
    ``x_hat_p = sum_i W[p, i] x_i`` and ``y_hat_p = sum_i W[p, i] y_i``, where row p of W holds
    the p-series ``k^-gamma / C_N(gamma)`` (k = 1..N; ``C_N`` the N-truncated Riemann zeta) with
    rank 1 on sample p itself and the other ranks on a random arrangement of N - 1 other samples.
    For gamma >= 1.7286 the own sample outweighs all others together. ``n_mix=None`` uses
    N = batch size, as the paper does; mixup is the case N = 2 with gamma = log2(lam / (1 - lam)).
    ``p`` is the chance that the batch is mixed. Any ``(B, *)`` input (points, signals, images,
    volumes).

    Example::

        >>> import torch, mixkit
        >>> zeta = mixkit.ZetaMixup(gamma=2.8, num_classes=10)
        >>> mixed, soft = zeta(torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,)))
        >>> bool(torch.allclose(soft.sum(1), torch.ones(16)))
        True
    """

    def __init__(self, *, gamma: float = 2.8, num_classes=None, n_mix: int | None = None,
                 p: float = 1.0, label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, label_smoothing=label_smoothing, multilabel=multilabel)
        self.gamma = _positive("gamma", gamma)
        if n_mix is not None and (isinstance(n_mix, bool) or not isinstance(n_mix, int) or n_mix < 1):
            raise ValueError(f"n_mix: expected None or an integer >= 1, got {n_mix!r}")
        self.n_mix = n_mix

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        applied = self._draw_applied(1, b, generator, dev)
        weights, _ = sampling.zeta_weight_matrix(b, self.gamma, self.n_mix, generator=generator, device=dev)
        weights = self._where_applied(applied[:1], weights, torch.eye(b, device=dev))
        return MixParams(lam=weights.diagonal().clone(), applied=applied, weights=weights)

    def _mix(self, inputs, soft, params):
        if params.weights is None or params.weights.shape != (inputs.shape[0],) * 2:
            raise ValueError(
                f"params: expected a ({inputs.shape[0]}, {inputs.shape[0]}) weight matrix, got "
                f"{None if params.weights is None else tuple(params.weights.shape)}"
            )
        return mixing.blend_matrix(inputs, params.weights), mixing.mix_labels_matrix(soft, params.weights)

    def _mix_dense(self, masks, params):
        return mixing.blend_matrix(mixing.probability_maps(masks, self.num_classes), params.weights)


class _MaskMixer(Mixer):
    """Shared by the masking methods: inputs (B, C, *spatial) with 1 to 3 spatial dims."""

    _min_ndim = 3
    _max_ndim = 5
    _shape_hint = "(B, C, L), (B, C, H, W) or (B, C, D, H, W)"
    _video_as_frames = True


class _BoxPaste(_MaskMixer):
    """Methods that paste a box of the partner (``params.boxes``): CutMix, SaliencyMix."""

    def _interpolates(self) -> bool:
        return False  # boxes copy values

    def _mix(self, inputs, soft, params):
        _check_boxes(params, inputs.ndim - 2)
        mixed = mixing.paste_boxes(inputs, params.index, params.boxes, inplace=self.inplace)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        spatial = tuple(masks.shape[-params.boxes.shape[1]:])
        keep = masks_keep(params.boxes, spatial, masks.device)
        return mixing.paste_dense(masks, params.index.to(masks.device), keep)


class _KeepMask(_MaskMixer):
    """Methods whose parameters are a keep mask ``params.mask`` (FMix, GridMix, SmoothMix,
    ClassMix): ``mixed = M x + (1 - M) x[index]``. Binary masks paste (values and dense targets
    copied), soft ones blend (dense targets become probability maps)."""

    def _binary(self) -> bool:
        return True

    def _interpolates(self) -> bool:
        return not self._binary()

    def _mix(self, inputs, soft, params):
        spatial = tuple(inputs.shape[2:])
        if params.mask is None or tuple(params.mask.shape[1:]) != spatial:
            raise ValueError(
                f"params: expected a mask of shape (B or 1, {', '.join(map(str, spatial))}), got "
                f"{None if params.mask is None else tuple(params.mask.shape)}"
            )
        mixed = mixing.blend_mask(inputs, params.index, params.mask, inplace=self.inplace,
                                  binary=self._binary())
        return mixed, self._mix_labels(soft, params)

    def _mix_labels(self, soft, params):
        return mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        index = params.index.to(masks.device)
        if self._binary():
            return mixing.paste_dense(masks, index, params.mask.to(masks.device) > 0.5)
        return mixing.blend_mask(mixing.probability_maps(masks, self.num_classes), index, params.mask)

    def _finish(self, keep: Tensor, count: int, b: int, applied: Tensor, index: Tensor) -> MixParams:
        """Parameters from keep masks ``(count, *spatial)``: unmixed samples get an all-ones mask,
        lam is each mask's mean."""
        keep = self._where_applied(applied[:count], keep.to(torch.float32), 1.0)
        lam = keep.reshape(count, -1).mean(dim=1, dtype=torch.float64).to(torch.float32)
        return MixParams(lam=lam.expand(b), applied=applied, index=index, mask=keep)


class CutMix(_BoxPaste):
    """CutMix (Yun et al., ICCV 2019, arXiv 1905.04899), for 1-D, 2-D and 3-D data.

    A box (interval, rectangle or cuboid) of volume fraction ``1 - lam``, lam ~ Beta(alpha,
    alpha), with a uniformly random centre, is pasted from the partner sample. Boxes are clipped
    at the borders; with ``correct_lam=True`` lam becomes the fraction actually kept,
    ``1 - box volume / volume``. ``mode="elem"`` draws a box per sample (batched, no Python loop).

    Example::

        >>> import torch, mixkit
        >>> cut = mixkit.CutMix(alpha=1.0, num_classes=10, mode="elem")
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> params = cut.sample(x, generator=torch.Generator().manual_seed(0))
        >>> mixed, soft = cut.apply(x, y, params)
        >>> params.boxes.shape      # (B, spatial dims, [lo, hi))
        torch.Size([8, 2, 2])
    """

    def __init__(self, *, alpha: float = 1.0, num_classes=None, mode: str = "batch",
                 correct_lam: bool = True, p: float = 1.0, inplace: bool = False,
                 pairing: str = "permutation", label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = _positive("alpha", alpha)
        self.mode = _mode(mode)
        self.pairing = _pairing(pairing)
        self.correct_lam = bool(correct_lam)

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        spatial = tuple(inputs.shape[2:])
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        boxes = masks.sample_boxes(lam, spatial, generator=generator)
        boxes = self._where_applied(applied[:count], boxes, 0)
        lam = self._where_applied(applied[:count], lam, 1.0)
        if self.correct_lam:
            lam = masks.boxes_lambda(boxes, spatial)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam.expand(b), applied=applied, index=index,
                         boxes=boxes)


class FMix(_KeepMask):
    """FMix (Harris et al. 2020, arXiv 2002.12047), for 1-D, 2-D and 3-D data.

    A keep mask is made by sampling a complex Gaussian spectrum on the input's trailing shape,
    scaling frequency f by ``1 / max(|f|, 1/max(shape))^decay_power``, taking the inverse FFT
    and setting the top ``lam * n`` values to 1 (lam ~ Beta(alpha, alpha)); the mask mean equals
    lam to within one element and ``params.lam`` is that mean. ``max_soft`` > 0 replaces the hard
    edge by a linear ramp. ``reformulate=True`` draws lam ~ Beta(alpha + 1, alpha) and keeps only
    each sample's own label (the paper's reformulated objective). ``mode="elem"`` makes one mask
    per sample, batched on the inputs' device. ``spectrum="official"`` reproduces the upstream
    code's stripe-shaped masks (see ``mixkit.functional.masks.fourier_noise``).

    Example::

        >>> import torch, mixkit
        >>> fmix = mixkit.FMix(alpha=1.0, decay_power=3.0, num_classes=10, mode="elem")
        >>> x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
        >>> params = fmix.sample(x, generator=torch.Generator().manual_seed(0))
        >>> bool(((params.mask.mean((1, 2)) - params.lam).abs() <= 1 / 784 + 1e-6).all())
        True
    """

    def __init__(self, *, alpha: float = 1.0, decay_power: float = 3.0, num_classes=None,
                 max_soft: float = 0.0, reformulate: bool = False, mode: str = "batch",
                 p: float = 1.0, spectrum: str = "paper", inplace: bool = False,
                 pairing: str = "permutation", label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.pairing = _pairing(pairing)
        self.alpha = _positive("alpha", alpha)
        self.decay_power = _positive("decay_power", decay_power)
        if isinstance(max_soft, bool) or not isinstance(max_soft, (int, float)) or not 0 <= max_soft <= 0.5:
            raise ValueError(f"max_soft: expected a number in [0, 0.5], got {max_soft!r}")
        self.max_soft = float(max_soft)
        self.reformulate = bool(reformulate)
        self.mode = _mode(mode)
        if spectrum not in ("paper", "official"):
            raise ValueError(f"spectrum: expected 'paper' or 'official', got {spectrum!r}")
        self.spectrum = spectrum

    def _binary(self) -> bool:
        return self.max_soft == 0  # hard masks copy values; soft edges blend them

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        spatial = tuple(inputs.shape[2:])
        if self.spectrum == "official" and spatial[0] < 2:
            raise ValueError(f"inputs: expected a first spatial size >= 2 for spectrum='official', "
                             f"got shape {tuple(inputs.shape)}")
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        a, c = (self.alpha + 1.0, self.alpha) if self.reformulate else (self.alpha, self.alpha)
        lam = sampling.sample_beta(a, c, size=count, generator=generator, device=dev)
        mask = masks.fourier_masks(lam, spatial, self.decay_power, max_soft=self.max_soft,
                               generator=generator, spectrum=self.spectrum)
        mask = self._where_applied(applied[:count], mask, 1.0)
        lam = mask.reshape(count, -1).mean(dim=1, dtype=torch.float64).to(torch.float32)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam.expand(b), applied=applied, index=index,
                         mask=mask)

    def _mix_labels(self, soft, params):
        if self.reformulate:
            return soft
        return mixing.mix_labels_pairs(soft, params.index, params.lam)


class ResizeMix(_MaskMixer):
    """ResizeMix (Qin et al. 2020, arXiv 2012.11101), for 1-D, 2-D and 3-D data.

    The partner is not cut but shrunk whole: resized by a scale rate ``tau ~ U(scale)`` (the
    paper's ``(0.1, 0.8)``) to a box of side ``max(1, floor(S_d * tau))`` on every axis, placed
    uniformly where it fits, and pasted. The partner's label weight is the box's share of the
    volume, so ``lam = 1 - prod(side) / prod(S)`` (realised, after flooring). ``mode="elem"``
    draws a scale and a place per sample (one ``grid_sample`` for the batch). ``resample``:
    ``"linear"`` (bi-/trilinear) or ``"nearest"``. Dense targets are resampled by nearest
    neighbour, so each mask pixel follows its image pixel.

    Example::

        >>> import torch, mixkit
        >>> rm = mixkit.ResizeMix(scale=(0.1, 0.8), num_classes=10, mode="elem")
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> params = rm.sample(x, generator=torch.Generator().manual_seed(0))
        >>> mixed, soft = rm.apply(x, y, params)
        >>> bool(((params.lam > 0.3) & (params.lam < 1.0)).all())    # tau <= 0.8 -> lam >= 0.36
        True
    """

    def __init__(self, *, scale: tuple[float, float] = (0.1, 0.8), num_classes=None, mode: str = "batch",
                 resample: str = "linear", p: float = 1.0, pairing: str = "permutation",
                 label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, label_smoothing=label_smoothing, multilabel=multilabel)
        ok = (isinstance(scale, (tuple, list)) and len(scale) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale)
              and 0.0 < scale[0] <= scale[1] <= 1.0)
        if not ok:
            raise ValueError(f"scale: expected (low, high) with 0 < low <= high <= 1, got {scale!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.mode = _mode(mode)
        if resample not in ("linear", "nearest"):
            raise ValueError(f"resample: expected 'linear' or 'nearest', got {resample!r}")
        self.resample = resample
        self.pairing = _pairing(pairing)

    def _interpolates(self) -> bool:
        return self.resample == "linear"

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        spatial = tuple(inputs.shape[2:])
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        lo, hi = self.scale
        tau = lo + (hi - lo) * sampling.sample_uniform(count, generator=generator, device=dev)
        tau = self._where_applied(applied[:count], tau, 0.0)
        boxes = masks.sample_resize_boxes(tau, spatial, generator=generator)
        lam = masks.boxes_lambda(boxes, spatial)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=lam.expand(b), applied=applied, index=index, boxes=boxes)

    def _mix(self, inputs, soft, params):
        _check_boxes(params, inputs.ndim - 2)
        mixed = mixing.paste_resized(inputs, params.index, params.boxes, mode=self.resample)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        # nearest neighbour: each mask pixel takes the class of the partner pixel its image
        # pixel was resampled around (class maps stay class maps)
        classes = masks.ndim == params.boxes.shape[1] + 1
        work = masks.unsqueeze(1) if classes else masks
        out = mixing.paste_resized(work, params.index.to(masks.device), params.boxes, mode="nearest")
        return out.squeeze(1) if classes else out


class SaliencyMix(_BoxPaste):
    """SaliencyMix (Uddin et al., ICLR 2021, arXiv 2006.01791), for 1-D, 2-D and 3-D data.

    CutMix with the box placed where the partner is most salient: lam ~ Beta(alpha, alpha), a box
    of side ``floor(S_k (1 - lam)^(1/d))`` per axis centred on the peak of the partner's
    spectral-residual saliency (``[c - side // 2, c + side // 2)``, clipped, as the paper's code
    cuts it) is pasted from the partner; lam is the realised kept share. The saliency is computed
    in torch on the inputs' device (``mixkit.functional.saliency``), so ``sample`` reads the
    images, not only their shape. ``mode="batch"`` uses one box for the batch, placed on the
    saliency of sample 0's partner (the paper's code); ``mode="elem"`` one box per sample on its
    own partner's saliency.

    Example::

        >>> import torch, mixkit
        >>> sal = mixkit.SaliencyMix(alpha=1.0, num_classes=10, mode="elem")
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> mixed, soft = sal(x, y, generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, *, alpha: float = 1.0, num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = _positive("alpha", alpha)
        self.mode = _mode(mode)
        self.pairing = _pairing(pairing)

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        spatial = tuple(inputs.shape[2:])
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        centre = saliency.saliency_peaks(inputs[index[:count]])
        boxes = self._where_applied(applied[:count], masks.centred_boxes(lam, centre, spatial), 0)
        return MixParams(lam=masks.boxes_lambda(boxes, spatial).expand(b), applied=applied, index=index,
                         boxes=boxes)


class GridMix(_KeepMask):
    """GridMix (Baek et al., Pattern Recognition 2021), for 1-D, 2-D and 3-D data.

    The partner shows through a regular grid of holes inside a crop of the image (the hole-grid
    construction of OpenMixup's ``gridmix``): lam ~ Beta(alpha, alpha); a crop of ``area`` of the
    image with height / width ``aspect``, placed uniformly; ``holes`` cells across its width
    (cells ``hole_aspect`` times as high as wide); in each cell a hole of ``(1 - lam)^(1/d)`` of
    the cell's side per axis. Ranges ``(low, high)`` are drawn uniformly per batch (``"elem"``: per
    sample), ``holes`` as an integer in ``[low, high]``. ``params.mask`` is the keep mask,
    ``params.lam`` its mean. See ``mixkit.functional.masks.grid_keep_masks`` for the exact
    geometry. (The paper's patch-level label loss is a training objective, not part of the mix.)

    Example::

        >>> import torch, mixkit
        >>> grid = mixkit.GridMix(alpha=1.0, holes=(2, 6), num_classes=10, mode="elem")
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> params = grid.sample(x, generator=torch.Generator().manual_seed(0))
        >>> bool((params.mask.mean((1, 2)) == params.lam).all())
        True
    """

    def __init__(self, *, alpha: float = 1.0, holes=(2, 6), hole_aspect=1.0, area=(0.5, 1.0),
                 aspect=(0.5, 2.0), num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = _positive("alpha", alpha)
        self.holes = _span("holes", holes, 1, None, integer=True)
        self.hole_aspect = _span("hole_aspect", hole_aspect, 0, None)
        self.area = _span("area", area, 0, 1.0)
        self.aspect = _span("aspect", aspect, 0, None)
        self.mode = _mode(mode)
        self.pairing = _pairing(pairing)

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        spatial = tuple(inputs.shape[2:])
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        draws = sampling.sample_uniform((count, 4 + len(spatial)), generator=generator, device=dev,
                                        dtype=torch.float64)
        lo, hi = _bounds(self.holes)
        holes = (lo + draws[:, 0] * (hi - lo + 1)).floor().clamp_max(hi)
        keep = masks.grid_keep_masks(
            lam, spatial, holes=holes, hole_aspect=_within(self.hole_aspect, draws[:, 1]),
            area=_within(self.area, draws[:, 2]), aspect=_within(self.aspect, draws[:, 3]),
            place=draws[:, 4:])
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return self._finish(keep, count, b, applied, index)


class SmoothMix(_KeepMask):
    """SmoothMix (Lee et al., CVPR Workshops 2020), for 1-D, 2-D and 3-D data.

    A smooth-edged blob of the partner: ``mixed = (1 - G) x + G x[index]`` with the Gaussian
    ``G(p) = exp(-sum_k (p_k - c_k)^2 / (2 (sigma S_k)^2))``, its centre ``c`` a uniformly drawn
    element, ``sigma ~ U(sigma)`` (the paper's ``(0.25, 0.5)`` of the image's side). lam is the
    realised kept share ``1 - mean(G)`` (mixing the labels by the mask's area, as the paper does).
    ``params.mask`` is the soft keep mask ``1 - G``; integer images are blended in float and
    rounded; dense targets become probability maps.

    Example::

        >>> import torch, mixkit
        >>> smooth = mixkit.SmoothMix(num_classes=10, mode="elem")
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> mixed, soft = smooth(x, y, generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, *, sigma=(0.25, 0.5), num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.sigma = _span("sigma", sigma, 0, None)
        self.mode = _mode(mode)
        self.pairing = _pairing(pairing)

    def _binary(self) -> bool:
        return False

    def _sample(self, inputs, generator):
        b, dev = inputs.shape[0], inputs.device
        spatial = tuple(inputs.shape[2:])
        count = 1 if self.mode == "batch" else b
        applied = self._draw_applied(count, b, generator, dev)
        draws = sampling.sample_uniform((count, 1 + len(spatial)), generator=generator, device=dev,
                                        dtype=torch.float64)
        centre = torch.stack([(draws[:, 1 + k] * n).floor().clamp_max(n - 1)
                              for k, n in enumerate(spatial)], dim=1)
        keep = masks.gaussian_keep_masks(centre, _within(self.sigma, draws[:, 0]), spatial)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return self._finish(keep, count, b, applied, index)


class ClassMix(_KeepMask):
    """ClassMix (Olsson et al., WACV 2021, arXiv 2007.07936): segmentation-aware mixing.

    For each image A, half of the classes present in its segmentation (``ceil(n / 2)`` of the n
    present, drawn uniformly) are cut out along their pixels and pasted onto the image B that
    takes A as its partner: ``mixed_B = M_A A + (1 - M_A) B``, the segmentation mixed the same
    way, so each mask pixel follows its image pixel exactly. Labels (if given) are mixed by area,
    ``lam`` the share B keeps. The segmentation is required, at ``sample`` too::

        mixed, soft, seg_mixed = classmix(images, labels, masks=seg)   # labels may be None
        params = classmix.sample(images, generator=g, masks=seg)

    ``masks``: class maps ``(B, *spatial)`` (integers; ``num_classes`` needed) or probability maps
    ``(B, K, *spatial)`` (their argmax is used to choose, the maps themselves are pasted).
    ``ignore_index`` (e.g. 255) is never chosen, so unlabelled pixels stay with their image. ``p``
    is the chance that each sample is mixed. 1-D, 2-D and 3-D.

    Example::

        >>> import torch, mixkit
        >>> cm = mixkit.ClassMix(num_classes=5)
        >>> x, seg = torch.rand(4, 3, 16, 16), torch.randint(0, 5, (4, 16, 16))
        >>> mixed, _, seg_mixed = cm(x, None, masks=seg, generator=torch.Generator().manual_seed(0))
        >>> seg_mixed.shape, seg_mixed.dtype
        (torch.Size([4, 16, 16]), torch.int64)
    """

    _needs_masks = True

    def __init__(self, *, num_classes=None, ignore_index: int | None = None, p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"ignore_index: expected None or an int, got {type(ignore_index).__name__}")
        self.ignore_index = ignore_index
        self.pairing = _pairing(pairing)

    def _sample(self, inputs, generator):  # pragma: no cover - sample() routes to _sample_from_masks
        raise ValueError("masks: expected the segmentation for ClassMix, got None")

    def _sample_from_masks(self, inputs, generator, dense):
        b, dev = inputs.shape[0], inputs.device
        if dense.is_floating_point():
            classes, maps = dense.shape[1], dense.argmax(dim=1)
        else:
            if self.num_classes is None:
                raise ValueError("num_classes: expected the number of classes for ClassMix with class maps "
                                 "(or give probability maps (B, K, *spatial)), got None")
            classes, maps = self.num_classes, dense
            valid = maps if self.ignore_index is None else torch.where(maps == self.ignore_index, 0, maps)
            mixing.check_class_ids(valid.reshape(-1), classes, what="masks")
        applied = self._draw_applied(b, b, generator, dev)
        scores = sampling.sample_uniform((b, classes), generator=generator, device=dev)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        chosen = masks.class_paste_masks(maps, classes, scores, self.ignore_index)
        return self._finish(~chosen[index], b, b, applied, index)


def _span(name: str, value, low: float, high: float | None, integer: bool = False) -> tuple:
    """A number or a ``(low, high)`` range in ``(low, high]`` (``[low, high]`` of ints when
    ``integer``), checked; a range comes back as a tuple, a number as a number."""
    one, kind = ("an integer", "integers") if integer else ("a number", "numbers")
    bound = f">= {low}" if integer else f"> {low}"
    if high is not None:
        bound += f" and <= {high}"

    def ok(v):
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return False
        return (v >= low if integer else v > low) and (high is None or v <= high) and math.isfinite(v)

    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(ok(v) for v in pair) or pair[0] > pair[1]:
        raise ValueError(f"{name}: expected {one} or a (low, high) range of {kind} {bound}, got {value!r}")
    cast = int if integer else float
    return (cast(pair[0]), cast(pair[1])) if isinstance(value, (tuple, list)) else cast(value)


def _bounds(span) -> tuple:
    """A number or a range as ``(low, high)``."""
    return tuple(span) if isinstance(span, tuple) else (span, span)


def _within(span, u: Tensor) -> Tensor:
    """``u`` in [0, 1) mapped onto ``span`` (a number or a range)."""
    lo, hi = _bounds(span)
    return lo + (hi - lo) * u


def _check_boxes(params: MixParams, dims: int) -> None:
    """Box methods' parameters: int boxes ``(B or 1, dims, 2)``."""
    if params.boxes is None or params.boxes.shape[1:] != (dims, 2):
        raise ValueError(f"params: expected boxes of shape (B or 1, {dims}, 2), got "
                         f"{None if params.boxes is None else tuple(params.boxes.shape)}")


def masks_keep(boxes: Tensor, spatial: tuple[int, ...], device) -> Tensor:
    """CutMix's boxes as a boolean keep mask ``(B|1, *spatial)`` on ``device``."""
    return masks.box_keep_mask(boxes.to(device), spatial, dtype=torch.bool)
