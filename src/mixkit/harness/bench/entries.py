"""Which entries are benchmarked: mixkit's mixers in each mode, the peer libraries' mixers and the
reference implementations, each as ``(method, implementation, mode, callable(x, y))``.

mixkit's rows are every input-space method of ``mixkit.registry`` that the harness trains, one
per mode its class takes (and in place where it takes ``inplace``); ``bench.yaml`` holds what the
benchmark adds: other modes for a method, the training-step mixers and the targets' methods.
Reference implementations are found in ``references`` by name (``official_<method>``,
``openmixup_style_<method>``).
"""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace

from mixkit import registry

from ..train.config import read_yaml
from . import references as ref
from .records import NUM_CLASSES

BENCH = read_yaml(os.path.join(os.path.dirname(__file__), "bench.yaml"))
FASTEST_MODES = {k: tuple(v) for k, v in BENCH["fastest_modes"].items()}
ELEM_VS_TIMM = tuple(BENCH["elem_vs_timm"])
MEMORY_BOUNDED = tuple(BENCH["memory_bounded"])
PER_SAMPLE_MASKS = tuple(BENCH["per_sample_masks"])

# the harness's defaults (TrainConfig's), for methods built through the registry
DEFAULTS = SimpleNamespace(alpha=1.0, mix_mode="batch", zeta_gamma=2.8, decay_power=3.0,
                           fmix_spectrum="paper", manifold_alpha=2.0, syner_beta=None)


def _modes(method) -> tuple:
    """``(tag, kwargs)`` per mode of a registered method: bench.yaml's, else from its class."""
    if method.name in BENCH["modes"]:
        return tuple((tag, dict(kw)) for tag, kw in BENCH["modes"][method.name].items())
    if not method.examples:  # a combination: one row, as the harness builds it
        return ((type(method.build(DEFAULTS, None, None)).__name__.lower(), None),)
    if not method.cls.supports_inplace:
        return tuple((mode, {"mode": mode}) for mode in method.cls.modes)
    return tuple((mode + (" inplace" if place else ""), {"mode": mode, "inplace": place})
                 for mode in method.cls.modes for place in (False, True))


def _factory(method):
    if not method.examples:
        return lambda num_classes, **_: method.build(DEFAULTS, num_classes, None)
    return lambda num_classes, **kw: method.cls(num_classes=num_classes, **kw)


def _methods() -> list[tuple]:
    """``(name, factory, modes, spatial)`` for every input-space method the harness trains;
    ``spatial``: it needs a 3-D to 5-D input (1-D to 3-D signals with channels)."""
    out = []
    for method in registry.methods("input"):
        if method.build is None:
            continue
        dims = getattr(method.build(DEFAULTS, None, None), "spatial_dims", None)
        out.append((method.name, _factory(method), _modes(method), dims is not None))
    return out


def _takes_masks(ndim: int) -> bool:
    return 3 <= ndim <= 5


def mixkit_entries(ndim: int, num_classes: int = NUM_CLASSES) -> list[tuple]:
    """mixkit's rows for inputs of ``ndim`` dimensions: a run of consecutive methods with the same
    modes, mode by mode (mixup, cutmix and fmix in batch, then the three in batch inplace, ...);
    the mixers are built for ``num_classes`` classes."""
    rows = [m for m in _methods() if _takes_masks(ndim) or not m[3]]
    out = []
    start = 0
    while start < len(rows):  # a run of consecutive methods with the same modes, mode by mode
        end = start
        while end + 1 < len(rows) and rows[end + 1][2] == rows[start][2]:
            end += 1
        for tag, kwargs in rows[start][2]:
            for name, factory, _, _ in rows[start:end + 1]:
                out.append((name, "mixkit", tag, factory(num_classes=num_classes, **(kwargs or {}))))
        start = end + 1
    return out


def train_step_mixers() -> dict:
    """The training-step benchmark's mixers by name (bench.yaml's ``train_step``, built by the
    registry with the harness's defaults and the row's overrides)."""
    out = {}
    for row in BENCH["train_step"]:
        overrides = {k: v for k, v in row.items() if k not in ("name", "method")}
        options = SimpleNamespace(**{**vars(DEFAULTS), **overrides})
        out[row["name"]] = registry.build(row["method"], options, NUM_CLASSES)
    return out


def peer_entries(ndim: int, batch: int, num_classes: int = NUM_CLASSES) -> list[tuple]:
    """The installed peer libraries' rows: timm ``Mixup`` (which mixes in place; even batches
    only), torchvision v2 ``MixUp``/``CutMix`` and kornia ``RandomMixUpV2``/``RandomCutMixV2``,
    for 4-D image batches (the peers mix images only) with ``num_classes`` classes."""
    out = []
    if ndim != 4:
        return out
    try:
        from timm.data import Mixup as TimmMixup

        if batch % 2 == 0:
            for mode in ("batch", "elem"):
                out.append(("mixup", "timm (in place)", mode,
                            TimmMixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode=mode, num_classes=num_classes)))
                out.append(("cutmix", "timm (in place)", mode,
                            TimmMixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, num_classes=num_classes)))
    except ImportError:
        pass
    try:
        from torchvision.transforms import v2

        out.append(("mixup", "torchvision v2", "batch", v2.MixUp(alpha=1.0, num_classes=num_classes)))
        out.append(("cutmix", "torchvision v2", "batch", v2.CutMix(alpha=1.0, num_classes=num_classes)))
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from kornia.augmentation import RandomCutMixV2, RandomMixUpV2

        out.append(("mixup", "kornia", "elem", RandomMixUpV2(data_keys=["input", "class"])))
        out.append(("cutmix", "kornia", "elem", RandomCutMixV2(data_keys=["input", "class"])))
    except ImportError:
        pass
    return out


def official_entries(ndim: int) -> list[tuple]:
    """The reference implementations' rows (``references``: ``official_<method>`` for the papers'
    code, ``openmixup_style_<method>`` for OpenMixup's, images only) that take inputs of ``ndim``
    dimensions, in the registry's order."""
    out = []
    for name, _, modes, spatial in _methods():
        official = getattr(ref, f"official_{name}", None)
        if official is not None and (_takes_masks(ndim) or not spatial):
            out.append((name, "official-style", modes[0][0], official))
    if ndim == 4:
        out += [(name, "OpenMixup-style", "batch", getattr(ref, f"openmixup_style_{name}"))
                for name, *_ in _methods() if hasattr(ref, f"openmixup_style_{name}")]
    return out
