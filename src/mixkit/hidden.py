"""Hidden-layer mixing for any ``nn.Module``, by layer name and forward hooks.

- ``ManifoldMixup`` (Verma et al., "Manifold Mixup: Better Representations by Interpolating
  Hidden States", ICML 2019, arXiv 1806.05236): at each training forward one layer k is chosen
  uniformly from the names given (``""`` = the input itself); its output ``h`` is replaced by
  ``lam * h + (1 - lam) * h[index]`` (or any feature-space mixer, e.g. zeta-mixup's ``W @ h``) and
  the labels are mixed with the same parameters.
- ``SynerMix`` (Xu et al., "SynerMix: Synergistic Mixup Solution for Enhanced Intra-Class
  Cohesion and Inter-Class Separability in Image Classification", arXiv 2403.14137):
  ``L = beta * L_intra + (1 - beta) * L_inter``. L_intra takes the penultimate features ``h`` of
  the *unaugmented* images, builds for every class c present in the batch
  ``h_c = sum_i w_i h_i`` (``w_i ~ U(0, 1)`` normalised to sum 1 within the class) and scores
  ``CE(head(h_c), c)``, averaged over the classes present. L_inter is plain cross-entropy on the
  augmented images, or an inter-class mixer's loss (MixUp on the inputs, Manifold MixUp).
  ``beta=0.5, inter=None`` is SynerMix-Intra as published; ``beta=0.1`` with MixUp or Manifold
  MixUp is SynerMix.

The model is never changed: no subclass, no patched ``forward``. A hook is registered on the
chosen layer for one forward and removed in a ``finally`` block, so an exception leaves none
behind. Layer names are the keys of ``dict(model.named_modules())``; a model wrapped in
``torch.compile``, ``DistributedDataParallel`` or ``DataParallel`` takes the names of the model it
wraps (``"layer1"``; ``"module.layer1"`` works too), so the same names serve under DDP.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional.execution import host_readable
from .functional.mixing import check_class_ids, smooth_labels, to_soft_labels
from .functional.sampling import device_generator, host_generator
from .losses import soft_target_cross_entropy
from .mixers import MixUp
from .reprs import init_repr

__all__ = ["LayerTaps", "ManifoldMixup", "SynerMix", "intra_class_mix", "intra_class_mix_dense"]


# ---------------------------------------------------------------------------------------------
# helpers


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside any ``torch.compile``, ``DistributedDataParallel`` or ``DataParallel``
    wrappers, in whatever order they were applied."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def _module_names(model: nn.Module) -> dict[str, nn.Module]:
    """Submodules by name; a wrapped model (``torch.compile``, ``DistributedDataParallel``) is named
    as the model it wraps (``layer1``); the wrapper's own names (``module.layer1``) are accepted too."""
    inner = {name: mod for name, mod in _unwrapped(model).named_modules() if name != ""}
    outer = {name: mod for name, mod in model.named_modules() if name != "" and name not in inner
             and mod is not _unwrapped(model)}
    return {**inner, **outer}


def _name_examples(names: Sequence[str], limit: int = 8) -> str:
    top = [n for n in names if "." not in n] or list(names)
    shown = ", ".join(repr(n) for n in top[:limit])
    return shown + (", ..." if len(top) > limit else "")


