"""Features of a model: the output of one named layer, captured by forward hook.

``LayerCapture(model, layer_name)`` keeps an idle hook on the layer (``mixkit.hidden.LayerTaps``)
and ``capture(inputs)`` runs the model once and returns that layer's output, flattened per sample.
``penultimate_features`` runs a model over a loader that way, in eval mode without gradients.
Both the training loop (the feature scatter of a finished run) and the analyses use them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mixkit.hidden import LayerTaps

__all__ = ["LayerCapture", "penultimate_features"]


class LayerCapture:
    """Capture the output of ``model``'s sub-module ``layer_name`` (as in ``model.named_modules()``).

    ``capture(inputs)`` calls ``model(inputs)`` once and returns the layer's output (the first
    element when the layer returns a tuple) as ``(B, D)`` float32 on the CPU, detached. The layer
    must run exactly once per forward (else ValueError). The model's own output is discarded and
    nothing else about the forward changes. The hook stays registered, idle outside ``capture``,
    until ``remove()`` (or the end of a ``with`` block, or garbage collection of the capture).
    """

    def __init__(self, model: nn.Module, layer_name: str):
        self.model = model
        self.layer_name = layer_name
        self._taps = LayerTaps(model, [layer_name], "layer_name")
        self._store: list[Tensor] = []

    def _keep(self, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        self._store.append(out.detach().reshape(out.shape[0], -1).float().cpu())
        return output

    def __call__(self, inputs: Tensor) -> Tensor:
        self._store.clear()
        try:
            with self._taps.armed(self.layer_name, self._keep):
                self.model(inputs)
            return self._store[0]
        finally:
            self._store.clear()

    def remove(self) -> None:
        """Remove the hook from the model now."""
        self._taps.remove()

    def __enter__(self) -> LayerCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def penultimate_features(
    model: nn.Module,
    loader,
    layer_name: str,
    *,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The output of ``model``'s sub-module ``layer_name`` (as in ``model.named_modules()``),
    flattened per sample, for every batch of ``loader`` (which yields ``(inputs, labels, ...)``).

    The model runs in eval mode under ``torch.no_grad()`` and its previous mode is restored; the
    forward hook is removed even if a batch fails. Returns ``(features (N, D) float32 on the CPU,
    labels (N,))``.
    """
    modules = dict(model.named_modules())
    if layer_name not in modules:
        names = [n for n in modules if n]
        raise ValueError(f"layer_name: expected one of {names[:20]}, got {layer_name!r}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    feats, labs = [], []
    try:
        model.eval()
        with LayerCapture(model, layer_name) as capture, torch.no_grad():
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                inputs, labels = batch[0], batch[1]
                feats.append(capture(inputs.to(device)))
                labs.append(torch.as_tensor(labels).cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("loader: expected at least one batch, got none")
    return torch.cat(feats), torch.cat(labs)
