"""Atomic files: checkpoints, JSON and text written to a temporary file and renamed.

A reader never sees a half-written file: ``os.replace`` is atomic on POSIX, so after a crash
(``kill -9`` included) the file is either the old one or the new one. Checkpoints hold tensors,
numbers, strings, lists and dicts only, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import torch

__all__ = ["CheckpointError", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to the run."""


def _atomic(path: str, write) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path: str, state: dict) -> None:
    state = dict(state, version=CHECKPOINT_VERSION)
    _atomic(path, lambda f: torch.save(state, f))


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
