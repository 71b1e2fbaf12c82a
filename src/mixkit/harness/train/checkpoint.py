"""Checkpoints of a training run, written atomically (see ``mixkit.harness.files``).

A reader never sees a half-written checkpoint: after a crash (``kill -9`` included) the file is
either the old one or the new one. Checkpoints hold tensors, numbers, strings, lists and dicts
only, so they load with ``torch.load(weights_only=True)``. The atomic writers of text and JSON are
re-exported here for the training loop.
"""

from __future__ import annotations

import os
import pickle
import re

import torch

from ..files import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["CheckpointError", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_VERSION", "RESUME_KEYS", "load_weights",
           "restore", "check_progress"]

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to the run."""


class _Writes:
    """A file that remembers the OSError its ``write`` raised: torch's writer turns it into a
    RuntimeError of its own (``unexpected pos ...``), which would hide a full disk."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` (and the version) to ``path`` atomically; a full disk is an OSError(ENOSPC)
    naming the file (see ``files.atomic_write``), the previous checkpoint left whole."""
    state = dict(state, version=CHECKPOINT_VERSION)

    def write(f) -> None:
        out = _Writes(f)
        try:
            torch.save(state, out)
        except RuntimeError:
            if out.error is not None:
                raise out.error from None
            raise
    atomic_write(path, write)


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
    except pickle.UnpicklingError as e:
        raise _unpickling_error(path, str(e), damaged) from None
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


def _unpickling_error(path: str, text: str, damaged: str) -> CheckpointError:
    """torch's weights-only refusal, retold: a file naming Python objects (GLOBAL) may run code
    when loaded; anything else is damage. torch's advice to load it unsafely is not repeated."""
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return CheckpointError(
            f"checkpoint {path}: refused: it holds Python objects ({named.group(1)}) besides tensors and "
            "plain data, and loading those may run code from the file; mixkit writes no such objects, so "
            "the file is not one it wrote or was tampered with: delete it or put back a copy you trust")
    lines = [s.strip() for s in text.split("WeightsUnpickler error:")[-1].splitlines()]
    detail = next((s for s in lines if s and "weights_only" not in s and not s.startswith("Check the")), "")
    return CheckpointError(f"checkpoint {path}: unreadable (UnpicklingError: {detail}); {damaged}")


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


_FOREIGN = "the file was edited or belongs to another run"


def load_weights(path: str, model: torch.nn.Module, weights, name: str) -> None:
    """``model.load_state_dict(weights)``, after checking that ``weights`` are those of ``model``
    (the model ``name`` the checkpoint's config names): CheckpointError naming the file otherwise."""
    mine = model.state_dict()
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path}: model: expected a mapping of tensors, got "
                              f"{type(weights).__name__}; {_FOREIGN}")
    missing = [k for k in mine if k not in weights]
    unknown = [k for k in weights if k not in mine]
    shapes = [k for k in mine if k in weights and (not isinstance(weights[k], torch.Tensor)
                                                    or weights[k].shape != mine[k].shape)]
    if missing or unknown or shapes:
        example = (missing or unknown or shapes)[0]
        raise CheckpointError(
            f"checkpoint {path}: model: its weights are not those of {name}, the model its config names "
            f"({len(missing)} of {name}'s {len(mine)} tensors missing, {len(unknown)} unknown, "
            f"{len(shapes)} of another shape; e.g. {example!r}); {_FOREIGN}")
    model.load_state_dict(weights)


def restore(path: str, entry: str, load, value) -> None:
    """``load(value)`` (a ``load_state_dict`` or ``set_state``); a failure is a CheckpointError
    naming the file and the entry, not the loader's own message alone."""
    try:
        load(value)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"checkpoint {path}: {entry}: does not fit this run ({type(e).__name__}: "
                              f"{first}); {_FOREIGN}") from None


def check_progress(path: str, state: dict, epochs: int, generator: torch.Generator, rank: int) -> None:
    """The checkpoint's position fits the run: at most ``epochs`` epochs done, one history record
    per epoch, and this process's generator state one of ``generator``'s kind."""
    done, history = state["epoch"], state["history"]
    if done > epochs:
        raise CheckpointError(f"checkpoint {path}: epoch: expected at most the run's {epochs} epochs done, "
                              f"got {done}; {_FOREIGN}")
    if len(history) != done:
        raise CheckpointError(f"checkpoint {path}: history: expected one record per epoch done ({done}), "
                              f"got {len(history)}; {_FOREIGN}")
    want, got = generator.get_state(), state["generators"][rank]
    if not (isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape):
        what = (f"{got.dtype} of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                else type(got).__name__)
        raise CheckpointError(f"checkpoint {path}: generators[{rank}]: expected a {generator.device} "
                              f"generator state ({want.numel()} bytes, {want.dtype}), got {what}; {_FOREIGN}")
