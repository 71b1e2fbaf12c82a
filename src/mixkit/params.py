"""The parameter record: everything random about one mixing call, so that ``apply`` replays it.

``MixParams`` has the three fields every pairwise method shares and is open to the fields a
method adds for itself:

```python
MixParams(lam=..., applied=..., index=..., boxes=...)     # CutMix's record
params.lam, params.index, params.boxes                    # read as attributes
params.mask                                               # a known field this call lacks: None
```

A method declares its own fields once, at import (``declare_field("sources", "...")``), so that
reading a field the call did not draw gives None while a misspelt name still raises
``AttributeError``. The consumers (``to`` for devices, pickling, equality, replay checks,
dense targets, TransMix, CrossRank) treat every field alike and know nothing of any method:
a field's value is a tensor, a tuple or list of tensors (per-object data), or None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .functional.execution import host_readable

__all__ = ["MixParams", "declare_field", "declared_fields", "check_params", "expect_values", "expect_tensor"]

_FIELDS: dict[str, str] = {
    "lam": "(B,) float32, the realised weight of each sample's own input",
    "applied": "(B,) bool, which samples were mixed (the p draw)",
    "index": "(B,) int64, the partner of each sample (pairwise methods)",
    "shape": "the shape of the inputs the parameters were drawn for (a tuple of ints)",
}
_CHECKS: dict[str, Callable] = {}


def declare_field(name: str, doc: str, check: Callable | None = None) -> None:
    """Make ``name`` a field of ``MixParams`` (read as None where a call did not set it).
    ``check(value, inputs, params)`` raises when a replayed value cannot be right for ``inputs``
    (see ``check_params``)."""
    if not name.isidentifier() or name.startswith("_") or (name not in _FIELDS and hasattr(MixParams, name)):
        raise ValueError(f"name: expected a public identifier that is no MixParams method, got {name!r}")
    if _FIELDS.setdefault(name, doc) != doc:
        raise ValueError(f"name: expected a field not yet declared, got {name!r} "
                         f"(declared as {_FIELDS[name]!r})")
    setattr(MixParams, name, None)  # the value a call that did not set it reads
    if check is not None:
        _CHECKS[name] = check


def declared_fields() -> dict[str, str]:
    """Every declared field and what it holds."""
    return dict(_FIELDS)


def _moved(value, device):
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)) and any(isinstance(v, Tensor) for v in value):
        return type(value)(_moved(v, device) for v in value)
    return value


def _same(a, b) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool(torch.equal(a.cpu(), b.cpu())))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


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
    shape = None  # the inputs' shape at ``sample``; None for parameters made by hand

    def __init__(self, lam: Tensor, applied: Tensor, index: Tensor | None = None, **fields):
        if fields and not fields.keys() <= _FIELDS.keys():
            unknown = [k for k in fields if k not in _FIELDS]
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

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        """The tensor fields this call set."""
        return ((k, v) for k, v in self.__dict__.items() if isinstance(v, Tensor))

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
            return repr(v)
        return "MixParams(" + ", ".join(f"{k}={short(v)}" for k, v in self.items()) + ")"


# ---------------------------------------------------------------------------------------------
# Replay checks: what ``apply`` verifies of parameters it did not draw itself. On the host they
# raise at once; on an accelerator the value checks are device-side asserts (no host read), as the
# label checks are.


def expect_tensor(name: str, value, *, shape: tuple | None = None, kind: str = "float") -> None:
    """``value`` is a tensor of ``kind`` (``"float"``, ``"int"`` or ``"bool"``) and ``shape``."""
    ok_kind = {"float": lambda t: t.is_floating_point(),
               "int": lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool,
               "bool": lambda t: t.dtype == torch.bool}[kind]
    if not isinstance(value, Tensor) or not ok_kind(value) or (shape is not None
                                                                and tuple(value.shape) != shape):
        got = (f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, Tensor)
               else type(value).__name__)
        phrase = {"float": "a float tensor", "int": "an integer tensor", "bool": "a bool tensor"}[kind]
        want = phrase if shape is None else f"{phrase} of shape {shape}"
        raise ValueError(f"params: expected {name} as {want}, got {got}")


def expect_values(name: str, ok: Tensor, what: str, value: Tensor) -> None:
    """Every entry of ``ok`` holds: a ValueError on the host, an async assert on a device."""
    if not host_readable(ok):
        torch._assert_async(ok.all(), f"params: expected {name} with {what}")
        return
    if not bool(ok.all()):
        bad = value[~ok] if ok.shape == value.shape else value
        shown = bad.flatten()[:4].tolist()
        raise ValueError(f"params: expected {name} with {what}, got values such as {shown}")


def _check_lam(value, inputs, params):
    expect_tensor("lam", value, shape=(inputs.shape[0],))
    expect_values("lam", (value >= 0) & (value <= 1), "values in [0, 1]", value)


def _check_applied(value, inputs, params):
    expect_tensor("applied", value, shape=(inputs.shape[0],), kind="bool")


def _check_index(value, inputs, params):
    b = inputs.shape[0]
    expect_tensor("index", value, shape=(b,), kind="int")
    expect_values("index", (value >= 0) & (value < b), f"partners in [0, {b - 1}]", value)


_CHECKS.update(lam=_check_lam, applied=_check_applied, index=_check_index)


def check_params(params: MixParams, inputs: Tensor, spatial: bool) -> None:
    """Raise unless every field of ``params`` can be right for ``inputs``: the shape they were
    drawn for (batch size, and the trailing dims when the method is ``spatial``), a real device,
    the dtype and range of each field (``declare_field``'s checks)."""
    drawn, given = params.shape, tuple(inputs.shape)
    if drawn is not None and (drawn[0] != given[0] or (spatial and tuple(drawn[2:]) != given[2:])):
        what = "batch size and spatial size" if spatial else "batch size"
        raise ValueError(f"params: expected inputs of the {what} the parameters were drawn for, "
                         f"{tuple(drawn)}, got {given}; draw them again with sample(inputs)")
    if params.lam.device.type == "meta" and inputs.device.type != "meta":
        raise ValueError(f"params: expected parameters on a real device for inputs on {inputs.device}, "
                         "got them on meta")
    for name, value in list(params.items()):
        check = _CHECKS.get(name)
        if check is not None:
            check(value, inputs, params)
