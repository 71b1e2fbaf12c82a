"""Combining mixers: one of several per batch, in turn, or in sequence.

- ``RandomChoice([...], p=None)``: one mixer per batch, chosen at random (weights ``p``).
- ``Alternate([...])``: the mixers in turn, one per call, as FMix's MixUp+FMix trainer does.
- ``Compose([...])``: all mixers in sequence, soft labels flowing through (CutMix + zeta-mixup).

Each keeps the mixer contract: ``sample`` draws everything (``ComposedParams``) and ``apply``
replays it. Each is an ``nn.Module`` called as a mixer is (``(images, labels)`` or packed). Labels
become targets once, by the combination: ``num_classes``, ``label_smoothing`` and ``multilabel``
are taken from the parts when they agree (or given to the combination), and the parts mix the
rows they are handed (``apply_soft``), so a ``Compose`` of smoothing mixers smooths once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import get_worker_info

from . import checks
from .base import Targets
from .functional import mixing, sampling
from .params import MixParams
from .reprs import init_repr

__all__ = ["ComposedParams", "RandomChoice", "Alternate", "Compose"]


@dataclass
class ComposedParams:
    """``choice``: index of the mixer used (RandomChoice, Alternate) or None (Compose);
    ``parts``: the parameters of each mixer applied, in order."""

    choice: int | None
    parts: list[MixParams]


def _agreed(mixers, name: str, given, default):
    """``given``, or the one value the parts hold for ``name`` (``default`` when none sets it;
    parts left at the default do not count)."""
    if given is not None:
        return given
    found = {getattr(m, name) for m in mixers if getattr(m, name, default) != default}
    if len(found) > 1:
        raise ValueError(f"{name}: expected one value across mixers, got {sorted(found)}; "
                         f"pass {name}=... to the combination")
    return found.pop() if found else default


def _check_composed(params, count: int, one: bool) -> None:
    """A combination's parameters: ``ComposedParams`` with a valid choice (one of) or one part per
    mixer (Compose)."""
    if not isinstance(params, ComposedParams):
        raise TypeError(f"params: expected ComposedParams from the combination's sample(inputs), got "
                        f"{type(params).__name__}")
    if one:
        choice = params.choice
        if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < count:
            raise ValueError(f"params: expected a choice in [0, {count - 1}], got {choice!r}")
        if len(params.parts) != 1:
            raise ValueError(f"params: expected the chosen mixer's parameters (1 part), "
                             f"got {len(params.parts)}")
    elif len(params.parts) != count:
        raise ValueError(f"params: expected {count} parts, got {len(params.parts)}")


def _check_tensor(inputs) -> None:
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs: expected a torch.Tensor, got {type(inputs).__name__}")


class _Combination(Targets):
    def __init__(self, mixers: Sequence, num_classes: int | None = None, label_smoothing: float | None = None,
                 multilabel: bool | None = None):
        super().__init__()
        if isinstance(mixers, (str, bytes)) or not isinstance(mixers, Sequence) or len(mixers) == 0:
            raise ValueError(f"mixers: expected a non-empty list of mixers, got {mixers!r}")
        for m in mixers:
            if not (callable(getattr(m, "sample", None)) and callable(getattr(m, "apply_soft", None))):
                raise TypeError(f"mixers: expected mixkit mixers or combinations (with sample() and "
                                f"apply_soft()), got {type(m).__name__}")
        self.mixers = nn.ModuleList(mixers)
        self.num_classes = checks.num_classes(_agreed(mixers, "num_classes", num_classes, None))
        self.label_smoothing = checks.smoothing(_agreed(mixers, "label_smoothing", label_smoothing, 0.0))
        self.multilabel = checks.flag("multilabel", _agreed(mixers, "multilabel", multilabel, False))

    # traits, from the parts (see ``mixkit.base``)
    @property
    def pairwise(self) -> bool:
        return all(getattr(m, "pairwise", False) for m in self.mixers)

    @property
    def regional(self) -> bool:
        return all(getattr(m, "regional", False) for m in self.mixers)

    @property
    def spatial_dims(self) -> tuple[int, ...] | None:
        """The spatial ranks every part takes (None: any ``(B, *)`` input)."""
        found = None
        for m in self.mixers:
            dims = getattr(m, "spatial_dims", None)
            if dims is not None:
                found = tuple(d for d in dims if found is None or d in found)
        return found

    @property
    def needs_masks(self) -> bool:
        return any(getattr(m, "needs_masks", False) for m in self.mixers)

    @property
    def interpolates(self) -> bool:
        return any(getattr(m, "interpolates", True) for m in self.mixers)

    @property
    def dense_blends(self) -> bool:
        return any(getattr(m, "dense_blends", True) for m in self.mixers)

    def _dense_for(self, part, masks):
        """Class maps handed to a blending part that lacks ``num_classes`` become probability maps
        with the combination's (the combination's classes are the parts' classes)."""
        if (masks is None or masks.is_floating_point() or getattr(part, "num_classes", 0) is not None
                or isinstance(part, _Combination) or not getattr(part, "interpolates", False)):
            return masks
        plain = masks if type(masks) is Tensor else masks.as_subclass(Tensor)
        return mixing.probability_maps(plain, self.num_classes)

    def _drawing_masks(self, part, masks):
        """The masks a part draws from (ClassMix): class maps become probability maps with the
        combination's classes when the part has no ``num_classes`` of its own."""
        drawing = getattr(part, "needs_masks", False) and getattr(part, "num_classes", 0) is None
        if not drawing or not isinstance(masks, Tensor) or masks.is_floating_point() \
                or self.num_classes is None:
            return masks
        plain = masks if type(masks) is Tensor else masks.as_subclass(Tensor)
        return mixing.probability_maps(plain, self.num_classes)

    def __repr__(self) -> str:
        # label_smoothing and multilabel are shown where they differ from the defaults they stand for
        return init_repr(self, mixers="[" + ", ".join(repr(m) for m in self.mixers) + "]",
                         label_smoothing=repr(self.label_smoothing) if self.label_smoothing else None,
                         multilabel="True" if self.multilabel else None)


