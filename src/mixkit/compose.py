"""Combining mixers: one of several per batch, in turn, or in sequence.

- ``RandomChoice([...], p=None)``: one mixer per batch, chosen at random (weights ``p``).
- ``Alternate([...])``: the mixers in turn, one per call, as FMix's MixUp+FMix trainer does.
- ``Compose([...])``: all mixers in sequence, soft labels flowing through (CutMix + zeta-mixup).

Each keeps the mixer contract: ``sample`` draws everything (``ComposedParams``) and ``apply``
replays it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from .functional import mixing, sampling
from .mixers import MixParams
from .reprs import init_repr

__all__ = ["ComposedParams", "RandomChoice", "Alternate", "Compose"]


@dataclass
class ComposedParams:
    """``choice``: index of the mixer used (RandomChoice, Alternate) or None (Compose);
    ``parts``: the parameters of each mixer applied, in order."""

    choice: int | None
    parts: list[MixParams]


class _Combination:
    def __init__(self, mixers: Sequence, num_classes: int | None = None):
        if isinstance(mixers, (str, bytes)) or not isinstance(mixers, Sequence) or len(mixers) == 0:
            raise ValueError(f"mixers: expected a non-empty list of mixers, got {mixers!r}")
        for m in mixers:
            if not (hasattr(m, "sample") and hasattr(m, "apply")):
                raise TypeError(f"mixers: expected objects with sample() and apply(), got {type(m).__name__}")
        self.mixers = list(mixers)
        if num_classes is None:
            found = {m.num_classes for m in self.mixers if getattr(m, "num_classes", None) is not None}
            if len(found) > 1:
                raise ValueError(f"num_classes: expected one value across mixers, got {sorted(found)}")
            num_classes = found.pop() if found else None
        self.num_classes = num_classes

    def _soft(self, inputs: Tensor, labels: Tensor) -> Tensor:
        return mixing.to_soft_labels(labels, self.num_classes, batch_size=inputs.shape[0],
                                     device=inputs.device)

    def __call__(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None):
        return self.apply(inputs, labels, self.sample(inputs, generator=generator))

    def __repr__(self) -> str:
        return init_repr(self)


class _OneOf(_Combination):
    def _pick(self, inputs, generator) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None) -> ComposedParams:
        sampling.check_generator(generator, inputs.device)
        i = self._pick(inputs, generator)
        return ComposedParams(choice=i, parts=[self.mixers[i].sample(inputs, generator=generator)])

    def apply(self, inputs: Tensor, labels: Tensor, params: ComposedParams):
        soft = self._soft(inputs, labels)
        return self.mixers[params.choice].apply(inputs, soft, params.parts[0])


class RandomChoice(_OneOf):
    """Apply one of ``mixers`` per batch, chosen with probabilities ``p`` (uniform by default).

    Example::

        >>> import torch, mixkit
        >>> pick = mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix()], num_classes=10)
        >>> mixed, soft = pick(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    """

    def __init__(self, mixers: Sequence, p: Sequence[float] | None = None, *, num_classes=None):
        super().__init__(mixers, num_classes)
        if p is None:
            p = [1.0 / len(self.mixers)] * len(self.mixers)
        p = [float(v) for v in p]
        if len(p) != len(self.mixers) or any(v < 0 for v in p) or abs(sum(p) - 1.0) > 1e-6:
            raise ValueError(
                f"p: expected {len(self.mixers)} non-negative probabilities summing to 1, got {p}"
            )
        self.p = p

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

    Example::

        >>> import mixkit
        >>> alt = mixkit.Alternate([mixkit.MixUp(alpha=1.0), mixkit.FMix(alpha=1.0)], num_classes=10)
    """

    def __init__(self, mixers: Sequence, *, num_classes=None):
        super().__init__(mixers, num_classes)
        self.step = 0

    def _pick(self, inputs, generator) -> int:
        # In a DataLoader worker each worker holds its own copy, and the loader hands batch n of
        # an epoch to worker n % num_workers: the copy's k-th call is that epoch's batch
        # k * num_workers + id, so counting that way alternates per batch as the model sees them.
        info = None if torch.compiler.is_compiling() else get_worker_info()
        position = self.step if info is None else self.step * info.num_workers + info.id
        self.step += 1
        return position % len(self.mixers)

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


class Compose(_Combination):
    """Apply ``mixers`` one after another; each sees the previous output and its soft labels
    (e.g. CutMix then zeta-mixup, as in the zeta-mixup paper's combination experiments).

    Example::

        >>> import torch, mixkit
        >>> both = mixkit.Compose([mixkit.CutMix(), mixkit.ZetaMixup(gamma=2.8)], num_classes=10)
        >>> mixed, soft = both(torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,)))
    """

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None) -> ComposedParams:
        sampling.check_generator(generator, inputs.device)
        # Every mixer keeps the shape, so each one's parameters can be drawn from the input.
        return ComposedParams(None, [m.sample(inputs, generator=generator) for m in self.mixers])

    def apply(self, inputs: Tensor, labels: Tensor, params: ComposedParams):
        if len(params.parts) != len(self.mixers):
            raise ValueError(
                f"params: expected {len(self.mixers)} parts, got {len(params.parts)}"
            )
        out, soft = inputs, self._soft(inputs, labels)
        for m, part in zip(self.mixers, params.parts, strict=True):
            out, soft = m.apply(out, soft, part)
        return out, soft
