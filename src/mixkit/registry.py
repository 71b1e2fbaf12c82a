"""Every method mixkit has, in one place: its name, its class, the harness's defaults for it, a
short description, and what the papers compare it with. Every list of methods derives from here:
``mixkit train --method`` and its help, the harness's factory, ``compare``'s paired comparisons,
the gallery rows, the bench rows, the contract and dense test grids, and the error messages that
say what is accepted.

A plain module, no inheritance: an entry is a ``Method`` record; ``register`` adds one (a new
method's entry goes in the table below; a test or a user may register their own class at run
time). Traits are read from the class (``mixkit.base``), never from the name:

```python
from mixkit import registry
registry.get("cutmix").cls                      # mixkit.CutMix
registry.names(kind="input")                    # every input-space method, in order
[m.name for m in registry.methods() if m.traits.get("regional")]
```

``build`` is how the harness makes the method from its options (an object with the fields of
``mixkit.harness.train.config.TrainConfig`` it reads: ``alpha``, ``mix_mode``, ``zeta_gamma``,
``decay_power``, ``fmix_spectrum``, ``manifold_alpha``, ``syner_beta``), the number of classes
and, for model-aware methods, the model (possibly inside DistributedDataParallel).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import nn

from .compose import Alternate, Compose
from .hidden import ManifoldMixup, SynerMix
from .mixers import ClassMix, CutMix, FMix, GridMix, MixUp, ResizeMix, SaliencyMix, SmoothMix, ZetaMixup
from .transmix import TransMix

__all__ = ["Method", "Variant", "register", "unregister", "methods", "names", "get", "build", "accepted",
           "pairs", "variants"]

_TRAITS = ("pairwise", "regional", "spatial_dims", "modes", "needs_masks", "supports_inplace",
           "needs_model", "needs_originals")


@dataclass(frozen=True)
class Variant:
    """A harness variant of a method: ``{method}-{suffix}`` with config ``overrides``, compared
    with ``baselines`` (names) when both are in a comparison."""

    suffix: str
    overrides: Mapping
    baselines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Method:
    """One method.

    name:         the harness's name (``mixkit train --method NAME``)
    cls:          the class users hold (None: plain training, ``erm``)
    description:  one line, for ``--help`` and the docs
    build:        ``(options, num_classes, model) -> object`` with the harness's defaults (None: not a
                  harness method, e.g. ClassMix, which needs segmentation maps)
    baselines:    the methods its paper compares it with (paired intervals in ``compare``)
    variants:     named hyperparameter variants the harness accepts (``zeta-g2``, ...)
    needs:        model attributes ``build`` reads, each with how to say it is missing
    examples:     constructor variants (``suffix -> kwargs``) the contract tests run, one per
                  option that takes another code path
    """

    name: str
    cls: type | None
    description: str
    build: Callable | None = None
    baselines: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    needs: Mapping[str, str] = field(default_factory=dict)
    examples: Mapping[str, Mapping] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"erm"`` (no mixing), ``"model"`` (needs the model) or ``"input"`` (mixes batches)."""
        if self.cls is None:
            return "erm"
        return "model" if getattr(self.cls, "needs_model", False) else "input"

    @property
    def traits(self) -> dict:
        """The class's traits (see ``mixkit.base``); a combination's come from its parts when built."""
        return {t: getattr(self.cls, t) for t in _TRAITS if hasattr(self.cls, t)}


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` (its name must be new); returns it."""
    if not isinstance(method, Method):
        raise TypeError(f"method: expected a mixkit.registry.Method, got {type(method).__name__}")
    if method.name in _METHODS or method.name in _variant_names():
        raise ValueError(f"method: expected a new name, got {method.name!r} (registered already)")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove the method ``name`` (for tests that plant one)."""
    _METHODS.pop(get(name).name)


def methods(kind: str | None = None) -> tuple[Method, ...]:
    """The registered methods in order (of one ``kind`` if given)."""
    return tuple(m for m in _METHODS.values() if kind is None or m.kind == kind)


def names(kind: str | None = None, harness: bool = False) -> tuple[str, ...]:
    """Their names; ``harness=True``: only those the harness trains (with a ``build``, or erm)."""
    return tuple(m.name for m in methods(kind) if not harness or m.build is not None or m.kind == "erm")


def accepted(kind: str | None = None, harness: bool = False) -> str:
    """The names as an error message lists them: ``'a', 'b' or 'c'``."""
    shown = [repr(n) for n in names(kind, harness)]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def get(name: str) -> Method:
    """The method called ``name``, or a ValueError listing the names."""
    if name not in _METHODS:
        raise ValueError(f"method: expected one of {', '.join(_METHODS)}, got {name!r}")
    return _METHODS[name]


def variants() -> dict[str, tuple[Method, Variant]]:
    """Every harness variant by its full name (``zeta-g2``): the method and the variant."""
    return {f"{m.name}-{v.suffix}": (m, v) for m in _METHODS.values() for v in m.variants}


def _variant_names() -> set[str]:
    return set(variants())


def pairs() -> list[tuple[str, str]]:
    """``(method, baseline)`` for every comparison a paper makes, methods and variants, in order."""
    out = []
    for m in _METHODS.values():
        out += [(m.name, b) for b in m.baselines]
        out += [(f"{m.name}-{v.suffix}", b) for v in m.variants for b in v.baselines]
    return out


def build(name: str, options, num_classes: int, model: nn.Module | None = None):
    """The harness's object for method ``name`` (None for erm)."""
    method = get(name)
    if method.kind == "erm":
        return None
    if method.build is None:
        raise ValueError(f"method: expected a method the harness trains ({accepted(harness=True)}), "
                         f"got {name!r} ({method.description})")
    inner = getattr(model, "module", model)
    for attr, what in method.needs.items():
        if not hasattr(inner, attr):
            raise ValueError(f"method {name}: expected {what}, got {type(inner).__name__}")
    return method.build(options, num_classes, model)


# ---------------------------------------------------------------------------------------------
# The table. Harness defaults read the run's options; model-aware methods find their layers by
# the names mixkit's models give them (``mixing_layers``, ``feature_layer``, ``head``,
# ``attention_layer``).

_HIDDEN = {a: f"a model with a '{a}' attribute (mixkit's models have one)"
           for a in ("mixing_layers", "feature_layer", "head")}


def _inner(model):
    return getattr(model, "module", model)


def _syner_beta(o, default: float) -> float:
    return default if o.syner_beta is None else o.syner_beta


def _syner(o, k, model, beta: float, inter):
    inner = _inner(model)
    return SynerMix(model, inner.feature_layer, inner.head, beta=_syner_beta(o, beta), inter=inter,
                    num_classes=k)


def _manifold(o, k, model):
    return ManifoldMixup(model, _inner(model).mixing_layers, alpha=o.manifold_alpha, num_classes=k)


def _zeta_variant(gamma: float) -> Variant:
    return Variant(f"g{gamma:g}", MappingProxyType({"zeta_gamma": gamma}), ("mixup",))


_TABLE = (
    Method("erm", None, "plain training: cross-entropy on the (augmented) batch"),
    Method("mixup", MixUp, "MixUp(alpha): pairs blended with lam ~ Beta(alpha, alpha)",
           build=lambda o, k, m: MixUp(alpha=o.alpha, num_classes=k, mode=o.mix_mode),
           variants=(Variant("elem", {"mix_mode": "elem"}),),
           examples={"batch": {"alpha": 1.0}, "elem": {"alpha": 0.4, "mode": "elem"},
                     "elem-inplace": {"mode": "elem", "inplace": True}, "batch-inplace": {"inplace": True},
                     "p0.5": {"mode": "elem", "p": 0.5}}),
    Method("zeta", ZetaMixup, "ZetaMixup(zeta_gamma): each sample a p-series mix of the batch",
           build=lambda o, k, m: ZetaMixup(gamma=o.zeta_gamma, num_classes=k), baselines=("mixup",),
           variants=tuple(_zeta_variant(g) for g in (2.0, 2.4, 3.4, 4.0, 5.0)),
           examples={"": {"gamma": 2.8}, "n3": {"gamma": 1.5, "n_mix": 3}}),
    Method("cutmix", CutMix, "CutMix(alpha): a box of the partner pasted",
           build=lambda o, k, m: CutMix(alpha=o.alpha, num_classes=k, mode=o.mix_mode),
           variants=(Variant("elem", {"mix_mode": "elem"}),),
           examples={"batch": {}, "elem": {"mode": "elem"}, "elem-inplace": {"mode": "elem", "inplace": True},
                     "batch-inplace": {"inplace": True}, "nocorrect": {"correct_lam": False, "p": 0.7}}),
    Method("fmix", FMix, "FMix(alpha, decay_power, spectrum): a thresholded Fourier-noise mask",
           build=lambda o, k, m: FMix(alpha=o.alpha, decay_power=o.decay_power, num_classes=k,
                                      mode=o.mix_mode, spectrum=o.fmix_spectrum),
           baselines=("mixup", "cutmix"),
           variants=(Variant("official", {"fmix_spectrum": "official"}, ("fmix",)),
                     Variant("elem", {"mix_mode": "elem"})),
           examples={"batch": {}, "elem": {"mode": "elem"}, "elem-inplace": {"mode": "elem", "inplace": True},
                     "batch-inplace-soft": {"max_soft": 0.1, "inplace": True},
                     "soft": {"mode": "elem", "max_soft": 0.2}, "reformulate": {"reformulate": True},
                     "official": {"mode": "elem", "spectrum": "official"}}),
    Method("resizemix", ResizeMix, "ResizeMix(scale=(0.1, 0.8)): the partner shrunk whole and pasted",
           build=lambda o, k, m: ResizeMix(num_classes=k, mode=o.mix_mode), baselines=("cutmix",),
           examples={"batch": {}, "elem": {"mode": "elem"},
                     "nearest-p0.5": {"mode": "elem", "resample": "nearest", "p": 0.5}}),
    Method("saliencymix", SaliencyMix, "SaliencyMix(alpha): a CutMix box on the partner's saliency peak",
           build=lambda o, k, m: SaliencyMix(alpha=o.alpha, num_classes=k, mode=o.mix_mode),
           baselines=("cutmix",), examples={"batch": {}, "elem-p0.5": {"mode": "elem", "p": 0.5}}),
    Method("gridmix", GridMix, "GridMix(alpha): a grid of holes showing the partner (2-6 holes, crop 0.5-1)",
           build=lambda o, k, m: GridMix(alpha=o.alpha, num_classes=k, mode=o.mix_mode),
           baselines=("cutmix",),
           examples={"batch": {}, "elem": {"mode": "elem", "holes": (1, 3)},
                     "elem-inplace": {"mode": "elem", "inplace": True}}),
    Method("smoothmix", SmoothMix, "SmoothMix(sigma=(0.25, 0.5)): a Gaussian blob of the partner",
           build=lambda o, k, m: SmoothMix(num_classes=k, mode=o.mix_mode), baselines=("cutmix",),
           examples={"batch": {}, "elem-p0.5": {"mode": "elem", "p": 0.5}}),
    Method("classmix", ClassMix, "ClassMix: half of the partner's classes pasted along their pixels "
           "(segmentation; not a harness method)", examples={"": {}, "p0.5": {"p": 0.5}}),
    Method("mixup+fmix", Alternate, "Alternate([MixUp, FMix]): one per batch in turn (FMix paper)",
           build=lambda o, k, m: Alternate([build("mixup", o, k), build("fmix", o, k)], num_classes=k),
           baselines=("fmix",)),
    Method("cutmix+zeta", Compose, "Compose([CutMix, ZetaMixup]): CutMix then zeta-mixup (zeta-mixup paper)",
           build=lambda o, k, m: Compose([build("cutmix", o, k), build("zeta", o, k)], num_classes=k),
           baselines=("cutmix",)),
    Method("manifold", ManifoldMixup, "ManifoldMixup at the model's mixing layers (manifold_alpha)",
           build=_manifold, needs=_HIDDEN),
    Method("synermix-intra", SynerMix, "SynerMix, beta 0.5, inter = plain cross-entropy",
           build=lambda o, k, m: _syner(o, k, m, 0.5, None), needs=_HIDDEN),
    Method("synermix", SynerMix, "SynerMix, beta 0.1, inter = MixUp(alpha)",
           build=lambda o, k, m: _syner(o, k, m, 0.1, MixUp(alpha=o.alpha, num_classes=k)),
           baselines=("mixup", "synermix-intra"), needs=_HIDDEN),
    Method("synermix-manifold", SynerMix, "SynerMix, beta 0.1, inter = ManifoldMixup",
           build=lambda o, k, m: _syner(o, k, m, 0.1, _manifold(o, k, m)),
           baselines=("manifold", "synermix-intra"), needs=_HIDDEN),
    Method("transmix", TransMix, "TransMix over CutMix(alpha) at the ViT's attention_layer (small-vit)",
           build=lambda o, k, m: TransMix(m, _inner(m).attention_layer, mixer=build("cutmix", o, k),
                                          num_classes=k),
           baselines=("cutmix",),
           needs={"attention_layer": "a vision transformer with an 'attention_layer' attribute "
                                     "(--model small-vit)"}),
)

for _method in _TABLE:
    register(_method)
