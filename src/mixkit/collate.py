"""Mixing in DataLoader workers: a picklable ``collate_fn`` that holds a mixer and its generator.

``DataLoader(dataset, batch_size=128, num_workers=4, collate_fn=MixingCollate(mixer, generator=g))``
collates a batch (``default_collate`` unless another ``collate`` is given) and mixes it in the
worker, so the training loop receives ``(mixed, soft_labels, *rest)``. Samples that are dicts
(``{"image": t, "label": int}``, ``{"pixel_values": t, "labels": int}``) collate to a dict batch,
which comes back as a dict of the same keys, images mixed and labels as soft rows (the keys are
found as a mixer finds them, ``mixkit.inputs``; ``labels_getter`` as there).

Workers and seeds: every worker starts with a copy of ``g``; on its first draw the copy is
re-seeded from its own state and the worker's seed (``torch.utils.data.get_worker_info().seed``,
which the DataLoader derives from its ``generator``, the epoch and the worker id). So each worker
and each epoch draws differently, and a run repeats exactly when both the DataLoader's generator
and ``g`` are seeded the same. The generator is pickled as its state (a list of bytes), so the
collate works under the ``spawn`` start method too, where torch's shared-memory pickling of a
generator fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch.utils.data import default_collate

from .inputs import check_labels_getter, unpack_dict
from .reprs import init_repr

__all__ = ["MixingCollate"]


class MixingCollate:
    """``collate_fn`` that mixes each batch: ``(inputs, labels, *rest) -> (mixed, soft, *rest)``.

    ``mixer``: any mixer or combination (``sample`` + ``apply``). ``generator``: a CPU
    ``torch.Generator`` (None: torch's default one, which the DataLoader seeds per worker).
    ``collate``: how samples become a batch; it must return ``(inputs, labels, ...)`` or a dict
    (then ``{..., images key: mixed, labels key: soft}`` comes back). ``labels_getter``: where a
    dict batch's labels are, ``"default"`` (the key ``"labels"`` or ``"label"``) or a callable
    ``batch -> labels``.

    Example:

    ```python
    >>> import torch, mixkit
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = TensorDataset(torch.rand(16, 3, 8, 8), torch.arange(16) % 4)
    >>> collate = mixkit.MixingCollate(mixkit.MixUp(num_classes=4),
    ...                                generator=torch.Generator().manual_seed(0))
    >>> mixed, soft = next(iter(DataLoader(data, batch_size=8, collate_fn=collate)))
    >>> soft.shape
    torch.Size([8, 4])

    ```
    """

    def __init__(self, mixer, *, generator: torch.Generator | None = None,
                 collate: Callable = default_collate, labels_getter="default"):
        if not (callable(getattr(mixer, "sample", None)) and callable(getattr(mixer, "apply", None))):
            raise TypeError(f"mixer: expected a mixer with sample() and apply(), got {type(mixer).__name__}")
        if generator is not None and (not isinstance(generator, torch.Generator)
                                      or generator.device.type != "cpu"):
            got = type(generator).__name__ if not isinstance(generator, torch.Generator) else \
                f"one on {generator.device}"
            raise ValueError(f"generator: expected None or a CPU torch.Generator, got {got}")
        if not callable(collate):
            raise TypeError(f"collate: expected a callable, got {type(collate).__name__}")
        self.mixer = mixer
        self.generator = generator
        self.collate = collate
        self.labels_getter = check_labels_getter(labels_getter)

    def __call__(self, samples):
        batch = self.collate(samples)
        if isinstance(batch, Mapping):
            inputs, labels, pack = unpack_dict(batch, type(self).__name__, self.labels_getter)
            return pack(*self.mixer(inputs, labels, generator=self.generator))
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            sized = isinstance(batch, (tuple, list))
            got = f"a {type(batch).__name__}" + (f" of {len(batch)}" if sized else "")
            raise ValueError(f"collate: expected batches of (inputs, labels, ...) or a dict, got {got}")
        inputs, labels, *rest = batch
        mixed, soft = self.mixer(inputs, labels, generator=self.generator)
        return (mixed, soft, *rest)

    def __repr__(self) -> str:
        gen = None if self.generator is None else f"torch.Generator(seed={self.generator.initial_seed()})"
        return init_repr(self, **({} if gen is None else {"generator": gen}))

    # A generator travels as its state: torch's shared-memory pickling of it breaks under spawn.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.generator is not None:
            state["generator"] = self.generator.get_state().tolist()
        return state

    def __setstate__(self, state: dict) -> None:
        saved = state.get("generator")
        if saved is not None:
            generator = torch.Generator()
            generator.set_state(torch.tensor(saved, dtype=torch.uint8))
            state = {**state, "generator": generator}
        self.__dict__.update(state)
