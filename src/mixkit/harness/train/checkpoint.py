"""Checkpoints of a training run, written atomically (see ``mixkit.harness.files``).

A reader never sees a half-written checkpoint: after a crash (``kill -9`` included) the file is
either the old one or the new one. Checkpoints hold tensors, numbers, strings, lists and dicts
only, so they load with ``torch.load(weights_only=True)``. The atomic writers of text and JSON are
re-exported here for the training loop.
"""

from __future__ import annotations

import os

import torch

from ..files import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["CheckpointError", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_VERSION", "RESUME_KEYS"]

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to the run."""


def save_checkpoint(path: str, state: dict) -> None:
    state = dict(state, version=CHECKPOINT_VERSION)
    atomic_write(path, lambda f: torch.save(state, f))


# What a training checkpoint must hold to be resumed from ("config", the resolved TrainConfig as a
# plain dict, is written since checkpoints carry it; older ones lack it and fall back to config.yaml).
RESUME_KEYS = ("epoch", "model", "optimizer", "scaler", "generators", "method", "history", "elapsed",
               "world_size")


def load_checkpoint(path: str, *, resume: bool = False) -> dict:
    """Load with ``weights_only=True``; a corrupt or foreign file raises CheckpointError.

    With ``resume``, also check that it holds everything a resumed run reads (``RESUME_KEYS``, a
    positive ``world_size`` with one generator state per process, a ``config`` mapping if any).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: not found; nothing to resume")
    damaged = "the file is damaged: delete it (and the run directory's other files) to start the run over"
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path}: empty (0 bytes); {damaged}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        first = (str(e).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"checkpoint {path}: unreadable ({type(e).__name__}: {first}); {damaged}") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path}: expected a mixkit checkpoint of version "
                              f"{CHECKPOINT_VERSION}, got {found!r}")
    if resume:
        _check_resumable(path, state, damaged)
    return state


def _check_resumable(path: str, state: dict, damaged: str) -> None:
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: expected the entries {', '.join(RESUME_KEYS)} of a "
                              f"training checkpoint, {', '.join(missing)} missing; {damaged}")
    ws, gens, epoch = state["world_size"], state["generators"], state["epoch"]
    if isinstance(ws, bool) or not isinstance(ws, int) or ws < 1:
        raise CheckpointError(
            f"checkpoint {path}: world_size: expected an integer >= 1, got {ws!r}; {damaged}")
    if not isinstance(gens, (list, tuple)) or len(gens) != ws:
        n = len(gens) if isinstance(gens, (list, tuple)) else type(gens).__name__
        raise CheckpointError(f"checkpoint {path}: generators: expected one state per process ({ws}), "
                              f"got {n}; {damaged}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"checkpoint {path}: epoch: expected an integer >= 0, got {epoch!r}; {damaged}")
    if not isinstance(state["history"], list):
        raise CheckpointError(f"checkpoint {path}: history: expected a list, got "
                              f"{type(state['history']).__name__}; {damaged}")
    if state.get("config") is not None and not isinstance(state["config"], dict):
        raise CheckpointError(f"checkpoint {path}: config: expected a mapping of settings, got "
                              f"{type(state['config']).__name__}; {damaged}")
