"""Which entries are benchmarked: mixkit's mixers in each mode, the peer libraries' mixers and the
reference implementations, each as ``(method, implementation, mode, callable(x, y))``.

Every mixer name the benchmark types by hand is in the tables at the top of this module (the
shape tables' rows, the training-step mixers and the methods the targets apply to); the rest of
the benchmark reads them from here.
"""

from __future__ import annotations

import functools
import warnings

from mixkit.compose import Alternate, Compose
from mixkit.mixers import CutMix, FMix, GridMix, MixUp, ResizeMix, SaliencyMix, SmoothMix, ZetaMixup

from . import references as ref
from .records import NUM_CLASSES

# =============================================================================================
# THE MIXERS BENCHMARKED (hand-typed; a method registry is to replace these tables).
#
# MIXKIT_METHODS: one row per method, ``(name, factory, modes, masks)``. ``factory(num_classes=...,
# **kwargs)`` builds the mixer for one mode; ``modes`` are ``(tag, kwargs)`` pairs, the tag being
# the mode column of the tables; ``masks``: the method needs a 3-D to 5-D input (a batch of 1-D to
# 3-D signals with channels), else it takes any rank. The tables list a run of consecutive methods
# with the same modes mode by mode (mixup, cutmix, fmix in batch, then the three in batch inplace,
# ...).

INPLACE_MODES = (("batch", {"mode": "batch", "inplace": False}),
                 ("batch inplace", {"mode": "batch", "inplace": True}),
                 ("elem", {"mode": "elem", "inplace": False}),
                 ("elem inplace", {"mode": "elem", "inplace": True}))
MODES = (("batch", {"mode": "batch"}), ("elem", {"mode": "elem"}))

MIXKIT_METHODS = [
    ("mixup", MixUp, INPLACE_MODES, False),
    ("cutmix", CutMix, INPLACE_MODES, True),
    ("fmix", FMix, INPLACE_MODES, True),
    ("resizemix", functools.partial(ResizeMix, resample="nearest"), MODES, True),
    ("saliencymix", SaliencyMix, MODES, True),
    ("gridmix", GridMix, MODES, True),
    ("smoothmix", SmoothMix, MODES, True),
    ("zeta", ZetaMixup, (("N=B", {}), ("N=4", {"n_mix": 4})), False),
    ("mixup+fmix", lambda **kw: Alternate([MixUp(), FMix()], **kw), (("alternate", {}),), True),
    ("cutmix+zeta", lambda **kw: Compose([CutMix(), ZetaMixup()], **kw), (("compose", {}),), True),
]

# The input-space mixers timed inside a small CNN's training step: ``(name, factory)``, each
# factory called with ``num_classes``.
TRAIN_STEP_MIXERS = [
    ("mixup", MixUp),
    ("zeta", ZetaMixup),
    ("cutmix", CutMix),
    ("fmix", FMix),
    ("fmix elem", functools.partial(FMix, mode="elem")),
    ("mixup+fmix", lambda **kw: Alternate([MixUp(), FMix()], **kw)),
    ("cutmix+zeta", lambda **kw: Compose([CutMix(), ZetaMixup()], **kw)),
]

# The methods the targets of docs/benchmarks.md apply to (report.target_checks): the modes whose
# fastest one is set against the fastest peer, the methods whose elem mode is set against timm's,
# those whose extra memory is bounded, and those allowed one mask plane per sample in elem mode.
FASTEST_MODES = {"mixup": ("batch", "batch inplace"), "cutmix": ("batch", "batch inplace"),
                 "fmix": ("batch", "batch inplace"), "zeta": ("N=B",)}
ELEM_VS_TIMM = ("mixup", "cutmix")
MEMORY_BOUNDED = ("mixup", "cutmix", "fmix", "zeta")
PER_SAMPLE_MASKS = ("cutmix", "fmix")

# =============================================================================================


def _takes_masks(ndim: int) -> bool:
    return 3 <= ndim <= 5


def mixkit_entries(ndim: int) -> list[tuple]:
    """mixkit's rows for inputs of ``ndim`` dimensions, in the tables' order (see MIXKIT_METHODS)."""
    rows = [m for m in MIXKIT_METHODS if _takes_masks(ndim) or not m[3]]
    out = []
    start = 0
    while start < len(rows):  # a run of consecutive methods with the same modes, mode by mode
        end = start
        while end + 1 < len(rows) and rows[end + 1][2] == rows[start][2]:
            end += 1
        for tag, kwargs in rows[start][2]:
            for name, factory, _, _ in rows[start:end + 1]:
                out.append((name, "mixkit", tag, factory(num_classes=NUM_CLASSES, **kwargs)))
        start = end + 1
    return out


def train_step_mixers() -> dict:
    """The training-step benchmark's mixers by name (TRAIN_STEP_MIXERS, built)."""
    return {name: factory(num_classes=NUM_CLASSES) for name, factory in TRAIN_STEP_MIXERS}


def peer_entries(ndim: int, batch: int) -> list[tuple]:
    """The installed peer libraries' rows: timm ``Mixup`` (which mixes in place; even batches
    only), torchvision v2 ``MixUp``/``CutMix`` and kornia ``RandomMixUpV2``/``RandomCutMixV2``,
    for 4-D image batches (the peers mix images only)."""
    out = []
    if ndim != 4:
        return out
    try:
        from timm.data import Mixup as TimmMixup

        if batch % 2 == 0:
            for mode in ("batch", "elem"):
                out.append(("mixup", "timm (in place)", mode,
                            TimmMixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode=mode, num_classes=NUM_CLASSES)))
                out.append(("cutmix", "timm (in place)", mode,
                            TimmMixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, num_classes=NUM_CLASSES)))
    except ImportError:
        pass
    try:
        from torchvision.transforms import v2

        out.append(("mixup", "torchvision v2", "batch", v2.MixUp(alpha=1.0, num_classes=NUM_CLASSES)))
        out.append(("cutmix", "torchvision v2", "batch", v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)))
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
    """The reference implementations' rows (``references``) that take inputs of ``ndim``
    dimensions."""
    out = [("zeta", "official-style", "N=B", ref.official_zeta)]
    if _takes_masks(ndim):
        out.append(("fmix", "official-style", "batch", ref.official_fmix))
    if ndim == 4:
        out += [("resizemix", "OpenMixup-style", "batch", ref.openmixup_style_resizemix),
                ("saliencymix", "OpenMixup-style", "batch", ref.openmixup_style_saliencymix),
                ("gridmix", "OpenMixup-style", "batch", ref.openmixup_style_gridmix),
                ("smoothmix", "OpenMixup-style", "batch", ref.openmixup_style_smoothmix)]
    return out
