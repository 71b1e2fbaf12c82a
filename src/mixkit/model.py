"""What every model-aware method shares (``ManifoldMixup``, ``SynerMix``, ``TransMix``): the model
and its layers by name, labels as targets, the loss, and how it pickles.

A model-aware method needs a forward (or a backward) through the model, so it holds the model
instead of being held by it. It never changes the model: no subclass, no patched ``forward``;
it reaches into it by forward hooks (``mixkit.hooks``). Layer names are the keys of
``dict(model.named_modules())``; a model wrapped in ``torch.compile``, ``DistributedDataParallel``
or ``DataParallel`` takes the names of the model it wraps (``"layer1"``; ``"module.layer1"``
works too), so the same names serve under DDP.

Pickling and ``copy.deepcopy``: the method is copied with its model, and the copy registers its
own hooks on the copied model (``_make_taps``), so DataLoader workers started with spawn and
deep copies work; the original's hooks on a copied model stay idle.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .functional.mixing import smooth_labels, to_soft_labels
from .functional.sampling import host_generator
from .losses import soft_target_cross_entropy
from .reprs import init_repr

__all__ = ["ModelMixer", "unwrapped", "module_names", "resolve_layer", "check_model", "agreed_num_classes",
           "wrapped_targets", "mix_soft", "draw_index"]


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside any ``torch.compile``, ``DistributedDataParallel`` or ``DataParallel``
    wrappers, in whatever order they were applied."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def module_names(model: nn.Module) -> dict[str, nn.Module]:
    """Submodules by name; a wrapped model (``torch.compile``, ``DistributedDataParallel``) is named
    as the model it wraps (``layer1``); the wrapper's own names (``module.layer1``) are accepted too."""
    inner = {name: mod for name, mod in unwrapped(model).named_modules() if name != ""}
    outer = {name: mod for name, mod in model.named_modules() if name != "" and name not in inner
             and mod is not unwrapped(model)}
    return {**inner, **outer}


def _name_examples(names: Sequence[str], limit: int = 8) -> str:
    top = [n for n in names if "." not in n] or list(names)
    shown = ", ".join(repr(n) for n in top[:limit])
    return shown + (", ..." if len(top) > limit else "")


def resolve_layer(model: nn.Module, name, what: str, allow_input: bool) -> nn.Module | None:
    """The submodule called ``name``; None for ``""`` (the input) when allowed."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a layer name (str), got {type(name).__name__}")
    if name == "" and allow_input:
        return None
    modules = module_names(model)
    if name not in modules:
        extra = " or '' for the input" if allow_input else ""
        raise ValueError(
            f"{what}: expected the name of a submodule of the model (one of "
            f"{_name_examples(list(modules))}){extra}, got {name!r}"
        )
    return modules[name]


def check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return model


def agreed_num_classes(mixer, num_classes) -> int | None:
    """``num_classes`` given to a method that wraps ``mixer``, or the mixer's own; they must agree."""
    mixer_classes = getattr(mixer, "num_classes", None)
    if num_classes is None:
        num_classes = mixer_classes
    elif mixer_classes is not None and mixer_classes != num_classes:
        raise ValueError(f"num_classes: expected the mixer's num_classes ({mixer_classes}), "
                         f"got {num_classes}")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f"num_classes: expected None or an integer >= 1, got {num_classes!r}")
    return num_classes


def wrapped_targets(mixer, num_classes: int | None, inputs: Tensor, labels: Tensor) -> Tensor:
    """Labels as float ``(B, C)`` rows for a method that wraps ``mixer``: one-hot (or multi-hot with
    the mixer's ``multilabel``), then the mixer's ``label_smoothing``."""
    multilabel = getattr(mixer, "multilabel", False)
    soft = to_soft_labels(labels, num_classes, batch_size=inputs.shape[0], device=inputs.device,
                          multilabel=multilabel)
    return smooth_labels(soft, getattr(mixer, "label_smoothing", 0.0), multilabel)


def mix_soft(mixer, inputs: Tensor, soft: Tensor, params):
    """Mix with a wrapped mixer whose labels are already target rows: mixkit's mixers take them
    as they are (``apply_soft``); another mixer of the contract gets them through ``apply``."""
    if callable(getattr(mixer, "_apply_soft", None)):  # mixkit's: drawn just now, no replay checks
        return mixer._apply_soft(inputs, soft, params, None, check=False)
    return mixer.apply(inputs, soft, params)


def check_mixer(mixer, what: str = "mixer") -> None:
    """A mixer of the core contract (``sample`` and ``apply``)."""
    if not (callable(getattr(mixer, "sample", None)) and callable(getattr(mixer, "apply", None))):
        raise TypeError(f"{what}: expected a mixer with sample() and apply(), got {type(mixer).__name__}")


def draw_index(n: int, generator: torch.Generator | None) -> int:
    """A uniform choice among n, drawn on the host (no device sync, see ``host_generator``)."""
    return int(torch.randint(n, (1,), generator=host_generator(generator)))


class ModelMixer:
    """Base of the model-aware methods.

    Traits (read by the registry and the harness): ``needs_model`` (always), ``needs_originals``
    (``loss(originals, augmented, labels)`` rather than ``loss(inputs, labels)``). Subclasses set
    ``self.model`` through ``__init__``, build their hooks in ``_make_taps`` (called at the end of
    their ``__init__`` and again after unpickling), and implement ``loss``.
    """

    needs_model = True
    needs_originals = False

    def __init__(self, model: nn.Module):
        self.model = check_model(model)

    def _make_taps(self) -> None:  # pragma: no cover - every subclass has hooks
        raise NotImplementedError

    def targets(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Labels as the float ``(B, C)`` rows that get mixed, with the wrapped mixer's
        ``multilabel`` and ``label_smoothing`` (see ``mixkit.Mixer``)."""
        return wrapped_targets(self.mixer, self.num_classes, inputs, labels)

    def loss(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Soft-target cross-entropy of one mixed forward."""
        logits, soft = self(inputs, labels, generator=generator)
        return soft_target_cross_entropy(logits, soft)

    def __repr__(self) -> str:
        return init_repr(self)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "taps"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._make_taps()
