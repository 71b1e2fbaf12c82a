"""The parameter record: everything random about one mixing call, so that ``apply`` replays it.

``MixParams`` has the three fields every pairwise method shares and is open to the fields a
method adds for itself::

    MixParams(lam=..., applied=..., index=..., boxes=...)     # CutMix's record
    params.lam, params.index, params.boxes                    # read as attributes
    params.mask                                               # a known field this call lacks: None

A method declares its own fields once, at import (``declare_field("sources", "...")``), so that
reading a field the call did not draw gives None while a misspelt name still raises
``AttributeError``. The consumers (``to`` for devices, pickling, equality, replay checks,
dense targets, TransMix, CrossRank) treat every field alike and know nothing of any method:
a field's value is a tensor, a tuple or list of tensors (per-object data), or None.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["MixParams", "declare_field", "declared_fields"]

_FIELDS: dict[str, str] = {
    "lam": "(B,) float32, the realised weight of each sample's own input",
    "applied": "(B,) bool, which samples were mixed (the p draw)",
    "index": "(B,) int64, the partner of each sample (pairwise methods)",
}


def declare_field(name: str, doc: str) -> None:
    """Make ``name`` a field of ``MixParams`` (read as None where a call did not set it)."""
    if not name.isidentifier() or name.startswith("_") or (name not in _FIELDS and hasattr(MixParams, name)):
        raise ValueError(f"name: expected a public identifier that is no MixParams method, got {name!r}")
    if _FIELDS.setdefault(name, doc) != doc:
        raise ValueError(f"name: expected a field not yet declared, got {name!r} "
                         f"(declared as {_FIELDS[name]!r})")
    setattr(MixParams, name, None)  # the value a call that did not set it reads


def declared_fields() -> dict[str, str]:
    """Every declared field and what it holds."""
    return dict(_FIELDS)


def _moved(value, device):
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value.to(device)
    return type(value)(_moved(v, device) for v in value)


def _same(a, b) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool(torch.equal(a.cpu(), b.cpu())))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a is None and b is None


class MixParams:
    """Everything random about one mixing call; ``apply`` replays it exactly.

    lam:      (B,) float32, realised weight of each sample's own input.
    applied:  (B,) bool, which samples were mixed (the ``p`` draw).
    index:    (B,) int64, the partner of each sample (pairwise methods), else None.

    and the fields a method adds (``mixkit.params.declared_fields()`` lists them), e.g.
    ``weights`` (zeta-mixup's (B, B) matrix), ``mask`` (a keep mask), ``boxes`` (pasted boxes).
    Fields are plain attributes (a declared field the call did not set reads as None, from the
    class); setting an undeclared one raises.
    """

    index = None

    def __init__(self, lam: Tensor, applied: Tensor, index: Tensor | None = None, **fields):
        unknown = [k for k in fields if k not in _FIELDS]
        if unknown:
            raise TypeError(f"MixParams: expected declared fields ({', '.join(_FIELDS)}), "
                            f"got {', '.join(sorted(unknown))}")
        values = self.__dict__
        values["lam"], values["applied"], values["index"] = lam, applied, index
        values.update(fields)

    def __setattr__(self, name, value):
        if name not in _FIELDS:
            raise AttributeError(f"MixParams has no field {name!r}; declared: {', '.join(_FIELDS)}")
        self.__dict__[name] = value

    def items(self) -> Iterator[tuple[str, object]]:
        """The fields this call set (not None), in the order they were given."""
        return ((k, v) for k, v in self.__dict__.items() if v is not None)

    def replace(self, **changes) -> MixParams:
        """A copy with some fields changed (``None`` removes one)."""
        return MixParams(**{**self.__dict__, **changes})

    def to(self, device) -> MixParams:
        """The same parameters on another device."""
        return MixParams(**{k: _moved(v, device) for k, v in self.__dict__.items()})

    def __eq__(self, other) -> bool:
        if not isinstance(other, MixParams):
            return NotImplemented
        names = {k for k, _ in self.items()} | {k for k, _ in other.items()}
        return all(_same(getattr(self, k), getattr(other, k)) for k in names)

    __hash__ = None

    def __repr__(self) -> str:
        def short(v):
            if isinstance(v, Tensor):
                return f"tensor(shape={tuple(v.shape)}, dtype={v.dtype})"
            return f"[{len(v)} items]"
        return "MixParams(" + ", ".join(f"{k}={short(v)}" for k, v in self.items()) + ")"
