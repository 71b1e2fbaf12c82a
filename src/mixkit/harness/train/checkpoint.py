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
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to the run."""


def save_checkpoint(path: str, state: dict) -> None:
    state = dict(state, version=CHECKPOINT_VERSION)
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str) -> dict:
    """Load with ``weights_only=True``; a corrupt or foreign file raises CheckpointError."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: not found; nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint {path}: unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "the file is damaged: delete it (and the run directory's other files) to start the run over"
        ) from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path}: expected a mixkit checkpoint of version "
                              f"{CHECKPOINT_VERSION}, got {found!r}")
    return state