def _resolve_layer(model: nn.Module, name, what: str, allow_input: bool) -> nn.Module | None:
    """The submodule called ``name``; None for ``""`` (the input) when allowed."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a layer name (str), got {type(name).__name__}")
    if name == "" and allow_input:
        return None
    modules = _module_names(model)
    if name not in modules:
        extra = " or '' for the input" if allow_input else ""
        raise ValueError(
            f"{what}: expected the name of a submodule of the model (one of "
            f"{_name_examples(list(modules))}){extra}, got {name!r}"
        )
    return modules[name]


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_labels_ids(labels, batch: int, num_classes: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.is_floating_point() \
            or labels.dtype == torch.bool or labels.is_complex():
        got = (f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, Tensor)
               else type(labels).__name__)
        raise ValueError(f"labels: expected integer class ids of shape (B,) for SynerMix, got {got}")
    if labels.shape[0] != batch:
        raise ValueError(f"labels: expected {batch} labels (one per image), got {labels.shape[0]}")
    check_class_ids(labels, num_classes)
    return labels.long()


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


def _draw_index(n: int, generator: torch.Generator | None) -> int:
    """A uniform choice among n, drawn on the host (no device sync, see ``host_generator``)."""
    return int(torch.randint(n, (1,), generator=host_generator(generator)))


class LayerTaps:
    """Forward hooks on named layers of a model, registered once and idle unless armed.

    ``with taps.armed(name, fn): model(x)`` makes layer ``name`` return ``fn(output)`` instead of
    its output during that forward; every other layer, and every forward outside ``armed``, runs
    unchanged. This is the mixing point that ``ManifoldMixup`` and ``SynerMix`` share.

    The hooks stay registered (rather than being added and removed around each forward) so that
    a ``torch.compile``d model sees the same hooks on every step: dynamo ignores hooks added after
    it compiled a module, and it guards on which layer is armed, so a training run compiles once
    per layer chosen. The hooks hold only a weak reference to this object: they are removed when
    it is garbage-collected, or at once by ``remove()``. Create it (the mixer that owns it) before
    the compiled model's first forward, or call ``torch._dynamo.reset()`` after creating it.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], what: str):
        self._armed: str | None = None
        self._fn: Callable[[Tensor], Tensor] | None = None
        self._calls = 0
        self._what = what
        me = weakref.ref(self)
        handles = []
        for name in dict.fromkeys(names):
            module = _resolve_layer(model, name, what, allow_input=False)
            handles.append(module.register_forward_hook(functools.partial(_tap_hook, me, name)))
        self._handles = handles
        self._finalizer = weakref.finalize(self, _remove_handles, handles)

    def remove(self) -> None:
        """Remove the hooks from the model now."""
        self._finalizer()

    @contextlib.contextmanager
    def armed(self, name: str, fn: Callable[[Tensor], Tensor]):
        """Within the block, layer ``name``'s output ``h`` is replaced by ``fn(h)``; raises if the
        layer did not run exactly once."""
        if not self._finalizer.alive:
            raise RuntimeError("LayerTaps: the hooks were removed; create a new mixer")
        self._armed, self._fn, self._calls = name, fn, 0
        try:
            yield
        finally:
            self._armed, self._fn = None, None
        if self._calls == 0:
            raise ValueError(f"{self._what}: expected layer {name!r} to run during the forward, got no "
                             "call (for a compiled model: create the mixer before its first forward)")


def _tap_hook(ref, name: str, module, args, output):
    taps = ref()
    if taps is None or taps._armed != name:
        return None
    taps._calls += 1
    if taps._calls > 1:
        raise ValueError(
            f"{taps._what}: expected layer {name!r} to run once per forward, got a second call; "
            "choose a module called once (a block, not a shared activation module)"
        )
    return taps._fn(output)


def _remove_handles(handles) -> None:
    for handle in handles:
        handle.remove()


# ---------------------------------------------------------------------------------------------
# Manifold Mixup


