"""One hook class for every model-aware method: forward hooks on named modules of a model,
registered once and idle unless armed.

``with tap.arm(name, fn): model(x)`` makes module ``name`` call ``fn(module, args, kwargs,
output)`` during that forward; a non-None result replaces the module's output. Every other
module, and every forward outside the block, runs unchanged. The armed module must run exactly
once in the block, or a ValueError says so.

The hooks stay registered (rather than being added and removed around each forward) so that a
``torch.compile``d model sees the same hooks on every step: dynamo ignores hooks added after it
compiled a module, and it guards on which module is armed, so a run compiles once per module
armed. A hook holds only a weak reference to its tap: the hooks are removed when the tap is
garbage-collected, or at once by ``remove()``. Copying or pickling a model that carries hooks
(``copy.deepcopy(model)`` for an EMA copy, spawn-started workers) gives a model whose copied
hooks are idle for good: they belong to no tap.

``LayerTaps`` (replace a layer's output: Manifold Mixup, SynerMix's features) is the form the
hidden-layer methods use; TransMix's attention tap reads the module's inputs.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping, Sequence

from torch import Tensor, nn

from .model import resolve_layer

__all__ = ["Tap", "LayerTaps"]


class _Hook:
    """The callable registered on a module: forwards to its tap while the tap is armed there."""

    __slots__ = ("_ref", "_name")

    def __init__(self, ref, name: str):
        self._ref, self._name = ref, name

    def __call__(self, module, args, *rest):
        tap = None if self._ref is None else self._ref()
        if tap is None or tap._armed != self._name:
            return None
        kwargs, output = rest if len(rest) == 2 else ({}, rest[0])
        return tap._called(self._name, module, args, kwargs, output)

    def __reduce__(self):  # a copied model's hooks belong to no tap: idle
        return (_Hook, (None, self._name))


def _remove_handles(handles) -> None:
    for handle in handles:
        handle.remove()


class Tap:
    """Forward hooks on ``modules`` (name -> module), idle unless armed (see the module docstring).

    ``what`` names the argument the modules came from (for errors), ``owner`` what to create anew
    once the hooks are removed, ``once`` the advice when an armed module runs twice;
    ``with_kwargs`` passes the module's keyword arguments to ``fn``.
    """

    def __init__(self, modules: Mapping[str, nn.Module], what: str, *, owner: str = "mixer",
                 once: str = "choose a module called once", with_kwargs: bool = False):
        self._armed: str | None = None
        self._fn: Callable | None = None
        self._calls = 0
        self._what, self._owner, self._once = what, owner, once
        me = weakref.ref(self)
        handles = [module.register_forward_hook(_Hook(me, name), with_kwargs=with_kwargs)
                   for name, module in modules.items()]
        self._finalizer = weakref.finalize(self, _remove_handles, handles)

    def remove(self) -> None:
        """Remove the hooks from the model now."""
        self._finalizer()

    @property
    def removed(self) -> bool:
        return not self._finalizer.alive

    @contextlib.contextmanager
    def arm(self, name: str, fn: Callable):
        """Within the block, module ``name`` calls ``fn(module, args, kwargs, output)``."""
        if self.removed:
            raise RuntimeError(f"{type(self).__name__}: the hooks were removed; create a new {self._owner}")
        self._armed, self._fn, self._calls = name, fn, 0
        try:
            yield
        finally:
            self._armed, self._fn = None, None
        if self._calls == 0:
            raise ValueError(f"{self._what}: expected layer {name!r} to run during the forward, got no call "
                             f"(for a compiled model: create the {self._owner} before its first forward)")

    def _called(self, name: str, module, args, kwargs, output):
        self._calls += 1
        if self._calls > 1:
            raise ValueError(f"{self._what}: expected layer {name!r} to run once per forward, got a second "
                             f"call; {self._once}")
        return self._fn(module, args, kwargs, output)


class LayerTaps(Tap):
    """Forward hooks on the named layers of ``model`` that can replace a layer's output.

    ``with taps.armed(name, fn): model(x)`` makes layer ``name`` return ``fn(output)`` instead of
    its output during that forward. This is the mixing point that ``ManifoldMixup`` and
    ``SynerMix`` share. Create it (the mixer that owns it) before a compiled model's first
    forward, or call ``torch._dynamo.reset()`` after creating it.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], what: str):
        modules = {name: resolve_layer(model, name, what, allow_input=False) for name in dict.fromkeys(names)}
        super().__init__(modules, what, owner="mixer",
                         once="choose a module called once (a block, not a shared activation module)")

    def armed(self, name: str, fn: Callable[[Tensor], Tensor]):
        """Within the block, layer ``name``'s output ``h`` is replaced by ``fn(h)``; raises if the
        layer did not run exactly once."""
        return self.arm(name, lambda module, args, kwargs, output: fn(output))
