"""Reading a run directory a training left: its settings (as ``--resume`` reads them), whether
it is one at all, and the model it trained (for the analyses and the gallery)."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from ..models import build_model
from .checkpoint import CheckpointError, load_checkpoint, load_weights
from .config import TrainConfig, config_from_dict, read_yaml

__all__ = ["CHECKPOINT", "CONFIG", "saved_run", "saved_config", "check_run_dir", "load_trained_model",
           "read_final"]

CHECKPOINT, CONFIG = "checkpoint.pt", "config.yaml"


def saved_run(out: str) -> tuple[dict | None, dict, str]:
    """``(checkpoint or None, the run's settings, where they came from)``.

    The settings are the checkpoint's own resolved config, so an edited (or emptied) ``config.yaml``
    cannot change a resumed run; ``config.yaml`` only for a checkpoint written before checkpoints
    carried their config, or a run killed before its first checkpoint.
    """
    ckpt_path, cfg_path = os.path.join(out, CHECKPOINT), os.path.join(out, CONFIG)
    ckpt = load_checkpoint(ckpt_path, resume=True) if os.path.exists(ckpt_path) else None
    if ckpt is not None and ckpt.get("config") is not None:
        try:
            config_from_dict(ckpt["config"])
        except ValueError as e:
            raise CheckpointError(f"checkpoint {ckpt_path}: its config is invalid ({e})") from None
        return ckpt, dict(ckpt["config"]), f"checkpoint {ckpt_path}"
    if not os.path.exists(cfg_path):
        raise CheckpointError(f"resume: expected a run directory with {CONFIG}, found none in {out}")
    return ckpt, read_yaml(cfg_path), cfg_path


def saved_config(out: str) -> dict:
    """The settings of the run in ``out`` that ``--resume`` continues (see ``saved_run``)."""
    return saved_run(out)[1]


def check_run_dir(run_dir: str, name: str = "run_dir", *, require_config: bool = False) -> None:
    """Raise ValueError (naming the argument ``name``) unless ``run_dir`` holds a checkpoint, so
    a caller can refuse a wrong directory before doing any work. With ``require_config`` it must
    hold the run's ``config.yaml`` as well (a directory as ``mixkit train`` leaves it), and the
    message says which of the two files is missing, or that there is no such directory."""
    if not require_config:
        if not os.path.isfile(os.path.join(run_dir, CHECKPOINT)):
            raise ValueError(f"{name}: expected a mixkit run directory with {CHECKPOINT}, got {run_dir!r} "
                             "without one")
        return
    expected = f"a mixkit train run directory holding {CONFIG} and {CHECKPOINT}"
    if not os.path.isdir(run_dir):
        raise ValueError(f"{name}: expected {expected}, got no such directory")
    missing = [n for n in (CONFIG, CHECKPOINT) if not os.path.isfile(os.path.join(run_dir, n))]
    if missing:
        raise ValueError(f"{name}: expected {expected}, got a directory without {' and '.join(missing)}")


def load_trained_model(run_dir: str) -> tuple[torch.nn.Module, TrainConfig, Any]:
    """The model a run trained, for analysis: ``(model, config, data)``.

    ``model`` is built from the run's settings (those of its checkpoint, as ``--resume`` reads
    them) with the checkpoint's weights, in eval mode on the CPU; ``data`` is the data bundle it
    trained on, whose ``mean``/``std`` normalise its inputs. The weights are those of the last
    finished epoch (a finished run's final model).
    """
    from ..data.datasets import load_dataset

    check_run_dir(run_dir)
    ckpt_path, cfg_path = os.path.join(run_dir, CHECKPOINT), os.path.join(run_dir, CONFIG)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("config") is not None:
        cfg = config_from_dict(ckpt["config"], where=f"checkpoint {ckpt_path}")
    elif os.path.exists(cfg_path):
        cfg = config_from_dict(read_yaml(cfg_path), where=cfg_path)
    else:
        raise ValueError(f"run_dir: expected {CONFIG} beside a checkpoint without its config, found none "
                         f"in {run_dir!r}")
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, train_size=cfg.train_size,
                        test_size=cfg.test_size, seed=cfg.data_seed, image_size=cfg.image_size)
    model = build_model(cfg.model, num_classes=data.num_classes, input_shape=data.input_shape)
    load_weights(ckpt_path, model, ckpt["model"], cfg.model)
    return model.eval(), cfg, data


def read_final(path: str) -> dict:
    """A finished run's ``final.json``; a damaged one (not JSON, not a mapping of metrics) is a
    CheckpointError naming the file and saying how to have it written again."""
    again = ("delete it and resume the run (mixkit train --resume, or the same mixkit compare) to "
             "write it again from the checkpoint")
    try:
        with open(path, encoding="utf-8") as f:
            final = json.load(f)
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: damaged (not UTF-8 text); {again}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: damaged (not valid JSON: {e.msg}, line {e.lineno} column "
                              f"{e.colno}); {again}") from None
    if not isinstance(final, dict) or "test_error" not in final:
        got = "a mapping without it" if isinstance(final, dict) else type(final).__name__
        raise CheckpointError(f"{path}: damaged (expected a mapping of final metrics with test_error, got "
                              f"{got}); {again}")
    return final
