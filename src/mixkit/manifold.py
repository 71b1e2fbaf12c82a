"""Manifold Mixup (Verma et al., "Manifold Mixup: Better Representations by Interpolating Hidden
States", ICML 2019, arXiv 1806.05236), for any ``nn.Module``, by layer name.

    k ~ U{layers} (``""`` = the input);   h_k~ = lam * h_k + (1 - lam) * h_k[index];   y~ likewise

with lam ~ Beta(alpha, alpha), or any feature-space mixer in place of MixUp (zeta-mixup's
``W @ h``). Draws, in order: the layer (on the host), then the mixer's parameters from the
hidden tensor at hook time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .hooks import LayerTaps
from .mixers import MixUp
from .model import ModelMixer, agreed_num_classes, check_mixer, draw_index, mix_soft, resolve_layer

__all__ = ["ManifoldMixup"]


class ManifoldMixup(ModelMixer):
    """Manifold Mixup (Verma et al., ICML 2019, arXiv 1806.05236) for any model, by layer name.

    At each training forward one layer is chosen uniformly from ``layers`` (``""`` = the input)
    and its output ``h`` is mixed, ``h~ = lam * h + (1 - lam) * h[index]`` with
    ``lam ~ Beta(alpha, alpha)``; the labels are mixed with the same parameters, and the rest of
    the forward runs on ``h~``. ``mixer`` replaces MixUp by any mixer of the core contract that
    makes sense on features (``ZetaMixup``: ``h~ = W @ h``, a combination no peer library
    offers). Mixing parameters are drawn from the hidden tensor at hook time, so their shapes
    follow the layer, from ``generator`` (torch's default when None). When ``model.training`` is
    False nothing is mixed: ``(model(inputs), one-hot labels)`` comes back.

    The model is not changed: one forward hook per named layer is registered at construction and
    stays idle outside a mixed forward (``mixkit.hooks``); ``mm.taps.remove()`` removes them, as
    does dropping the mixer. The chosen module must run exactly once per forward (a residual
    block, not an activation module that a block calls twice); otherwise a ValueError says so.
    ``last_layer`` holds the name chosen at the last call.

    Example:

    ```python
    >>> import torch, torch.nn as nn, mixkit
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> mm = mixkit.ManifoldMixup(net, ["", "0", "1"], alpha=2.0, num_classes=3)
    >>> x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    >>> logits, soft = mm(x, y, generator=torch.Generator().manual_seed(0))
    >>> logits.shape, soft.shape
    (torch.Size([6, 3]), torch.Size([6, 3]))
    >>> loss = mm.loss(x, y)      # soft-target cross-entropy of the same forward

    ```
    """

    def __init__(self, model: nn.Module, layers, *, alpha: float = 2.0, num_classes: int | None = None,
                 mixer=None):
        super().__init__(model)
        if isinstance(layers, str):
            layers = [layers]
        if not isinstance(layers, Sequence) or len(layers) == 0:
            raise ValueError(f"layers: expected a non-empty list of layer names, got {layers!r}")
        self.layers = list(layers)
        for name in self.layers:
            resolve_layer(model, name, "layers", allow_input=True)
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers: expected distinct names, got {self.layers!r}")
        if mixer is None:
            mixer = MixUp(alpha=alpha, num_classes=num_classes)
        else:
            check_mixer(mixer)
        if getattr(mixer, "inplace", False):
            raise ValueError("mixer: expected inplace=False (autograd needs the layer's own output), "
                             "got inplace=True")
        self.num_classes = agreed_num_classes(mixer, num_classes)
        self.mixer = mixer
        self.alpha = alpha
        self.last_layer: str | None = None
        self._make_taps()

    def _make_taps(self) -> None:
        self.taps = LayerTaps(self.model, [n for n in self.layers if n != ""], "layers")

    def __call__(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None):
        """One forward of the model with mixing at a random layer: ``(logits, soft_labels)``."""
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs: expected a torch.Tensor, got {type(inputs).__name__}")
        return self.forward_mixed(inputs, self.targets(inputs, labels), generator)

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
        name = self.layers[draw_index(len(self.layers), generator)]
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
        mixed, soft_out = mix_soft(self.mixer, part, soft, params)
        if start:
            mixed = torch.cat([hidden[:start], mixed], dim=0)
        return mixed, soft_out
