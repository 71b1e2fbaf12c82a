"""One training run, top to bottom: data, model, method, optimiser, epochs, checkpoints.

``train(cfg, out)`` writes into the run directory ``out``:

- ``config.yaml``: the resolved configuration;
- ``metrics.jsonl``: one JSON line per finished epoch (learning rate, training loss, test
  metrics, time);
- ``checkpoint.pt``: everything needed to continue after the last finished epoch (model,
  optimiser, every process's generator state, the method's state, the history), written
  atomically at the end of every epoch;
- ``final.json``: the final metrics, written last; its presence marks a finished run.

``train(cfg, out, resume=True)`` continues from ``checkpoint.pt``; on CPU the result is
bit-identical to a run never interrupted: the data order of epoch e is a pure function of
(seed, e), every other draw comes from generators whose state is checkpointed, and the learning
rate is a function of the step count.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time

import numpy as np
import torch

from mixkit.samplers import BalancedBatchSampler

from ..data.augment import augment_batch
from ..data.datasets import load_dataset
from ..models import build_model, count_parameters
from . import dist
from .checkpoint import (
    CheckpointError,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig, config_diff, config_from_dict, config_to_dict, read_yaml
from .methods import build_method
from .metrics import MetricState

__all__ = ["train", "RunExistsError", "lr_at", "FINAL", "CHECKPOINT", "CONFIG", "METRICS", "RESULT_FREE"]

FINAL, CHECKPOINT, CONFIG, METRICS = "final.json", "checkpoint.pt", "config.yaml", "metrics.jsonl"
# Fault injection for the resume tests: SIGKILL this process right after the checkpoint of the
# given epoch (1-based) is on disk.
_KILL_ENV = "MIXKIT_KILL_AFTER_EPOCH"
# Settings that may change between a run and its resume (or a finished run and a comparison that
# reuses it) without changing its results.
RESULT_FREE = ("threads", "eval_batch_size", "eval_every")


class RunExistsError(RuntimeError):
    """The run directory already holds a run and ``resume`` was not asked for."""


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def lr_at(cfg: TrainConfig, epoch_float: float) -> float:
    """Learning rate at a fractional epoch (``epoch + step / steps_per_epoch``)."""
    e, base = epoch_float, cfg.lr
    if cfg.warmup_epochs and e < cfg.warmup_epochs:
        return base * (e + 1e-12) / cfg.warmup_epochs
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "step":
        return base * cfg.lr_decay ** int(e // cfg.step_size)
    if cfg.schedule == "multistep":
        return base * cfg.lr_decay ** sum(1 for m in cfg.milestones if e >= m)
    start = cfg.warmup_epochs
    t = min(max((e - start) / max(cfg.epochs - start, 1e-12), 0.0), 1.0)
    if cfg.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    # one-cycle: 30 % linear rise from base/25, then cosine down to base/1e4
    if t < 0.3:
        return base / 25 + (base - base / 25) * t / 0.3
    u = (t - 0.3) / 0.7
    return base / 1e4 + (base - base / 1e4) * 0.5 * (1 + math.cos(math.pi * u))


def _device(name: str, info_local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: expected an available device, got {name!r} (CUDA is not available)")
        if dev.index is None:
            dev = torch.device("cuda", info_local_rank)
    return dev


def _epoch_batches(cfg, n_train, train_y, epoch, info, sampler):
    """Index batches of this process for ``epoch``: a pure function of (seed, epoch, rank)."""
    if sampler is not None:
        sampler.set_epoch(epoch)
        return [torch.as_tensor(b, dtype=torch.long) for b in sampler]
    g = torch.Generator().manual_seed(_seed(cfg.seed, 1, epoch))
    perm = torch.randperm(n_train, generator=g)
    per_rank = n_train // info.world_size
    mine = perm[info.rank::info.world_size][:per_rank]
    n_batches = per_rank // cfg.batch_size          # the last partial batch is dropped
    if n_batches == 0:
        raise ValueError(f"batch_size: expected at most {per_rank} (training samples per process), "
                         f"got {cfg.batch_size}")
    return list(mine[:n_batches * cfg.batch_size].view(n_batches, cfg.batch_size))


@torch.no_grad()
def evaluate(model, x, y, num_classes, cfg, device, info, amp_dtype) -> dict[str, float]:
    model.eval()
    state = MetricState(num_classes)
    idx = torch.arange(info.rank, x.shape[0], info.world_size)
    for start in range(0, idx.numel(), cfg.eval_batch_size):
        b = idx[start:start + cfg.eval_batch_size]
        xb = x[b.to(x.device)].to(device, non_blocking=True)
        if device.type == "cuda" and cfg.channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(xb)
        state.update(logits.float(), y[b.to(y.device)])
    state.buffer = dist.all_reduce_sum(state.buffer, info, device)
    return state.finish()


def feature_scatter(model, x, y, cfg, device) -> dict[str, float]:
    """Within/between-class scatter of the test set's penultimate features (SynerMix's claim)."""
    from ..features import penultimate_features
    from .metrics import scatter_ratios

    batches = [(x[i:i + cfg.eval_batch_size].to(device), y[i:i + cfg.eval_batch_size])
               for i in range(0, x.shape[0], cfg.eval_batch_size)]
    feats, labels = penultimate_features(model, batches, model.feature_layer, device=device)
    s = scatter_ratios(feats, labels.cpu())
    return {"scatter_within": s["within"], "scatter_between": s["between"], "scatter_ratio": s["ratio"]}


def _progress(total, desc, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def _check_run_dir(cfg: TrainConfig, out: str, resume: bool) -> dict | None:
    """Return the checkpoint to resume from (None: a fresh run)."""
    ckpt_path = os.path.join(out, CHECKPOINT)
    cfg_path = os.path.join(out, CONFIG)
    if not resume:
        if os.path.exists(ckpt_path) or os.path.exists(os.path.join(out, FINAL)):
            raise RunExistsError(f"out: {out} already holds a run; pass --resume to continue it, "
                                 "or choose another --out")
        return None
    if not os.path.exists(cfg_path):
        raise CheckpointError(f"resume: expected a run directory with {CONFIG}, found none in {out}")
    saved = config_from_dict(read_yaml(cfg_path), where=cfg_path)
    diff = config_diff(saved, cfg, ignore=RESULT_FREE)
    if diff:
        pretty = ", ".join(f"{k}: run has {a!r}, given {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"resume: the given settings differ from the run in {out} ({pretty})")
    if not os.path.exists(ckpt_path):
        return None          # killed before the first epoch ended: start over
    return load_checkpoint(ckpt_path)


def train(cfg: TrainConfig, out: str, *, resume: bool = False, progress: bool | None = None,
          log=None) -> dict:
    """Train one run into ``out`` and return its final metrics (see the module docstring)."""
    import yaml

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    env_local = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(cfg.device, env_local)
    if device.type == "cuda":
        torch.cuda.set_device(device)       # nccl collectives and all_gather_object use it
    info = dist.setup(device)
    try:
        is_main = info.is_main
        if log is None:
            def log(msg):
                if is_main:
                    print(msg, file=sys.stderr, flush=True)
        if progress is None:
            progress = sys.stderr.isatty()
        progress = progress and is_main

        final_path = os.path.join(out, FINAL)
        if resume and os.path.exists(final_path):
            import json
            _check_run_dir(cfg, out, resume=True)
            log(f"{out}: already finished")
            with open(final_path, encoding="utf-8") as f:
                return json.load(f)
        ckpt = _check_run_dir(cfg, out, resume)
        if is_main:
            os.makedirs(out, exist_ok=True)
            atomic_write_text(os.path.join(out, CONFIG),
                              yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

        # -- data ------------------------------------------------------------------------------
        data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, train_size=cfg.train_size,
                            test_size=cfg.test_size, seed=cfg.data_seed, image_size=cfg.image_size)
        k = data.num_classes
        store = device if device.type == "cuda" else torch.device("cpu")
        train_x, train_y = data.train_x.to(store), data.train_y.to(store)
        test_x, test_y = data.test_x.to(store), data.test_y.to(store)

        # -- model, method, optimiser ----------------------------------------------------------
        torch.manual_seed(_seed(cfg.seed, 0))
        model = build_model(cfg.model, num_classes=k, input_shape=data.input_shape).to(device)
        if device.type == "cuda" and cfg.channels_last and train_x.ndim == 4:
            model = model.to(memory_format=torch.channels_last)
        dist.broadcast_model(model, info)
        method = build_method(cfg, model, k)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        amp_dtype = None
        if device.type == "cuda" and cfg.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        gen = torch.Generator(device=device).manual_seed(_seed(cfg.seed, 2, info.rank))
        sampler = None
        if method.needs_originals:
            sampler = BalancedBatchSampler(train_y.cpu(), cfg.batch_size, seed=_seed(cfg.seed, 3),
                                           rank=info.rank, world_size=info.world_size)

        start_epoch, history, elapsed = 0, [], 0.0
        if ckpt is not None:
            if ckpt["world_size"] != info.world_size:
                raise CheckpointError(f"resume: the run used {ckpt['world_size']} processes, "
                                      f"this one has {info.world_size}")
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scaler.load_state_dict(ckpt["scaler"])
            gen.set_state(ckpt["generators"][info.rank])
            method.load_state_dict(ckpt["method"])
            start_epoch, history, elapsed = ckpt["epoch"], list(ckpt["history"]), ckpt["elapsed"]
            log(f"{out}: resuming after epoch {start_epoch}/{cfg.epochs}")

        n_params = count_parameters(model)
        log(f"{out}: {cfg.method} on {data.name} ({train_x.shape[0]} train, {test_x.shape[0]} test), "
            f"{cfg.model} ({n_params / 1e6:.2f} M parameters), {cfg.epochs} epochs, device {device}"
            + (f", {info.world_size} processes" if info.enabled else ""))

        kill_after = int(os.environ.get(_KILL_ENV, "0"))
        metrics: dict = history[-1] if history else {}
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            batches = _epoch_batches(cfg, train_x.shape[0], train_y, epoch, info, sampler)
            bar = _progress(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", progress)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            for i, idx in enumerate(batches):
                lr = lr_at(cfg, epoch + i / len(batches))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                idx = idx.to(store)
                originals = train_x[idx].to(device, non_blocking=True)
                labels = train_y[idx].to(device, non_blocking=True)
                if device.type == "cuda" and cfg.channels_last and originals.ndim == 4:
                    originals = originals.contiguous(memory_format=torch.channels_last)
                augmented = augment_batch(originals, cfg.augment, cfg.crop_padding, gen)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = method.loss(model, originals, augmented, labels, gen)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"epoch {epoch + 1}, step {i}: the loss is {float(loss)}; "
                                             f"lower the learning rate (lr={cfg.lr})")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                dist.average_gradients(model, info)
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach().double()
                if bar is not None:
                    bar.update(1)
                    if i % 10 == 0:
                        bar.set_postfix(loss=f"{float(loss):.3f}")
            if bar is not None:
                bar.close()
            train_loss = dist.all_reduce_sum(
                torch.stack([loss_sum.cpu(), torch.tensor(float(len(batches)), dtype=torch.float64)]),
                info, device)
            # Evaluation reads the model in eval mode without gradients or random draws, so how
            # often it runs does not change the training; the last epoch is always evaluated.
            evaluated = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
            if evaluated:
                metrics = evaluate(model, test_x, test_y, k, cfg, device, info, amp_dtype)
            elapsed += time.perf_counter() - t0
            record = {"epoch": epoch + 1, "lr": lr_at(cfg, epoch + 1 - 1e-9),
                      "train_loss": float(train_loss[0] / train_loss[1]),
                      **(metrics if evaluated else {}), "elapsed_s": round(elapsed, 3)}
            history.append(record)
            generators = dist.gather_objects(gen.get_state(), info)
            if is_main:
                save_checkpoint(os.path.join(out, CHECKPOINT), {
                    "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "generators": generators,
                    "method": method.state_dict(), "history": history, "elapsed": elapsed,
                    "world_size": info.world_size})
                import json
                atomic_write_text(os.path.join(out, METRICS),
                                  "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
            log(f"epoch {epoch + 1:>3}/{cfg.epochs}  loss {record['train_loss']:.4f}  "
                + (f"test error {metrics['test_error']:.4f}  nll {metrics['nll']:.4f}  "
                   f"ece {metrics['ece']:.4f}  " if evaluated else "")
                + f"({elapsed:.1f} s)")
            if kill_after == epoch + 1 and is_main:
                os.kill(os.getpid(), signal.SIGKILL)

        final = {k2: v for k2, v in metrics.items() if k2 not in ("epoch", "lr", "elapsed_s")}
        if is_main and hasattr(model, "feature_layer"):
            final.update(feature_scatter(model, test_x, test_y, cfg, device))
        final.update({"method": cfg.method, "dataset": cfg.dataset, "model": cfg.model, "seed": cfg.seed,
                      "epochs": cfg.epochs, "train_time_s": round(elapsed, 3), "parameters": n_params,
                      "world_size": info.world_size,
                      "train_loss": history[-1]["train_loss"] if history else float("nan")})
        if is_main:
            atomic_write_json(final_path, final)
        dist.barrier(info)
        return final
    finally:
        dist.teardown(info)
