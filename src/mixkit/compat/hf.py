"""A Hugging Face ``transformers`` data collator that mixes each batch: ``MixingDataCollator``.

Image-classification datasets prepared for ``transformers`` yield features ``{"pixel_values":
(C, H, W) tensor, "labels": int}`` (or ``"label"``); ``MixingDataCollator(mixer)`` stacks a list
of them into ``{"pixel_values": (B, C, H, W), "labels": (B, K) float}``, the images mixed and the
labels as soft rows, other keys collated and passed through. It is a ``mixkit.MixingCollate``, so
it pickles into ``DataLoader`` workers (``dataloader_num_workers``) with its generator.

The loss. Given float labels, a ``*ForImageClassification`` model whose ``config.problem_type``
is unset takes them for multi-label targets and computes a binary cross-entropy; with
``problem_type="single_label_classification"`` it flattens them for ``F.cross_entropy`` and
fails. No problem type gives a soft-target cross-entropy, so compute the loss from the logits,
in a ``Trainer`` subclass:

```python
class SoftTargetTrainer(transformers.Trainer):
    loss_is_scaled_for_ga = False        # a per-batch mean: the Trainer scales it for accumulation

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")    # soft rows (training) or class ids (evaluation)
        outputs = model(**inputs)
        loss = mixkit.soft_target_cross_entropy(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss
```

The ``Trainer`` hands its one ``data_collator`` to the evaluation loader too; see
``docs/integrations.md`` for keeping evaluation batches unmixed. Importing this module needs
torch alone (not ``transformers``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import default_collate

from ..collate import MixingCollate

__all__ = ["MixingDataCollator", "collate_features"]

# the names transformers' own default_data_collator gives the labels, renamed to what models take
_LABEL_NAMES = ("label", "label_ids")


def collate_features(features) -> dict:
    """A list of feature dicts as one dict batch (``default_collate`` on each key), the labels
    under ``"labels"`` where they came as ``"label"`` or ``"label_ids"``."""
    if not isinstance(features, (list, tuple)) or not features \
            or not all(isinstance(f, Mapping) for f in features):
        got = type(features).__name__ if not isinstance(features, (list, tuple)) or not features else \
            ", ".join(sorted({type(f).__name__ for f in features}))
        raise TypeError(f"features: expected a non-empty list of feature dicts, got {got}")
    batch = default_collate([dict(f) for f in features])
    for name in _LABEL_NAMES:
        if name in batch and "labels" not in batch:
            batch["labels"] = batch.pop(name)
    return batch


class MixingDataCollator(MixingCollate):
    """``data_collator`` for ``transformers.Trainer``: ``[{"pixel_values": (C, H, W), "labels":
    int}, ...] -> {"pixel_values": (B, C, H, W) mixed, "labels": (B, K) float}``.

    ``mixer``: any mixkit mixer or combination (with ``num_classes`` for integer labels).
    ``generator``: a CPU ``torch.Generator`` (None: torch's default one). ``labels_getter``:
    ``"default"`` (the key ``"labels"``) or a callable ``batch -> labels``.

    Example:

    ```python
    >>> import torch, mixkit
    >>> from mixkit.compat.hf import MixingDataCollator
    >>> collator = MixingDataCollator(mixkit.CutMix(num_classes=4),
    ...                               generator=torch.Generator().manual_seed(0))
    >>> batch = collator([{"pixel_values": torch.rand(3, 16, 16), "labels": i % 4} for i in range(8)])
    >>> batch["pixel_values"].shape, batch["labels"].shape
    (torch.Size([8, 3, 16, 16]), torch.Size([8, 4]))

    ```

    """

    def __init__(self, mixer, *, generator: torch.Generator | None = None, labels_getter="default"):
        super().__init__(mixer, generator=generator, collate=collate_features, labels_getter=labels_getter)
