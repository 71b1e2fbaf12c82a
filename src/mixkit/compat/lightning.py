"""A Lightning callback that mixes every training batch: ``MixBatch(mixer, seed=0)``.

``MixBatch`` runs in ``on_train_batch_start``, after Lightning has moved the batch to the device,
and replaces the inputs and labels in the batch container itself, so ``training_step`` receives
``(mixed, soft_labels, *rest)``. Validation, test and predict batches are never touched, so
``validation_step`` still sees the original inputs and integer labels.

Batches: a list ``[inputs, labels, *rest]`` (what ``DataLoader``'s ``default_collate`` makes from
tuple samples) or a dict, whose inputs and labels sit under ``input_key`` and ``label_key``
(``"image"`` and ``"label"`` by default). A tuple cannot be changed in place: return lists from a
custom ``collate_fn`` or use a dict.

True labels: with ``keep_labels=True`` the batch also carries the labels as they came (row i of
the mixed batch is sample i, with weight lam of its own label): a list batch becomes ``[mixed,
soft, *rest, labels]``, a dict batch gains ``batch[label_key + "_original"]``. That is the path to a
training accuracy, or to torchmetrics' ``MulticlassAccuracy`` (which refuses soft targets), on the
mixed inputs: ``(logits.argmax(1) == labels).float().mean()``.

Draws and DDP: with ``seed``, draws come from a CPU generator seeded from ``(seed, global_rank)``,
so the ranks of a DDP run mix differently and a rerun repeats. Rank 0 uses ``seed`` itself, so a
one-device run with ``seed=s`` draws like ``generator=torch.Generator().manual_seed(s)``. A
``generator`` given is used as it is on every rank (seed it per rank yourself); with neither,
torch's default generator is used and nothing is saved.

Checkpoints: ``state_dict`` holds the generator state (a uint8 tensor's list) and the mixer's
state where it has one (``mixkit.Alternate``'s position), so resuming with ``ckpt_path`` continues
the same draws. Lightning writes the state of rank 0 only; on another rank a resumed run reseeds
from ``(seed, rank, batches mixed so far)``: reproducible and distinct per rank, but not the draws
that rank would have made without the interruption.

Example:

```python
import lightning.pytorch as pl
import torch
import mixkit
from mixkit.compat.lightning import MixBatch

class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, y_true = batch[0], batch[1], batch[-1]   # mixed inputs, soft labels (B, 10), class ids
        logits = self(x)
        loss = mixkit.soft_target_cross_entropy(logits, y)
        self.log("train_loss", loss)
        self.log("train_acc", (logits.argmax(1) == y_true).float().mean())   # keep_labels=True
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]                 # untouched: original inputs, class ids
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

mix = MixBatch(mixkit.MixUp(alpha=1.0, num_classes=10), seed=0, keep_labels=True)
trainer = pl.Trainer(max_epochs=10, callbacks=[mix])
trainer.fit(Classifier(), train_loader, val_loader)

```
"""

from __future__ import annotations

from typing import Any

import torch

try:
    from lightning.pytorch import Callback
except ImportError as err:  # tests hide lightning to check this message
    raise ImportError(
        f"mixkit.compat.lightning needs Lightning (lightning.pytorch), which could not be imported "
        f"({err}); install it with: pip install lightning"
    ) from err

__all__ = ["MixBatch"]

_SEED_LIMIT = 2**63
_RANK_STEP = 0x9E3779B97F4A7C15  # odd 64-bit constants for mixing (seed, rank, count) into one seed
_COUNT_STEP = 0xC2B2AE3D27D4EB4F


def _rank_seed(seed: int, rank: int, count: int = 0) -> int:
    return (seed + rank * _RANK_STEP + count * _COUNT_STEP) % _SEED_LIMIT


def _check_key(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name}: expected a non-empty str (a key of the batch dict), got {value!r}")
    return value


def _check_generator_state(saved) -> None:
    """A saved generator state: None, or the bytes of a CPU generator's state."""
    if saved is None:
        return
    size = torch.Generator().get_state().numel()
    ok = (isinstance(saved, (list, tuple)) and len(saved) == size
          and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in saved))
    if not ok:
        got = f"{len(saved)} values" if isinstance(saved, (list, tuple)) else type(saved).__name__
        raise ValueError(f"state_dict: expected 'generator' as None or a CPU generator state ({size} byte "
                         f"values), got {got}")


