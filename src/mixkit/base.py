"""What every mixer shares: the call forms, labels as targets, the ``p`` draw, input checks, and
the few shapes a method takes (any ``(B, *)`` input, or 1-D to 3-D spatial data that is pasted
by boxes or by a keep mask).

A method subclasses one of these and implements ``_sample(inputs, generator) -> MixParams``,
``_mix(inputs, soft, params) -> (mixed, soft)`` and ``_mix_dense(masks, params)`` on plain
tensors; the base turns torchvision types into plain tensors and back, checks, and encodes ``p``
in the parameters (``_where_applied``), so no branch depends on a random draw.

Traits are class attributes that tests, the registry and the consumers read instead of names:

- ``pairwise``: each sample is mixed with one partner, ``params.index``;
- ``regional``: each output element comes from one sample, by a keep mask (``keep_mask``);
- ``spatial_dims``: the spatial ranks taken (None: any ``(B, *)`` input);
- ``modes``: the values ``mode`` takes (``()``: no ``mode`` option);
- ``needs_masks``: ``sample`` draws from the segmentation (``masks=`` required);
- ``supports_inplace``: the constructor takes ``inplace``;

and on instances ``interpolates``: whether mixed values are weighted sums (rounded for
integers) rather than copies, which decides how dense targets are mixed.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from . import checks
from .functional import execution, mixing, sampling
from .functional import masks as fmasks
from .functional.execution import finite_on_host
from .inputs import as_plain, dense_view, unpack_call
from .params import MixParams, check_params, declare_field, expect_tensor, expect_values
from .reprs import init_repr

__all__ = ["Targets", "Mixer", "SpatialMixer", "BoxMixer", "MaskMixer"]



def _check_mask(value, inputs, params):
    spatial = tuple(inputs.shape[2:])
    if not (isinstance(value, Tensor) and value.ndim == len(spatial) + 1
            and value.shape[0] in (1, inputs.shape[0]) and tuple(value.shape[1:]) == spatial):
        expect_tensor("mask", value, shape=(inputs.shape[0], *spatial))
    expect_tensor("mask", value)
    expect_values("mask", (value >= 0) & (value <= 1), "values in [0, 1]", value)


def _check_boxes(value, inputs, params):
    spatial = tuple(inputs.shape[2:])
    if not (isinstance(value, Tensor) and value.ndim == 3 and value.shape[0] in (1, inputs.shape[0])
            and tuple(value.shape[1:]) == (len(spatial), 2)):
        expect_tensor("boxes", value, shape=(inputs.shape[0], len(spatial), 2), kind="int")
    expect_tensor("boxes", value, kind="int")
    sizes = torch.tensor(spatial, device=value.device)
    lo, hi = value[..., 0], value[..., 1]
    expect_values("boxes", (lo >= 0) & (lo <= hi) & (hi <= sizes), f"[lo, hi) inside {spatial}", value)


declare_field("mask", "(B or 1, *spatial) float32 keep mask, 1 where the own sample shows (mask methods)",
              _check_mask)
declare_field("boxes", "(B or 1, d, 2) int64 [lo, hi) boxes pasted from the partner (box methods)",
              _check_boxes)

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


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

    def forward(self, *batch, generator: torch.Generator | None = None, masks=None, labels_getter="default"):
        """``mixer(images, labels)``, ``mixer(images, labels, *rest)``, ``mixer((images, labels,
        *rest))`` (a tuple or list) or ``mixer({"image": images, "labels": labels, ...})`` (a dict):
        the same structure back, images mixed, labels as soft rows, the rest passed through.
        With ``masks=`` (dense targets, see ``apply``) the mixed masks follow the labels:
        ``(mixed, soft, mixed_masks, *rest)`` (a dict: under ``"masks"``). ``labels_getter``:
        where a dict's labels are, ``"default"`` (the key ``"labels"`` or ``"label"``, as
        torchvision's v2 MixUp finds them) or a callable ``batch -> labels`` (``mixkit.inputs``)."""
        images, labels, pack = unpack_call(batch, type(self).__name__, labels_getter)
        # sample checked the inputs; the parameters were drawn here: they need no replay checks
        params = self.sample(images, generator=generator, masks=masks)
        return pack(*self._apply_soft(images, self.targets(images, labels), params, masks, check=False))

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

    def apply_soft(self, inputs, soft: Tensor | None, params, *, masks=None):
        """``apply`` with labels already made into target rows (``targets``): float ``(B, C)``,
        or None. ``params`` are checked against the inputs (the shape they were drawn for, the
        type and range of every field)."""
        return self._apply_soft(inputs, soft, params, masks, check=True)

    def _apply_soft(self, inputs, soft, params, masks, check: bool):  # pragma: no cover - abstract
        """``apply_soft``; ``check=False`` for parameters just drawn by ``sample`` (the call)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return init_repr(self)


class Mixer(Targets):
    """Base class of the input mixers: argument checks, the call contract and the ``p`` draw.

    Subclasses implement ``_sample(inputs, generator)``, ``_mix(inputs, soft, params)`` and
    ``_mix_dense(masks, params)`` on plain tensors (see the module docstring). Mixers are
    ``nn.Module``s without parameters or buffers: they move, print and nest in module trees, and
    behave the same in ``train()`` and ``eval()`` (as torchvision's transforms do).
    """

    # traits (see the module docstring)
    pairwise = True
    regional = False
    spatial_dims: tuple[int, ...] | None = None
    modes: tuple[str, ...] = ("batch", "elem")
    needs_masks = False
    supports_inplace = True
    #: the ranks of inputs accepted, and how to say so
    _min_ndim = 2
    _max_ndim: int | None = None
    _shape_hint = "(B, *) with at least one dimension after the batch"
    #: mask methods view a Video's frames as channels: one mask through time
    _video_as_frames = False

    def __init__(self, *, num_classes: int | None = None, p: float = 1.0, inplace: bool = False,
                 label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__()
        self.num_classes = checks.num_classes(num_classes)
        self.p = checks.probability(p)
        self.inplace = checks.flag("inplace", inplace)
        self.label_smoothing = checks.smoothing(label_smoothing)
        self.multilabel = checks.flag("multilabel", multilabel)

    @property
    def interpolates(self) -> bool:
        """Whether mixed values are weighted sums (rounded for integers) rather than copies."""
        return True

    @property
    def dense_blends(self) -> bool:
        """Whether dense targets are blended (class maps become probability maps) rather than
        copied pixel for pixel (class maps stay class maps)."""
        return self.interpolates

    @property
    def mixes_labels(self) -> bool:
        """Whether the partners' labels are mixed in (False: each sample keeps its own label)."""
        return True

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
        if self.needs_masks and masks is None:
            raise ValueError(f"masks: expected the segmentation of the batch for {type(self).__name__} "
                             "(class maps (B, *spatial) or probability maps (B, K, *spatial)), got None")
        host = sampling.host_draws_from(generator, plain.device)
        generator = sampling.device_generator(generator, plain.device)
        if host is sampling.ON_DEVICE:  # (and under torch.compile, which does not trace ContextVar.reset)
            params = self._draw(plain, generator, masks)
        else:
            with sampling.host_draws(host):
                params = self._draw(plain, generator, masks)
        params.__dict__["shape"] = plain.shape  # (a torch.Size: a tuple)
        return params

    def _apply_soft(self, inputs: Tensor, soft: Tensor | None, params: MixParams, masks, check: bool):
        view = self._plain(inputs)
        plain = view.tensor
        self.check_inputs(plain)
        dense = None if masks is None else dense_view(masks, plain)
        labelled = soft is not None
        if not labelled:  # segmentation only: mix a column of ones and drop it
            soft = torch.ones(plain.shape[0], 1, device=plain.device)
        self._check_apply(plain, soft, params)
        if check:
            check_params(params, plain, spatial=self.spatial_dims is not None)
        if params.lam.device != plain.device:
            params = params.to(plain.device)
        restore = self._keep_unmixed(plain, params) if self.interpolates else None
        mixed, soft = self._mix(plain, soft, params)
        if restore is not None:
            mixed = restore(mixed)
        out = (view.restore(mixed, inplace=self.inplace), soft if labelled else None)
        if dense is None:
            return out
        return (*out, dense.restore(self._mix_dense(dense.tensor, params)))

    def _keep_unmixed(self, plain: Tensor, params: MixParams):
        """How the rows that are not mixed come out as they came, whatever their partners hold:
        a blend gives those partners weight 0, and 0 * inf is NaN. Returns None where nothing
        needs doing, else ``restore(mixed) -> mixed``; called before the mix (in place, the
        rows' values are gone after it). Copies (boxes, binary masks) never need it.

        On the host: the rows with lam = 1 (unmixed by ``p``, or a drawn lam of exactly 1) that
        ``_unmixed`` confirms, only for a batch holding a non-finite value (a host read of lam,
        then one sum); their values are saved before the mix and put back after it, in place or
        not. On accelerators (nothing is read back): the rows ``p`` leaves unmixed, by a select
        (in place, after a copy of the batch); a drawn lam of exactly 1 with ``p`` = 1 is blended
        there, so such a row takes NaN from a non-finite partner (README, "Non-finite inputs")."""
        if not plain.is_floating_point():
            return None
        if execution.host_readable(plain):
            if params.lam.max().item() < 1.0 or finite_on_host(plain):  # (lam <= 1: checked or drawn)
                return None
            rows = params.lam == 1
            index = self._unmixed(params, rows, tuple(plain.shape[2:])).nonzero().flatten()
            saved = plain.index_select(0, index)
            return lambda mixed: mixed.index_copy_(0, index, saved)
        if self.p >= 1.0:
            return None
        rows = params.applied.view((-1,) + (1,) * (plain.ndim - 1))
        if not self.inplace:
            return lambda mixed: torch.where(rows, mixed, plain)
        original = plain.clone()
        return lambda mixed: mixed.copy_(torch.where(rows, mixed, original))

    def _unmixed(self, params: MixParams, rows: Tensor, spatial: tuple[int, ...]) -> Tensor:
        """Of the rows with lam = 1 (``rows``, bool (B,)), those the mix leaves exactly as they
        are (every partner weight 0); a method whose lam is a rounded mean of finer weights
        narrows them (a keep mask of all ones, a weight row of the identity); ``spatial``:
        the inputs' trailing shape."""
        return rows

    def _check_apply(self, plain: Tensor, soft, params) -> None:
        if not (isinstance(soft, Tensor) and soft.ndim == 2 and soft.is_floating_point()
                and soft.shape[0] == plain.shape[0]):
            got = (f"{soft.dtype} of shape {tuple(soft.shape)}" if isinstance(soft, Tensor)
                   else type(soft).__name__)
            raise ValueError(f"soft: expected float target rows ({plain.shape[0]}, C), got {got}")
        if self.inplace and mixing.is_integer(plain) and self.interpolates:
            raise ValueError(
                f"inplace: expected inplace=False for {plain.dtype} inputs: {type(self).__name__} "
                f"interpolates, and rounded values cannot be written into the input exactly; got inplace=True"
            )
        if self.inplace and _may_overlap(plain):
            raise ValueError(f"inplace: expected inputs whose elements each have their own memory, got a "
                             f"tensor whose elements share memory (strides {plain.stride()}, shape "
                             f"{tuple(plain.shape)}: expanded or self-overlapping); pass inputs.contiguous() "
                             "or use inplace=False")
        if not isinstance(params, MixParams):
            raise TypeError(f"params: expected MixParams from {type(self).__name__}.sample(inputs), "
                            f"got {type(params).__name__}")
        if params.lam.shape != (plain.shape[0],):
            raise ValueError(
                f"params: expected parameters for a batch of {plain.shape[0]}, "
                f"got lam of shape {tuple(params.lam.shape)}"
            )

    def _check_call(self, inputs) -> None:
        self.check_inputs(self._plain(inputs).tensor)

    def _plain(self, inputs):
        return as_plain(inputs, type(self).__name__, self._video_as_frames)

    def check_inputs(self, inputs: Tensor) -> None:
        """Raise a clear error unless ``inputs`` is a batch this mixer takes."""
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

    # -- the shared start of sampling -------------------------------------------------------
    def _start(self, inputs: Tensor, generator, count: int | None = None):
        """``(b, device, spatial, count, applied)``: the batch size, device, trailing shape, how
        many draws (1 per batch or 1 per sample, from ``mode``, unless given) and the ``p`` draw,
        the first draw of every method."""
        b, dev = inputs.shape[0], inputs.device
        if count is None:
            count = 1 if self.mode == "batch" else b
        return b, dev, tuple(inputs.shape[2:]), count, self._draw_applied(count, b, generator, dev)

    def _draw(self, plain: Tensor, generator, masks) -> MixParams:
        if not self.needs_masks:
            return self._sample(plain, generator)
        return self._sample_from_masks(plain, generator, dense_view(masks, plain).tensor)

    def _host_draws(self, count: int, generator, device) -> tuple[bool, torch.Generator | None]:
        """``(True, generator)`` when ``count`` draws (one: a batch-level lam, a box for the
        batch) are made on the host as Python numbers from that CPU generator (None: torch's
        default); else ``(False, None)`` (``functional.sampling.host_draw``)."""
        return sampling.host_draw(count, generator, device)

    def _draw_applied(self, count: int, batch: int, generator, device) -> Tensor:
        """Which samples get mixed: one draw for the batch (count=1) or one per sample."""
        if self.p >= 1.0:  # the same read-only tensor each call (stride 0: writing to it raises)
            return execution.host_cached(_all_applied, batch, torch.device(device))
        applied = sampling.sample_bernoulli(self.p, count, generator=generator, device=device)
        return applied.expand(batch).contiguous() if count == 1 else applied

    def _where_applied(self, applied: Tensor, value: Tensor, identity) -> Tensor:
        """``value`` where the batch (or sample) is mixed, else ``identity``: the parameters that
        leave it unchanged (lam = 1, an empty box, an all-ones mask, the identity matrix). The one
        place ``p`` acts: unmixed samples go through the same arithmetic, so no branch depends on
        a random draw (nothing is read back from the device). ``identity`` may be a function
        that makes it, called only when ``p`` < 1 (an identity matrix is worth not building)."""
        if self.p >= 1.0:
            return value
        if callable(identity):
            identity = identity()
        return torch.where(applied.view(applied.shape + (1,) * (value.ndim - applied.ndim)), value, identity)

    # -- what a method implements -------------------------------------------------------------
    def _sample(self, inputs: Tensor, generator) -> MixParams:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample_from_masks(self, inputs: Tensor, generator, masks: Tensor) -> MixParams:  # pragma: no cover
        raise NotImplementedError

    def _mix(self, inputs: Tensor, soft: Tensor, params: MixParams):  # pragma: no cover - abstract
        raise NotImplementedError

    def _mix_dense(self, masks: Tensor, params: MixParams) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@functools.lru_cache(maxsize=32)
def _all_applied(batch: int, device: torch.device) -> Tensor:
    """``applied`` where every sample is mixed (p = 1): True expanded to ``(batch,)``."""
    return torch.ones((), dtype=torch.bool, device=device).expand(batch)


def _may_overlap(t: Tensor) -> bool:
    """Whether two elements of ``t`` may share memory: with its dims sorted by stride, each
    stride must pass the span of the smaller ones (true of every slice, permutation and
    channels-last layout; an expanded or ``as_strided`` overlapping view fails it)."""
    if t.is_contiguous():  # the common case, without the Python walk over the strides
        return False
    span = 0
    for stride, size in sorted((abs(st), n) for st, n in zip(t.stride(), t.shape, strict=True) if n > 1):
        if stride <= span:
            return True
        span += stride * (size - 1)
    return False


class SpatialMixer(Mixer):
    """Methods on 1-D to 3-D spatial data ``(B, C, *spatial)`` whose output takes each element
    from one sample (``regional``): ``keep_mask(params, spatial)`` says which."""

    regional = True
    spatial_dims = (1, 2, 3)
    _min_ndim = 3
    _max_ndim = 5
    _shape_hint = "(B, C, L), (B, C, H, W) or (B, C, D, H, W)"
    _video_as_frames = True

    def keep_mask(self, params: MixParams, spatial: tuple[int, ...]) -> Tensor:  # pragma: no cover
        """The float keep mask ``(B or 1, *spatial)``: 1 where the own sample shows."""
        raise NotImplementedError

    def _unmixed(self, params, rows, spatial):
        return rows & (self.keep_mask(params, spatial) == 1).flatten(1).all(1)


def check_boxes(params: MixParams, dims: int) -> None:
    """Box methods' parameters: int boxes ``(B or 1, dims, 2)``."""
    if params.boxes is None or params.boxes.shape[1:] != (dims, 2):
        raise ValueError(f"params: expected boxes of shape (B or 1, {dims}, 2), got "
                         f"{None if params.boxes is None else tuple(params.boxes.shape)}")


class BoxMixer(SpatialMixer):
    """Methods that paste a box of the partner (``params.boxes``): CutMix, SaliencyMix."""

    @property
    def interpolates(self) -> bool:
        return False  # boxes copy values

    def keep_mask(self, params, spatial):
        return fmasks.box_keep_mask(params.boxes, spatial, dtype=torch.bool).float()

    def _mix(self, inputs, soft, params):
        check_boxes(params, inputs.ndim - 2)
        mixed = mixing.paste_boxes(inputs, params.index, params.boxes, inplace=self.inplace)
        return mixed, mixing.mix_labels_pairs(soft, params.index, params.lam)

    def _mix_dense(self, masks, params):
        spatial = tuple(masks.shape[-params.boxes.shape[1]:])
        keep = fmasks.box_keep_mask(params.boxes.to(masks.device), spatial, dtype=torch.bool)
        return mixing.paste_dense(masks, params.index.to(masks.device), keep)


class MaskMixer(SpatialMixer):
    """Methods whose parameters are a keep mask ``params.mask`` (FMix, GridMix, SmoothMix,
    ClassMix): ``mixed = M x + (1 - M) x[index]``. Binary masks paste (values and dense targets
    copied), soft ones blend (dense targets become probability maps)."""

    def _binary(self) -> bool:
        return True

    @property
    def interpolates(self) -> bool:
        return not self._binary()

    def keep_mask(self, params, spatial):
        return params.mask.float()

    def _mix(self, inputs, soft, params):
        spatial = tuple(inputs.shape[2:])
        if params.mask is None or tuple(params.mask.shape[1:]) != spatial:
            raise ValueError(
                f"params: expected a mask of shape (B or 1, {', '.join(map(str, spatial))}), got "
                f"{None if params.mask is None else tuple(params.mask.shape)}"
            )
        # p = 1: every row is mixed, so the one-sum finiteness check of an exact copy is skipped
        # on the CPU (a kept pixel may then take NaN from a non-finite partner; README).
        mixed = mixing.blend_mask(inputs, params.index, params.mask, inplace=self.inplace,
                                  binary=self._binary(), exact=self.p < 1.0)
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
