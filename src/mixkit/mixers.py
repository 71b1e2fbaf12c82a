"""The mixers users hold: MixUp, ZetaMixup, CutMix and FMix.

Every mixer keeps one contract::

    mixer = mixkit.MixUp(alpha=1.0, num_classes=10)      # keyword-only, checked here
    mixed, soft = mixer(inputs, labels)                   # labels: ids (B,) or probabilities (B, C)
    params = mixer.sample(inputs, generator=g)            # every random draw, on inputs' device
    mixed, soft = mixer.apply(inputs, labels, params)     # deterministic replay

``params.lam`` is always the weight of each sample's own (unpermuted) input, as realised: mask
methods report the mask's mean, CutMix the clipped box (with ``correct_lam``). ``soft`` is float
(B, C), non-negative, rows summing to 1, so mixers compose. Shape, dtype, device and memory
format of the inputs are kept; inputs are only written to with ``inplace=True``.

MixUp, CutMix and FMix mix each sample with a partner chosen by ``pairing``: ``"permutation"``
(default, the papers': a random permutation, so about one sample in B is its own partner),
``"roll"`` (torchvision's v2 MixUp/CutMix: sample i with sample i - 1) or ``"flip"`` (timm's
Mixup: sample i with sample B - 1 - i); see ``mixkit.functional.sample_pairing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from .functional import masks, mixing, sampling
from .reprs import init_repr

__all__ = ["MixParams", "Mixer", "MixUp", "ZetaMixup", "CutMix", "FMix"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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


def _mode(value) -> str:
    if value not in ("batch", "elem"):
        raise ValueError(f"mode: expected 'batch' or 'elem', got {value!r}")
    return value


class Mixer:
    """Base class: argument checks, the call contract and the ``p`` draw.

    Subclasses implement ``_sample(inputs, generator)`` and ``_apply(inputs, soft, params)``.
    """

    #: the ranks of inputs accepted, e.g. (2, None) = any (B, *) with at least one feature dim
    _min_ndim = 2
    _max_ndim: int | None = None
    _shape_hint = "(B, *) with at least one dimension after the batch"

    def __init__(self, *, num_classes: int | None = None, p: float = 1.0, inplace: bool = False):
        self.num_classes = _num_classes(num_classes)
        self.p = _probability(p)
        if not isinstance(inplace, bool):
            raise TypeError(f"inplace: expected a bool, got {type(inplace).__name__}")
        self.inplace = inplace

    # -- the contract ------------------------------------------------------------------------
    def __call__(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None):
        return self.apply(inputs, labels, self.sample(inputs, generator=generator))

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None) -> MixParams:
        """Draw every random quantity for a batch shaped like ``inputs`` (not read otherwise).

        Everything is drawn on ``inputs``' device and nothing is read back to the host. A CPU
        ``generator`` drives draws for inputs on any device (for an accelerator through a
        device generator seeded from it); see ``mixkit.functional.sampling.device_generator``.
        When the batch is not mixed (``p``), the parameters are the identity (lam = 1).
        """
        self.check_inputs(inputs)
        return self._sample(inputs, sampling.device_generator(generator, inputs.device))

    def apply(self, inputs: Tensor, labels: Tensor, params: MixParams) -> tuple[Tensor, Tensor]:
        """Mix ``inputs`` and ``labels`` with ``params``; returns ``(mixed, soft_labels)``."""
        self.check_inputs(inputs)
        soft = self.check_labels(inputs, labels)
        if params.lam.shape != (inputs.shape[0],):
            raise ValueError(
                f"params: expected parameters for a batch of {inputs.shape[0]}, "
                f"got lam of shape {tuple(params.lam.shape)}"
            )
        if params.lam.device != inputs.device:
            params = params.to(inputs.device)
        return self._apply(inputs, soft, params)

    # -- checks ------------------------------------------------------------------------------
    def check_inputs(self, inputs: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs: expected a torch.Tensor, got {type(inputs).__name__}")
        if inputs.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                "inputs: expected a floating-point tensor (float16, bfloat16, float32 or float64), "
                f"got {inputs.dtype}; convert images first, e.g. x.float() / 255"
            )
        if inputs.ndim < self._min_ndim or (self._max_ndim is not None and inputs.ndim > self._max_ndim):
            raise ValueError(
                f"inputs: expected {self._shape_hint} for {name}, got shape {tuple(inputs.shape)}"
            )
        if inputs.shape[0] < 1:
            raise ValueError("inputs: expected a batch of at least one sample, got an empty batch")

    def check_labels(self, inputs: Tensor, labels: Tensor) -> Tensor:
        return mixing.to_soft_labels(labels, self.num_classes, batch_size=inputs.shape[0],
                                     device=inputs.device)

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

    def __repr__(self) -> str:
        return init_repr(self)

    # subclasses
    def _sample(self, inputs: Tensor, generator) -> MixParams:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self, inputs: Tensor, soft: Tensor, params: MixParams):  # pragma: no cover
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
                 inplace: bool = False, pairing: str = "permutation"):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace)
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

    def _apply(self, inputs, soft, params):
        mixed = mixing.blend_pairs(inputs, params.index, params.lam, inplace=self.inplace)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)


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
                 p: float = 1.0):
        super().__init__(num_classes=num_classes, p=p)
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

    def _apply(self, inputs, soft, params):
        if params.weights is None or params.weights.shape != (inputs.shape[0],) * 2:
            raise ValueError(
                f"params: expected a ({inputs.shape[0]}, {inputs.shape[0]}) weight matrix, got "
                f"{None if params.weights is None else tuple(params.weights.shape)}"
            )
        return mixing.blend_matrix(inputs, params.weights), mixing.mix_labels_matrix(soft, params.weights)


class _MaskMixer(Mixer):
    """Shared by the masking methods: inputs (B, C, *spatial) with 1 to 3 spatial dims."""

    _min_ndim = 3
    _max_ndim = 5
    _shape_hint = "(B, C, L), (B, C, H, W) or (B, C, D, H, W)"


class CutMix(_MaskMixer):
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
                 pairing: str = "permutation"):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace)
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

    def _apply(self, inputs, soft, params):
        spatial = tuple(inputs.shape[2:])
        if params.boxes is None or params.boxes.shape[1:] != (len(spatial), 2):
            raise ValueError(
                f"params: expected boxes of shape (B or 1, {len(spatial)}, 2), got "
                f"{None if params.boxes is None else tuple(params.boxes.shape)}"
            )
        mixed = mixing.paste_boxes(inputs, params.index, params.boxes, inplace=self.inplace)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)


class FMix(_MaskMixer):
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
                 pairing: str = "permutation"):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace)
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

    def _apply(self, inputs, soft, params):
        spatial = tuple(inputs.shape[2:])
        if params.mask is None or tuple(params.mask.shape[1:]) != spatial:
            raise ValueError(
                f"params: expected a mask of shape (B or 1, {', '.join(map(str, spatial))}), got "
                f"{None if params.mask is None else tuple(params.mask.shape)}"
            )
        mixed = mixing.blend_mask(inputs, params.index, params.mask, inplace=self.inplace)
        if self.reformulate:
            return mixed, soft
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)