class MixBatch(Callback):
    """Mix each training batch on its device: ``[inputs, labels, *rest]`` or a dict.

    ``mixer``: any mixkit mixer or combination (``mixer(inputs, labels, generator=g)`` with
    ``sample`` and ``apply``). ``generator``: a CPU ``torch.Generator`` used as it is, or
    ``seed``: an int from which each rank's generator is made (not both; neither: torch's
    default generator). ``input_key``, ``label_key``: where a dict batch holds the inputs and the
    labels (lists use positions 0 and 1). ``keep_labels``: also pass the labels as they came, last
    in a list batch, under ``label_key + "_original"`` in a dict batch.
    """

    def __init__(self, mixer, *, generator: torch.Generator | None = None, seed: int | None = None,
                 input_key: str = "image", label_key: str = "label", keep_labels: bool = False):
        super().__init__()
        if not (callable(mixer) and callable(getattr(mixer, "sample", None))
                and callable(getattr(mixer, "apply", None))):
            raise TypeError(f"mixer: expected a mixkit mixer (callable, with sample() and apply()), "
                            f"got {type(mixer).__name__}")
        if generator is not None and (not isinstance(generator, torch.Generator)
                                      or generator.device.type != "cpu"):
            got = (type(generator).__name__ if not isinstance(generator, torch.Generator)
                   else f"one on {generator.device}")
            raise ValueError(f"generator: expected None or a CPU torch.Generator, got {got}")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(f"seed: expected None or an int, got {type(seed).__name__}")
            if not 0 <= seed < _SEED_LIMIT:
                raise ValueError(f"seed: expected an int in [0, 2**63), got {seed}")
            if generator is not None:
                raise ValueError("seed, generator: expected at most one of them, got both; pass seed "
                                 "for per-rank generators or generator to use your own")
        self.mixer = mixer
        self.generator = generator
        self.seed = seed
        self.input_key = _check_key("input_key", input_key)
        self.label_key = _check_key("label_key", label_key)
        if input_key == label_key:
            raise ValueError(f"input_key, label_key: expected two different keys, got {input_key!r} twice")
        if not isinstance(keep_labels, bool):
            raise TypeError(f"keep_labels: expected True or False, got {keep_labels!r}")
        self.keep_labels = keep_labels
        self.batches = 0  # training batches mixed, across resumes
        self._rank: int | None = None
        self._pending: dict | None = None  # a state loaded before the rank was known

    # -- Lightning hooks ---------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        self._attach(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._attach(trainer)
        inputs, labels = self._unpack(batch)
        with torch.no_grad():
            mixed, soft = self.mixer(inputs, labels, generator=self.generator)
        if isinstance(batch, dict):
            if self.keep_labels:
                self._keep(batch, labels)
            batch[self.input_key], batch[self.label_key] = mixed, soft
        else:
            batch[0], batch[1] = mixed, soft
            if self.keep_labels:
                batch.append(labels)
        self.batches += 1

    def _keep(self, batch: dict, labels) -> None:
        key = self.label_key + "_original"
        if key in batch:
            raise ValueError(f"batch: expected no key {key!r} (keep_labels=True puts the original labels "
                             f"there), got a batch that has one; rename it or pick another label_key")
        batch[key] = labels

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "generator": None if self.generator is None else self.generator.get_state().tolist(),
            "seed": self.seed,
            "rank": self._rank,
            "batches": self.batches,
        }
        if callable(getattr(self.mixer, "state_dict", None)):
            state["mixer"] = self.mixer.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict) or "generator" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"state_dict: expected a MixBatch state with a 'generator' entry, got {got}")
        _check_generator_state(state_dict["generator"])
        batches = state_dict.get("batches", 0)
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 0:
            raise ValueError(f"state_dict: expected 'batches' as an integer >= 0, got {batches!r}")
        self.batches = batches
        if "mixer" in state_dict and callable(getattr(self.mixer, "load_state_dict", None)):
            self.mixer.load_state_dict(state_dict["mixer"])
        if self._rank is None:
            self._pending = state_dict  # the generator is made once the rank is known
        else:
            self._restore_generator(state_dict)

    # -- helpers -----------------------------------------------------------------------------
    def _attach(self, trainer) -> None:
        """Learn the rank; make the seeded generator (once) and apply a state loaded before."""
        if self._rank is not None:
            return
        self._rank = int(getattr(trainer, "global_rank", 0))
        if self.seed is not None:
            self.generator = torch.Generator().manual_seed(_rank_seed(self.seed, self._rank))
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._restore_generator(pending)

    def _restore_generator(self, state: dict) -> None:
        saved = state["generator"]
        if saved is None:
            return
        saved_rank = state.get("rank")
        if self.seed is not None and saved_rank is not None and saved_rank != self._rank:
            # Lightning saved another rank's state: reseed, so that ranks still draw differently.
            self.generator = torch.Generator().manual_seed(_rank_seed(self.seed, self._rank, self.batches))
            return
        if self.generator is None:
            self.generator = torch.Generator()
        self.generator.set_state(torch.tensor(saved, dtype=torch.uint8))

    def _unpack(self, batch):
        if isinstance(batch, dict):
            if self.input_key not in batch or self.label_key not in batch:
                keys = f"{self.input_key!r} and {self.label_key!r}"
                raise ValueError(f"batch: expected a dict with keys {keys} (input_key, label_key), "
                                 f"got keys {sorted(map(str, batch))}")
            return batch[self.input_key], batch[self.label_key]
        if isinstance(batch, tuple):
            raise TypeError(
                f"batch: expected a list [inputs, labels, ...] or a dict that MixBatch can change in "
                f"place, got a tuple of {len(batch)}; return lists from your collate_fn (default_collate "
                "does) or use dict batches"
            )
        if isinstance(batch, list):
            if len(batch) < 2:
                raise ValueError(f"batch: expected a list [inputs, labels, ...], got a list of {len(batch)}")
            return batch[0], batch[1]
        raise TypeError(f"batch: expected a list [inputs, labels, ...] or a dict, got {type(batch).__name__}")

    def __repr__(self) -> str:
        parts = [repr(self.mixer)]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        elif self.generator is not None:
            parts.append(f"generator=torch.Generator(seed={self.generator.initial_seed()})")
        for key, default in (("input_key", "image"), ("label_key", "label"), ("keep_labels", False)):
            if getattr(self, key) != default:
                parts.append(f"{key}={getattr(self, key)!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