class ManifoldMixup:
    """Manifold Mixup (Verma et al., ICML 2019, arXiv 1806.05236) for any model, by layer name.

    At each training forward one layer is chosen uniformly from ``layers`` (``""`` = the input)
    and its output ``h`` is mixed, ``h~ = lam * h + (1 - lam) * h[index]`` with
    ``lam ~ Beta(alpha, alpha)``; the labels are mixed with the same parameters, and the rest of
    the forward runs on ``h~``. ``mixer`` replaces MixUp by any mixer of the core contract that
    makes sense on features (``ZetaMixup``: ``h~ = W @ h``, a combination no peer library
    offers). Mixing parameters are drawn from the hidden tensor at hook time, so their shapes
    follow the layer, from ``generator`` (torch's default when None). When ``model.training`` is
    False nothing is mixed: ``(model(inputs), one-hot labels)`` comes back.

    The model is not changed: a forward hook is registered on the chosen layer for one forward
    and removed in a ``finally`` block. The chosen module must run exactly once per forward (a
    residual block, not an activation module that a block calls twice); otherwise a ValueError
    says so. ``last_layer`` holds the name chosen at the last call.

    Example::

        >>> import torch, torch.nn as nn, mixkit
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> mm = mixkit.ManifoldMixup(net, ["", "0", "1"], alpha=2.0, num_classes=3)
        >>> x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
        >>> logits, soft = mm(x, y, generator=torch.Generator().manual_seed(0))
        >>> logits.shape, soft.shape
        (torch.Size([6, 3]), torch.Size([6, 3]))
        >>> loss = mm.loss(x, y)      # soft-target cross-entropy of the same forward
    """

    def __init__(self, model: nn.Module, layers, *, alpha: float = 2.0, num_classes: int | None = None,
                 mixer=None):
        self.model = _check_model(model)
        if isinstance(layers, str):
            layers = [layers]
        if not isinstance(layers, Sequence) or len(layers) == 0:
            raise ValueError(f"layers: expected a non-empty list of layer names, got {layers!r}")
        self.layers = list(layers)
        for name in self.layers:
            _resolve_layer(model, name, "layers", allow_input=True)
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers: expected distinct names, got {self.layers!r}")
        if mixer is None:
            mixer = MixUp(alpha=alpha, num_classes=num_classes)
        elif not (callable(getattr(mixer, "sample", None)) and callable(getattr(mixer, "apply", None))):
            raise TypeError(f"mixer: expected a mixer with sample() and apply(), got {type(mixer).__name__}")
        if getattr(mixer, "inplace", False):
            raise ValueError("mixer: expected inplace=False (autograd needs the layer's own output), "
                             "got inplace=True")
        self.num_classes = agreed_num_classes(mixer, num_classes)
        self.mixer = mixer
        self.alpha = alpha
        self.last_layer: str | None = None
        self.taps = LayerTaps(model, [n for n in self.layers if n != ""], "layers")

    def __repr__(self) -> str:
        return init_repr(self)

    def __call__(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None):
        """One forward of the model with mixing at a random layer: ``(logits, soft_labels)``."""
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs: expected a torch.Tensor, got {type(inputs).__name__}")
        return self.forward_mixed(inputs, self.targets(inputs, labels), generator)

    def targets(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Labels as the float ``(B, C)`` rows that get mixed, with the mixer's ``multilabel`` and
        ``label_smoothing`` (see ``mixkit.Mixer``)."""
        return wrapped_targets(self.mixer, self.num_classes, inputs, labels)

    def loss(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Soft-target cross-entropy of one mixed forward (the Manifold Mixup objective)."""
        logits, soft = self(inputs, labels, generator=generator)
        return soft_target_cross_entropy(logits, soft)

    def forward_mixed(self, inputs: Tensor, soft: Tensor, generator: torch.Generator | None = None, *,
                      unmixed_rows: int = 0):
        """Forward ``inputs`` with mixing at a layer drawn from ``layers``; ``soft`` are the labels
        as probabilities. The first ``unmixed_rows`` rows go through the model unmixed (SynerMix's
        single pass puts the originals there) and are left out of the result.

        Returns the logits of the mixed rows and their mixed labels.
        """
        start = unmixed_rows
        if soft.shape[0] != inputs.shape[0] - start:
            raise ValueError(f"labels: expected {inputs.shape[0] - start} labels, got {soft.shape[0]}")
        if not self.model.training:
            self.last_layer = None
            return self.model(inputs)[start:], soft
        name = self.layers[_draw_index(len(self.layers), generator)]
        self.last_layer = name
        if name == "":
            mixed, soft_out = self._mix(inputs, soft, generator, start, name)
            return self.model(mixed)[start:], soft_out
        found: dict = {}

        def mix(hidden):
            mixed, found["soft"] = self._mix(hidden, soft, generator, start, name)
            return mixed

        with self.taps.armed(name, mix):
            out = self.model(inputs)
        return out[start:], found["soft"]

    def _mix(self, hidden, soft: Tensor, generator, start: int, name: str):
        if not isinstance(hidden, Tensor):
            raise TypeError(f"layers: expected layer {name!r} to output a tensor, "
                            f"got {type(hidden).__name__}")
        if hidden.ndim < 2 or hidden.shape[0] != soft.shape[0] + start:
            raise ValueError(
                f"layers: expected layer {name!r} to output (B, *) with B = {soft.shape[0] + start}, "
                f"got shape {tuple(hidden.shape)}"
            )
        part = hidden[start:] if start else hidden
        params = self.mixer.sample(part, generator=generator)
        if callable(getattr(self.mixer, "apply_soft", None)):  # mixkit's: soft is already the targets
            mixed, soft_out = self.mixer.apply_soft(part, soft, params)
        else:
            mixed, soft_out = self.mixer.apply(part, soft, params)
        if start:
            mixed = torch.cat([hidden[:start], mixed], dim=0)
        return mixed, soft_out


# ---------------------------------------------------------------------------------------------
# SynerMix


def intra_class_mix(features: Tensor, labels: Tensor, *, weights: Tensor | None = None,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """SynerMix's intra-class mixing: one convex combination of features per class present.

    For every class c in ``labels``: ``h_c = sum_{i: y_i = c} w_i h_i / sum_{i: y_i = c} w_i``
    with raw weights ``w`` (B,) > 0, drawn ``1 - U[0, 1)`` (so in (0, 1]) from ``generator`` when
    not given. Returns ``(mixed (K, D), classes (K,))`` with the K classes present in ascending
    order. K depends on the labels, so on an accelerator this reads back one count;
    ``intra_class_mix_dense`` (what ``SynerMix`` uses) has fixed shapes and reads nothing back.
    ``features``: (B, D) (flatten first); ``labels``: int (B,).
    """
    classes = torch.unique(labels, sorted=True) if labels.numel() else labels.long()
    num_classes = int(classes.max()) + 1 if classes.numel() else 0
    mixed, _ = intra_class_mix_dense(features, labels, num_classes, weights=weights, generator=generator)
    return mixed[classes], classes


def intra_class_mix_dense(features: Tensor, labels: Tensor, num_classes: int, *,
                          weights: Tensor | None = None,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``intra_class_mix`` with one row per class id: ``(mixed (num_classes, D), present
    (num_classes,) bool)``; rows of absent classes are 0. Vectorised with segment sums
    (``index_add``), no loop over classes and no data-dependent shape."""
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"features, labels: expected shapes (B, D) and (B,), got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}")
    b = features.shape[0]
    if weights is None:
        weights = 1.0 - torch.rand(b, generator=generator, device=features.device, dtype=torch.float32)
    elif weights.shape != (b,) or (host_readable(weights) and bool((weights <= 0).any())):
        raise ValueError(f"weights: expected {b} positive weights, got shape {tuple(weights.shape)}")
    labels = labels.long()
    work = torch.float64 if features.dtype == torch.float64 else torch.float32
    w = weights.to(device=features.device, dtype=work)
    totals = torch.zeros(num_classes, dtype=work, device=features.device).index_add_(0, labels, w)
    w = w / totals[labels]
    mixed = torch.zeros(num_classes, features.shape[1], dtype=work, device=features.device)
    mixed = mixed.index_add(0, labels, features.to(work) * w[:, None])
    return mixed.to(features.dtype), totals > 0


class SynerMix:
    """SynerMix (Xu et al. 2024, arXiv 2403.14137): ``L = beta * L_intra + (1 - beta) * L_inter``.

    - ``L_intra``: the features of the unaugmented ``originals`` at ``feature_layer`` (the
      penultimate layer, e.g. ``"avgpool"`` in torchvision's ResNet, ``"global_pool"`` in timm's),
      flattened to (B, D); per class present a convex combination with uniform weights normalised
      within the class (``intra_class_mix``); ``head`` maps them to logits; cross-entropy
      against the class, averaged over the classes present.
    - ``L_inter``: on the ``augmented`` images, plain cross-entropy when ``inter=None``; the
      soft-target cross-entropy after an input-space mixer (``MixUp``, ``ZetaMixup``, ...); or
      ``inter.loss`` when ``inter`` is a ``ManifoldMixup`` of the same model.

    ``beta=0.5, inter=None`` is SynerMix-Intra and ``beta=0.1`` with MixUp / Manifold MixUp is
    SynerMix, as published. ``head`` is the name of a submodule (``"fc"``) or a callable mapping
    (K, D) to (K, num_classes). Randomness: the intra weights are drawn first, then the inter
    mixer's parameters, all from ``generator``. A term whose weight is 0 is not computed.

    Forward passes: by default two, as the official code does (originals, then augmented), so
    batch-norm layers normalise each set with its own batch statistics and update their running
    statistics twice per step. ``single_pass=True`` concatenates originals and the (mixed)
    augmented images into one batch of 2B: one forward, but batch norm then sees the statistics
    of both sets together (and the running statistics move once, towards their joint mean), so
    the originals' features depend on the augmented images of the step; results differ from the
    published two-pass loop. It needs originals and augmented of the same shape. With a
    ``ManifoldMixup`` inter, only the augmented half is mixed at the hidden layer.

    ``last_terms`` gives ``{"intra": float, "inter": float}`` of the last call (NaN for a term
    not computed), converted on access, so logging costs no device sync unless asked.

    Example::

        >>> import torch, torch.nn as nn, mixkit
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> syner = mixkit.SynerMix(net, "1", "2", beta=0.1, num_classes=3,
        ...                         inter=mixkit.MixUp(alpha=1.0, num_classes=3))
        >>> x, y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
        >>> loss = syner.loss(x, x + 0.1 * torch.randn(6, 4), y)
        >>> loss.backward()
        >>> sorted(syner.last_terms)
        ['inter', 'intra']
    """

    def __init__(self, model: nn.Module, feature_layer: str, head: str | Callable[[Tensor], Tensor], *,
                 beta: float = 0.1, inter=None, num_classes: int, single_pass: bool = False):
        self.model = _check_model(model)
        self.feature_layer = feature_layer
        self._feature_module = _resolve_layer(model, feature_layer, "feature_layer", allow_input=False)
        if isinstance(head, str):
            self.head = _resolve_layer(model, head, "head", allow_input=False)
        elif callable(head):
            self.head = head
        else:
            raise TypeError(f"head: expected a layer name or a callable, got {type(head).__name__}")
        self.head_name = head if isinstance(head, str) else None
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0.0 <= beta <= 1.0):
            raise ValueError(f"beta: expected a number in [0, 1], got {beta!r}")
        self.beta = float(beta)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        if inter is not None:
            if isinstance(inter, ManifoldMixup):
                if inter.model is not model:
                    raise ValueError("inter: expected a ManifoldMixup of the same model, got one of "
                                     f"another {type(inter.model).__name__}")
            elif not (callable(getattr(inter, "sample", None)) and callable(getattr(inter, "apply", None))):
                raise TypeError("inter: expected None, a ManifoldMixup or a mixer with sample() and "
                                f"apply(), got {type(inter).__name__}")
            found = getattr(inter, "num_classes", None)
            if found is not None and found != num_classes:
                raise ValueError(f"inter: expected num_classes={num_classes}, got a mixer with {found}")
        self.inter = inter
        self.single_pass = bool(single_pass)
        self.taps = LayerTaps(model, [feature_layer], "feature_layer")
        self._terms: dict[str, Tensor | None] = {"intra": None, "inter": None}

    def __repr__(self) -> str:
        head = self.head_name if self.head_name is not None else getattr(self.head, "__name__", "callable")
        return init_repr(self, head=repr(head))

    @property
    def last_terms(self) -> dict[str, float]:
        """``{"intra": L_intra, "inter": L_inter}`` of the last ``loss`` call as floats."""
        return {k: (math.nan if v is None else float(v)) for k, v in self._terms.items()}

    # -- the loss ------------------------------------------------------------------------------
    def loss(self, originals: Tensor, augmented: Tensor, labels: Tensor,
             generator: torch.Generator | None = None) -> Tensor:
        """``beta * L_intra(originals) + (1 - beta) * L_inter(augmented)``, a scalar tensor."""
        for name, t in (("originals", originals), ("augmented", augmented)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        b = originals.shape[0]
        if augmented.shape[0] != b:
            raise ValueError(f"augmented: expected {b} samples (as many as originals), "
                             f"got {augmented.shape[0]}")
        labels = _check_labels_ids(labels, b, self.num_classes)
        want_intra, want_inter = self.beta > 0, self.beta < 1
        self._terms = {"intra": None, "inter": None}

        weights = None
        if want_intra:
            gen = device_generator(generator, originals.device)
            weights = 1.0 - torch.rand(b, generator=gen, device=originals.device, dtype=torch.float32)

        if self.single_pass and want_intra and want_inter:
            if augmented.shape[1:] != originals.shape[1:]:
                raise ValueError(f"augmented: expected the shape of originals {tuple(originals.shape)} "
                                 f"for single_pass=True, got {tuple(augmented.shape)}")
            features, l_inter = self._inter_term(augmented, labels, generator, originals=originals)
            l_intra = self._intra_term(features[:b], labels, weights)
        else:
            l_intra = l_inter = None
            if want_intra:
                features = self._features(originals)
                l_intra = self._intra_term(features, labels, weights)
            if want_inter:
                _, l_inter = self._inter_term(augmented, labels, generator, originals=None)

        self._terms = {"intra": None if l_intra is None else l_intra.detach(),
                       "inter": None if l_inter is None else l_inter.detach()}
        if l_intra is None:
            return l_inter
        if l_inter is None:
            return l_intra
        return self.beta * l_intra + (1.0 - self.beta) * l_inter

    # -- parts -------------------------------------------------------------------------------
    def _capture(self, store: dict):
        """Arm the feature layer to record its output in ``store`` (the output is kept as it is)."""
        def keep(h):
            store["features"] = h
            return h
        return self.taps.armed(self.feature_layer, keep)

    def _features(self, originals: Tensor) -> Tensor:
        store: dict = {}
        with self._capture(store):
            self.model(originals)
        return self._check_features(store, originals.shape[0])

    def _check_features(self, store: dict, batch: int) -> Tensor:
        if "features" not in store:
            raise ValueError(f"feature_layer: expected layer {self.feature_layer!r} to run during the "
                             "forward, got no call")
        h = store["features"]
        shape = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
        if not isinstance(h, Tensor) or h.ndim < 2 or h.shape[0] != batch:
            raise ValueError(f"feature_layer: expected layer {self.feature_layer!r} to output (B, D) "
                             f"after flattening, with B = {batch}, got {shape}")
        return h.flatten(1)

    def _intra_term(self, features: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
        """Cross-entropy of the head on each present class's mixed feature, averaged over the
        classes present; one row per class id, so nothing is read back from the device."""
        mixed, present = intra_class_mix_dense(features, labels, self.num_classes, weights=weights)
        try:
            logits = self.head(mixed)
        except RuntimeError as err:
            raise ValueError(f"head: expected a map from features (K, {features.shape[1]}) to logits "
                             f"(K, {self.num_classes}), got an error on shape {tuple(mixed.shape)}: "
                             f"{err}") from err
        if not isinstance(logits, Tensor) or logits.shape != (mixed.shape[0], self.num_classes):
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"head: expected logits of shape ({mixed.shape[0]}, {self.num_classes}) "
                             f"for features of shape {tuple(mixed.shape)}, got {got}")
        classes = torch.arange(self.num_classes, device=logits.device)
        ce = F.cross_entropy(logits.float(), classes, reduction="none")
        return torch.where(present, ce, 0.0).sum() / present.sum()

    def _inter_term(self, augmented: Tensor, labels: Tensor, generator, originals: Tensor | None):
        """L_inter; with ``originals`` (single pass) also the features of the joint forward."""
        b = augmented.shape[0]
        store: dict = {}
        with self._capture(store) if originals is not None else contextlib.nullcontext():
            if isinstance(self.inter, ManifoldMixup):
                soft = self.inter.targets(augmented, labels)
                if originals is None:
                    logits, soft = self.inter.forward_mixed(augmented, soft, generator)
                else:
                    logits, soft = self.inter.forward_mixed(torch.cat([originals, augmented]), soft,
                                                            generator, unmixed_rows=b)
                l_inter = soft_target_cross_entropy(logits, soft)
            else:
                target: Tensor = labels
                inputs = augmented
                if self.inter is not None:
                    soft = to_soft_labels(labels, self.num_classes)
                    inputs, target = self.inter(augmented, soft, generator=generator)
                if originals is not None:
                    inputs = torch.cat([originals, inputs])
                logits = self.model(inputs)[-b:]
                l_inter = (F.cross_entropy(logits.float(), target) if self.inter is None
                           else soft_target_cross_entropy(logits, target))
        features = self._check_features(store, 2 * b) if originals is not None else None
        return features, l_inter
