"""Reprs built from the constructor, as torchvision's transforms do: ``Name(a, b=..., ...)``.

Every parameter of ``__init__`` is read back from the attribute of the same name. Parameters
without a default are shown by value, in order; the others as ``name=value``, and only where the
value differs from the default. A module or a dataset-sized value is shown by its class name, so
a repr stays one readable line.
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn

__all__ = ["init_repr"]


def init_repr(obj, **shown) -> str:
    """The repr of ``obj`` from its constructor's parameters; ``shown`` overrides how a parameter
    is displayed (a string, used as it is; None leaves it out) where the attribute does not hold
    what was passed."""
    parts = []
    for name, param in list(inspect.signature(type(obj).__init__).parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in shown:
            text = shown[name]
            if text is None:  # left out
                continue
        elif hasattr(obj, name):
            value = getattr(obj, name)
            if param.default is not param.empty and _equal(value, param.default):
                continue
            text = _short(value)
        else:
            continue
        positional = param.default is param.empty and param.kind != param.KEYWORD_ONLY
        parts.append(text if positional else f"{name}={text}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def _equal(value, default) -> bool:
    if isinstance(value, Tensor) or isinstance(default, Tensor):
        return False
    return type(value) is type(default) and bool(value == default)


def _short(value) -> str:
    if isinstance(value, nn.Module) and type(value).__repr__ is nn.Module.__repr__:
        return type(value).__name__
    if isinstance(value, Tensor):
        return f"tensor(shape={tuple(value.shape)})"
    text = repr(value)
    return type(value).__name__ if "\n" in text else text
