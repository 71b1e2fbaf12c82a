"""The test grids, derived from ``mixkit.registry``: every registered input-space method in each
of its example configurations (``Method.examples``), every registered combination as the harness
builds it, and a ``RandomChoice`` (the one combination that is no harness method). Tests select
from them by trait (``mixkit.base``), never by name, so a newly registered mixer joins every grid.

``mixers(num_classes)`` -> ``{case id: factory}``; case ids are ``name-suffix`` (or ``name`` for
the empty suffix), the ids the tests have always used.
"""

from __future__ import annotations

from types import SimpleNamespace

import mixkit
from mixkit import registry

# the harness's defaults, as ``TrainConfig`` has them
DEFAULTS = SimpleNamespace(alpha=1.0, mix_mode="batch", zeta_gamma=2.8, decay_power=3.0, fmix_spectrum="paper",
                           manifold_alpha=2.0, syner_beta=None)


def _factory(cls, kwargs, num_classes, extra):
    return lambda: cls(num_classes=num_classes, **{**kwargs, **extra})


def _combined(method, num_classes):
    return lambda: method.build(DEFAULTS, num_classes, None)


def mixers(num_classes: int, *, masks: bool = False, **extra) -> dict:
    """Every configuration of every input-space method; ``masks=True`` includes the methods that
    draw from the segmentation (ClassMix); ``extra`` keyword arguments go to every leaf mixer
    constructor that takes them (e.g. ``pairing="roll"``)."""
    out = {}
    for method in registry.methods("input"):
        if method.examples:
            if method.cls.needs_masks and not masks:
                continue
            for suffix, kwargs in method.examples.items():
                taken = {k: v for k, v in extra.items() if _takes(method.cls, k)}
                out[f"{method.name}-{suffix}" if suffix else method.name] = _factory(
                    method.cls, kwargs, num_classes, taken)
        elif method.build is not None and not extra:
            out[method.name] = _combined(method, num_classes)
    if not extra:
        out["choice"] = lambda: mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix(mode="elem")],
                                                    num_classes=num_classes)
    return out


def _takes(cls, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls.__init__).parameters


def select(grid: dict, predicate) -> dict:
    """The cases whose mixer (built once) satisfies ``predicate(mixer)``."""
    return {k: f for k, f in grid.items() if predicate(f())}


def pastes(mixer) -> bool:
    """Each output element is copied from one sample (boxes, binary masks): dense targets stay class maps."""
    return bool(getattr(mixer, "regional", False)) and not mixer.interpolates


def regional(mixer) -> bool:
    return bool(getattr(mixer, "regional", False))


def inplace(mixer) -> bool:
    return bool(getattr(mixer, "inplace", False))


def any_rank(mixer) -> bool:
    """Takes any ``(B, *)`` input (not only 1-D to 3-D spatial data)."""
    return getattr(mixer, "spatial_dims", ()) is None


def one_per_method(grid: dict) -> list[str]:
    """The first case of every method (and every combination): a fast subset."""
    seen, out = set(), []
    for cid in grid:
        name = next((m.name for m in registry.methods() if cid == m.name or cid.startswith(m.name + "-")), cid)
        if name not in seen:
            seen.add(name)
            out.append(cid)
    return out


def modes(num_classes: int, **extra) -> dict:
    """Every leaf input-space method at its defaults, once per ``mode`` it takes (ids ``name`` for
    batch or no mode, ``name-elem``), with ``extra`` where the constructor takes it; without
    ``extra`` also the registered combinations and a RandomChoice, as ``mixers`` has them."""
    out = {}
    for method in registry.methods("input"):
        if not method.examples or method.cls.needs_masks:
            continue
        taken = {k: v for k, v in extra.items() if _takes(method.cls, k)}
        for mode in method.cls.modes or (None,):
            kwargs = {} if mode is None else {"mode": mode}
            cid = method.name if mode in (None, "batch") else f"{method.name}-{mode}"
            out[cid] = _factory(method.cls, kwargs, num_classes, taken)
    if not extra:
        out.update({k: f for k, f in mixers(num_classes).items() if k not in out and "-" not in k})
    return out


def interpolating(mixer) -> bool:
    """Mixed values are weighted sums, rounded for integer images (for a combination: every part)."""
    parts = getattr(mixer, "mixers", None)
    if parts is not None:
        return all(interpolating(p) for p in parts)
    return mixer.interpolates


def one_each(num_classes: int) -> list:
    """One mixer of every registered input method and combination (and a RandomChoice)."""
    full = mixers(num_classes)
    return [full[cid]() for cid in one_per_method(full)]
