"""SynerMix (Xu et al., "SynerMix: Synergistic Mixup Solution for Enhanced Intra-Class Cohesion
and Inter-Class Separability in Image Classification", arXiv 2403.14137).

    L = beta * L_intra + (1 - beta) * L_inter
    L_intra = mean over classes c present of CE(head(h_c), c),  h_c = sum_{y_i = c} w_i h_i / sum w_i

with ``h`` the penultimate features of the *unaugmented* images and ``w_i ~ U(0, 1]``; L_inter is
plain cross-entropy on the augmented images, or an inter-class mixer's loss (MixUp on the inputs,
Manifold MixUp). ``beta=0.5, inter=None`` is SynerMix-Intra as published; ``beta=0.1`` with MixUp
or Manifold MixUp is SynerMix. Draws, in order: the intra weights, then the inter mixer's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional.execution import host_readable
from .functional.mixing import check_class_ids, to_soft_labels
from .functional.sampling import device_generator
from .hooks import LayerTaps
from .losses import soft_target_cross_entropy
from .manifold import ManifoldMixup
from .model import ModelMixer, resolve_layer
from .reprs import init_repr

__all__ = ["SynerMix", "intra_class_mix", "intra_class_mix_dense"]


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


class SynerMix(ModelMixer):
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

    Example:

    ```python
    >>> import torch, torch.nn as nn, mixkit
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> syner = mixkit.SynerMix(net, "1", "2", beta=0.1, num_classes=3,
    ...                         inter=mixkit.MixUp(alpha=1.0, num_classes=3))
    >>> x, y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    >>> loss = syner.loss(x, x + 0.1 * torch.randn(6, 4), y)
    >>> loss.backward()
    >>> sorted(syner.last_terms)
    ['inter', 'intra']

    ```
    """

    needs_originals = True

    def __init__(self, model: nn.Module, feature_layer: str, head: str | Callable[[Tensor], Tensor], *,
                 beta: float = 0.1, inter=None, num_classes: int, single_pass: bool = False):
        super().__init__(model)
        self.feature_layer = feature_layer
        resolve_layer(model, feature_layer, "feature_layer", allow_input=False)
        if isinstance(head, str):
            self.head = resolve_layer(model, head, "head", allow_input=False)
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
        self._terms: dict[str, Tensor | None] = {"intra": None, "inter": None}
        self._make_taps()

    def _make_taps(self) -> None:
        self.taps = LayerTaps(self.model, [self.feature_layer], "feature_layer")

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
        b = originals.shape[0] if originals.ndim else 0
        if b == 0:
            raise ValueError(f"originals: expected a batch of at least one sample, "
                             f"got shape {tuple(originals.shape)}")
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