class _OneOf(_Combination):
    sequential = False

    def _pick(self, inputs, generator) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None, *,
               masks=None) -> ComposedParams:
        _check_tensor(inputs)
        sampling.check_generator(generator, inputs.device)
        i = self._pick(inputs, generator)
        chosen = self.mixers[i]
        part = chosen.sample(inputs, generator=generator, masks=self._drawing_masks(chosen, masks))
        return ComposedParams(choice=i, parts=[part])

    def _apply_soft(self, inputs: Tensor, soft: Tensor | None, params: ComposedParams, masks, check: bool):
        if check:
            _check_composed(params, len(self.mixers), one=True)
        part = self.mixers[params.choice]
        return part._apply_soft(inputs, soft, params.parts[0], self._dense_for(part, masks), check)


class RandomChoice(_OneOf):
    """Apply one of ``mixers`` per batch, chosen with probabilities ``p`` (uniform by default).

    Example:

    ```python
    >>> import torch, mixkit
    >>> pick = mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix()], num_classes=10)
    >>> mixed, soft = pick(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))

    ```
    """

    def __init__(self, mixers: Sequence, p: Sequence[float] | None = None, *, num_classes=None,
                 label_smoothing: float | None = None, multilabel: bool | None = None):
        super().__init__(mixers, num_classes, label_smoothing, multilabel)
        if p is None:
            p = [1.0 / len(self.mixers)] * len(self.mixers)
        self.p = checks.probabilities("p", p, len(self.mixers))

    def _pick(self, inputs, generator) -> int:
        # Which code runs is decided on the host, from a CPU draw: no device sync.
        u = sampling.host_uniform(generator)
        acc = 0.0
        for i, w in enumerate(self.p):
            acc += w
            if u < acc:
                return i
        return max(i for i, w in enumerate(self.p) if w > 0)


class Alternate(_OneOf):
    """Apply ``mixers`` in turn, one per call: the FMix paper's MixUp+FMix alternates the two
    every other batch. ``state_dict``/``load_state_dict`` keep the position across a resume.

    In a ``DataLoader`` ``collate_fn`` with ``num_workers > 0`` it still alternates per batch as
    the loader yields them: worker w's k-th batch is batch ``k * num_workers + w`` of the epoch
    (the loader's round-robin order), and that number picks the mixer. Workers are started anew
    each epoch, so every epoch starts with the first mixer; with ``persistent_workers=True`` the
    count runs on across epochs, exact while the number of batches per epoch is a multiple of
    ``num_workers``.

    Example:

    ```python
    >>> import mixkit
    >>> alt = mixkit.Alternate([mixkit.MixUp(alpha=1.0), mixkit.FMix(alpha=1.0)], num_classes=10)

    ```
    """

    def __init__(self, mixers: Sequence, *, num_classes=None, label_smoothing: float | None = None,
                 multilabel: bool | None = None):
        super().__init__(mixers, num_classes, label_smoothing, multilabel)
        self.step = 0

    def _pick(self, inputs, generator) -> int:
        # In a DataLoader worker each worker holds its own copy, and the loader hands batch n of
        # an epoch to worker n % num_workers: the copy's k-th call is that epoch's batch
        # k * num_workers + id, so counting that way alternates per batch as the model sees them.
        info = None if torch.compiler.is_compiling() else get_worker_info()
        position = self.step if info is None else self.step * info.num_workers + info.id
        self.step += 1
        return position % len(self.mixers)

    # The position travels in the module's state dict (``state_dict()["_extra_state"]``), so a
    # model or training state holding this module checkpoints it too.
    def get_extra_state(self) -> dict:
        return {"step": self.step}

    def set_extra_state(self, state: dict) -> None:
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"state: expected Alternate's state {{'step': int >= 0}}, got {state!r}")
        self.step = step


class Compose(_Combination):
    """Apply ``mixers`` one after another; each sees the previous output and its soft labels
    (e.g. CutMix then zeta-mixup, as in the zeta-mixup paper's combination experiments).

    Example:

    ```python
    >>> import torch, mixkit
    >>> both = mixkit.Compose([mixkit.CutMix(), mixkit.ZetaMixup(gamma=2.8)], num_classes=10)
    >>> mixed, soft = both(torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,)))

    ```
    """

    sequential = True

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None, *,
               masks=None) -> ComposedParams:
        _check_tensor(inputs)
        sampling.check_generator(generator, inputs.device)
        # Every mixer keeps the shape, so each one's parameters can be drawn from the input. The
        # parts that read data to draw (SaliencyMix the images, ClassMix the masks) read the batch
        # as given to the Compose, not as the parts before them left it.
        return ComposedParams(None, [m.sample(inputs, generator=generator,
                                                       masks=self._drawing_masks(m, masks))
                                     for m in self.mixers])

    def _apply_soft(self, inputs: Tensor, soft: Tensor | None, params: ComposedParams, masks, check: bool):
        # masks, when given, are mixed along: class maps become probability maps after a blending part
        _check_composed(params, len(self.mixers), one=False)
        out = inputs
        for m, part in zip(self.mixers, params.parts, strict=True):
            if masks is None:
                out, soft = m._apply_soft(out, soft, part, None, check)
            else:
                out, soft, masks = m._apply_soft(out, soft, part, self._dense_for(m, masks), check)
        return (out, soft) if masks is None else (out, soft, masks)
