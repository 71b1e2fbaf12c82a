"""One training run, top to bottom: data, model, method, optimiser, epochs, checkpoints.

``train(cfg, out)`` writes into the run directory ``out``:

- ``config.yaml``: the resolved configuration;
- ``metrics.jsonl``: one JSON line per finished epoch (learning rate, training loss, test
  metrics, time);
- ``checkpoint.pt``: everything needed to continue after the last finished epoch (model,
  optimiser, every process's generator state, the method's state, the history), written
  atomically at the end of every epoch;
- ``final.json``: the final metrics and the run's provenance (code version, machine, time; see
  ``harness.provenance``), written last; its presence marks a finished run.

``train(cfg, out, resume=True)`` continues from ``checkpoint.pt``; on CPU the result is
bit-identical to a run never interrupted: the data order of epoch e is a pure function of
(seed, e), every other draw comes from generators whose state is checkpointed, and the learning
rate is a function of the step count.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mixkit.samplers import BalancedBatchSampler

from ..models import build_model, count_parameters
from ..provenance import provenance, utc_now
from ..rundir import lock_run_dir
from . import dist
from .checkpoint import (
    CheckpointError,
    atomic_write_json,
    atomic_write_text,
    check_progress,
    load_weights,
    restore,
    save_checkpoint,
)
from .config import (
    TrainConfig,
    balanced_batches,
    config_diff,
    config_from_dict,
    config_to_dict,
    needs_originals,
)
from .feed import MemoryFeed, StreamFeed, build_feed, epoch_batches, stable_seed
from .methods import build_method
from .metrics import MetricState
from .saved import CHECKPOINT, CONFIG, check_run_dir, load_trained_model, read_final, saved_config, saved_run

__all__ = ["train", "RunExistsError", "DivergedError", "lr_at", "FINAL", "CHECKPOINT", "CONFIG", "METRICS",
           "RESULT_FREE", "EPOCH_END_HOOKS", "check_run_dir", "load_trained_model", "saved_config"]

# CHECKPOINT and CONFIG, the files a run directory holds, and the readers of a finished run
# (check_run_dir, load_trained_model, saved_config) are ``saved``'s, re-exported here.
FINAL, METRICS = "final.json", "metrics.jsonl"
# Called on every process at the end of every epoch, once its checkpoint is on disk and its line
# logged, as ``hook(epoch=<epochs finished, 1-based>, info=<the process's DistInfo>)``. The
# harness never adds one: tests do (the resume tests SIGKILL the process after an epoch).
EPOCH_END_HOOKS: list[Callable[..., None]] = []
# Settings that may change between a run and its resume (or a finished run and a comparison that
# reuses it) without changing its results. Not eval_batch_size: the test NLL is summed batch by
# batch in float32, so another evaluation batch size changes its last bits (2.3026995849609375
# against 2.302699515024821 for 512 and 7 on digits).
RESULT_FREE = ("threads", "eval_every", "workers")


class RunExistsError(RuntimeError):
    """The run directory already holds a run and ``resume`` was not asked for."""


class DivergedError(FloatingPointError):
    """Training diverged (the loss, the weights or the test outputs are not finite), before the
    epoch's checkpoint: ``checkpoint.pt`` keeps the last good epoch. Its one argument is the message."""


def _diverged(run, epoch: int, what: str, step: tuple[int, int] | None = None) -> DivergedError:
    """The DivergedError of ``run`` in ``epoch`` (0-based) at ``step`` (index, steps in the epoch)
    or, without one, at the epoch's evaluation."""
    kept = (f"{os.path.join(run.out, CHECKPOINT)} keeps epoch {epoch}, the last good one" if epoch
            else f"no epoch had finished, so {run.out} holds no checkpoint")
    if step is None:
        at = f"epoch {epoch + 1}, at its evaluation"
    else:
        at = (f"epoch {epoch + 1}, step {step[0] + 1} of {step[1]}"
              f" (learning rate {lr_at(run.cfg, epoch + step[0] / step[1]):.3g} at that step)")
    return DivergedError(f"training diverged at {at}: {what}; {kept}")


_seed = stable_seed


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


@torch.no_grad()
def evaluate_batches(model, batches, num_classes, device, info, amp_dtype) -> dict[str, float]:
    """Test metrics of ``model`` over ``batches`` of ``(inputs, labels)`` on ``device``, summed over
    every process's share."""
    model.eval()
    state = MetricState(num_classes)
    for xb, yb in batches:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(xb)
        state.update(logits.float(), yb)
    state.buffer = dist.all_reduce_sum(state.buffer, info, device)
    return state.finish()


def evaluate(model, x, y, num_classes, cfg, device, info, amp_dtype) -> dict[str, float]:
    """``evaluate_batches`` over tensors ``x``, ``y``, each process taking every ``world_size``-th sample."""
    idx = torch.arange(info.rank, x.shape[0], info.world_size)
    batches = ((x[b.to(x.device)].to(device), y[b.to(y.device)].to(device))
               for b in idx.split(cfg.eval_batch_size))
    return evaluate_batches(model, batches, num_classes, device, info, amp_dtype)


def feature_scatter(model, batches, device) -> dict[str, float]:
    """Within/between-class scatter of the test set's penultimate features (SynerMix's claim)."""
    from ..features import penultimate_features
    from .metrics import scatter_ratios

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
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr, unit="img",
                unit_scale=True)


def _check_run_dir(cfg: TrainConfig, out: str, resume: bool) -> dict | None:
    """Return the checkpoint to resume from (None: a fresh run)."""
    ckpt_path = os.path.join(out, CHECKPOINT)
    if not resume:
        if os.path.exists(ckpt_path) or os.path.exists(os.path.join(out, FINAL)):
            raise RunExistsError(f"out: {out} already holds a run; pass --resume to continue it, "
                                 "or choose another --out")
        return None
    ckpt, values, where = saved_run(out)
    saved = config_from_dict(values, where=where)
    diff = config_diff(saved, cfg, ignore=RESULT_FREE)
    if diff:
        pretty = ", ".join(f"{k}: run has {a!r}, given {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"resume: the given settings differ from the run in {out} ({pretty})")
    return ckpt              # None: killed before the first epoch ended: start over


# ---------------------------------------------------------------------------------------------
# The run, top to bottom.


def train(cfg: TrainConfig, out: str, *, resume: bool = False, progress: bool | None = None,
          log=None) -> dict:
    """Train one run into ``out`` and return its final metrics (see the module docstring)."""
    device = _set_up_device(cfg)
    info = dist.setup(device)
    lock, finished = None, False
    try:
        dist.agree({**config_to_dict(cfg), "out": os.fspath(out), "resume": resume}, info)
        # The main process holds the run directory's lock for the whole run (see ``rundir``).
        lock = lock_run_dir(out) if info.is_main else None
        progress = (sys.stderr.isatty() if progress is None else progress) and info.is_main
        log = log if log is not None else _main_process_log(info, progress)
        if resume and os.path.exists(os.path.join(out, FINAL)):
            return _already_finished(cfg, out, log)
        ckpt = _prepare_run_dir(cfg, out, resume, info)
        run = _build_run(cfg, out, device, info, log, progress)
        run.facts = provenance(device)
        if ckpt is not None:
            _resume(run, ckpt)
        _log_start(run)
        for epoch in range(run.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            train_loss, images_per_s = _train_one_epoch(run, epoch)
            evaluated = _evaluate_if_due(run, epoch)
            run.elapsed += time.perf_counter() - t0
            record = _record_epoch(run, epoch, train_loss, images_per_s, evaluated)
            _save_checkpoint(run, epoch + 1)
            _log_epoch(run, record, evaluated)
            for hook in EPOCH_END_HOOKS:
                hook(epoch=epoch + 1, info=info)
        final = _finish(run)
        finished = True
        return final
    finally:
        if lock is not None:
            lock.release()
        dist.teardown(info, finished=finished)


@dataclass
class _Run:
    """What the steps of one run share: where it runs, its data, what it trains, its history."""

    cfg: TrainConfig
    out: str
    device: torch.device
    info: dist.DistInfo
    log: Callable[[str], None]
    progress: bool
    feed: MemoryFeed | StreamFeed
    model: torch.nn.Module               # the model itself (what checkpoints and evaluation use)
    net: torch.nn.Module                 # what training forwards: the model in DDP, or the model
    method: Any
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    gen: torch.Generator                 # this process's draws (augmentation, mixing)
    sampler: BalancedBatchSampler | None
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    metrics: dict = field(default_factory=dict)   # the last evaluation's test metrics
    facts: dict = field(default_factory=dict)     # provenance, taken when this process started the run


def _set_up_device(cfg: TrainConfig) -> torch.device:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)       # nccl collectives and all_gather_object use it
    return device


def bar_safe_print(msg: str) -> None:
    """Print a line to stderr above any tqdm bar that is drawn there (not through it)."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(msg, file=sys.stderr, flush=True)
        return
    tqdm.write(msg, file=sys.stderr)


def _main_process_log(info: dist.DistInfo, progress: bool = False) -> Callable[[str], None]:
    def log(msg):
        if info.is_main:
            if progress:
                bar_safe_print(msg)
            else:
                print(msg, file=sys.stderr, flush=True)
    return log


def _already_finished(cfg: TrainConfig, out: str, log) -> dict:
    _check_run_dir(cfg, out, resume=True)
    final = read_final(os.path.join(out, FINAL))
    log(f"{out}: already finished")
    return final


def _prepare_run_dir(cfg: TrainConfig, out: str, resume: bool, info: dist.DistInfo) -> dict | None:
    """Check the run directory, write the resolved config; return the checkpoint to resume from.

    ``train`` has created and locked ``out`` already (``rundir.lock_run_dir``).
    """
    import yaml

    ckpt = _check_run_dir(cfg, out, resume)
    if info.is_main:
        os.makedirs(out, exist_ok=True)
        atomic_write_text(os.path.join(out, CONFIG), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return ckpt


def _build_run(cfg: TrainConfig, out: str, device: torch.device, info: dist.DistInfo, log,
               progress: bool) -> _Run:
    """Data feed, model (the same initial weights on every process), method, optimiser, generators."""
    feed = build_feed(cfg, device, with_originals=needs_originals(cfg.method))
    data = feed.meta
    torch.manual_seed(_seed(cfg.seed, 0))
    model = build_model(cfg.model, num_classes=data.num_classes, input_shape=data.input_shape).to(device)
    if device.type == "cuda" and cfg.channels_last and len(data.input_shape) == 3:
        model = model.to(memory_format=torch.channels_last)
    net = dist.wrap(model, info, device, sync_bn=cfg.sync_bn)
    model = getattr(net, "module", net)
    method = build_method(cfg, net, data.num_classes)
    optimizer = build_optimizer(cfg, model)
    amp_dtype = None
    if device.type == "cuda" and cfg.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    gen = torch.Generator(device=device).manual_seed(_seed(cfg.seed, 2, info.rank))
    sampler = None
    if balanced_batches(cfg):
        sampler = BalancedBatchSampler(data.train_labels, cfg.batch_size, seed=_seed(cfg.seed, 3),
                                       rank=info.rank, world_size=info.world_size)
    return _Run(cfg, out, device, info, log, progress, feed, model, net, method, optimizer, scaler,
                amp_dtype, gen, sampler)


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD over every parameter, or AdamW (betas 0.9, 0.999) in two groups: weight decay on the
    weight matrices and kernels, none on biases, norm weights (every 1-D parameter) and the
    parameters the model names in ``no_weight_decay`` (a ViT's class token and position
    embeddings), as ViT recipes train."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    skip = set(getattr(model, "no_weight_decay", ()))
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if p.ndim <= 1 or name in skip else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": plain, "weight_decay": 0.0}], lr=cfg.lr)


def _resume(run: _Run, ckpt: dict) -> None:
    """Continue from ``ckpt``; an entry that does not fit the run is a CheckpointError naming the file."""
    if ckpt["world_size"] != run.info.world_size:
        raise CheckpointError(f"resume: the run used {ckpt['world_size']} processes, "
                              f"this one has {run.info.world_size}")
    path = os.path.join(run.out, CHECKPOINT)
    check_progress(path, ckpt, run.cfg.epochs, run.gen, run.info.rank)
    load_weights(path, run.model, ckpt["model"], run.cfg.model)
    restore(path, "optimizer", run.optimizer.load_state_dict, ckpt["optimizer"])
    restore(path, "scaler", run.scaler.load_state_dict, ckpt["scaler"])
    restore(path, f"generators[{run.info.rank}]", run.gen.set_state, ckpt["generators"][run.info.rank])
    restore(path, "method", run.method.load_state_dict, ckpt["method"])
    run.start_epoch, run.history, run.elapsed = ckpt["epoch"], list(ckpt["history"]), ckpt["elapsed"]
    run.metrics = run.history[-1] if run.history else {}
    run.log(f"{run.out}: resuming after epoch {run.start_epoch}/{run.cfg.epochs}")


def _log_start(run: _Run) -> None:
    cfg, d = run.cfg, run.feed.meta
    run.log(f"{run.out}: {cfg.method} on {d.name} ({d.n_train} train, {d.n_test} test, {cfg.loader} "
            f"loader{f', {cfg.workers} workers' if cfg.loader == 'stream' else ''}), "
            f"{cfg.model} ({count_parameters(run.model) / 1e6:.2f} M parameters), {cfg.epochs} epochs, "
            f"device {run.device}" + (f", {run.info.world_size} processes" if run.info.enabled else ""))


def _train_one_epoch(run: _Run, epoch: int) -> tuple[float, float]:
    """One pass over this process's batches of ``epoch``: the mean training loss over all processes,
    and the training images per second (all processes, loading and augmentation included)."""
    run.net.train()
    batches = epoch_batches(run.cfg, run.feed.meta.n_train, epoch, run.info, run.sampler)
    bar = _progress(sum(len(b) for b in batches), f"epoch {epoch + 1}/{run.cfg.epochs}", run.progress)
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    t0 = time.perf_counter()
    for i, (originals, augmented, labels) in enumerate(run.feed.train_batches(epoch, batches, run.gen)):
        _set_lr(run.optimizer, lr_at(run.cfg, epoch + i / len(batches)))
        loss = _train_step(run, originals, augmented, labels, epoch, (i, len(batches)))
        loss_sum += loss.detach().double()
        if bar is not None:
            bar.update(labels.shape[0])
            if i % 10 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    if bar is not None:
        bar.close()
    _check_finite_weights(run, epoch, len(batches))
    seconds = time.perf_counter() - t0
    total = dist.all_reduce_sum(
        torch.stack([loss_sum.cpu(), torch.tensor(float(len(batches)), dtype=torch.float64),
                     torch.tensor(float(sum(len(b) for b in batches)), dtype=torch.float64)]),
        run.info, run.device)
    return float(total[0] / total[1]), float(total[2]) / max(seconds, 1e-9)


def _check_finite_weights(run: _Run, epoch: int, steps: int) -> None:
    """Raise DivergedError when a weight or buffer is not finite after the epoch's last step (the
    next step's loss would show it, but the epoch's checkpoint is written first)."""
    tensors = [t for t in run.model.state_dict().values() if t.is_floating_point()]
    if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
        raise _diverged(run, epoch, "the model's weights are not finite after its optimiser step",
                        (steps - 1, steps))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _train_step(run: _Run, originals, augmented, labels, epoch: int, step: tuple[int, int]) -> torch.Tensor:
    """Mix one batch on the device and take one optimiser step (DDP averages the gradients over
    processes during the backward)."""
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        loss = run.method.loss(run.net, originals, augmented, labels, run.gen)
    problem = dist.non_finite(dist.every_rank(loss, run.info, run.device), run.info, "the loss")
    if problem:  # decided alike on every rank, so that none waits in the backward's all-reduce
        raise _diverged(run, epoch, problem, step)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return loss


def _evaluate_if_due(run: _Run, epoch: int) -> bool:
    """Evaluate on the test set every ``eval_every`` epochs and after the last one.

    Evaluation reads the model in eval mode without gradients or random draws, so how often it
    runs does not change the training."""
    if not ((epoch + 1) % run.cfg.eval_every == 0 or epoch + 1 == run.cfg.epochs):
        return False
    dist.sync_buffers(run.model, run.info)      # every rank evaluates rank 0's (checkpointed) state
    try:
        run.metrics = evaluate_batches(run.model, run.feed.test_batches(run.info), run.feed.meta.num_classes,
                                       run.device, run.info, run.amp_dtype)
    except FloatingPointError:
        raise _diverged(run, epoch, "the model's outputs on the test set are not finite") from None
    return True


def _record_epoch(run: _Run, epoch: int, train_loss: float, images_per_s: float, evaluated: bool) -> dict:
    record = {"epoch": epoch + 1, "lr": lr_at(run.cfg, epoch + 1 - 1e-9), "train_loss": train_loss,
              **(run.metrics if evaluated else {}), "elapsed_s": round(run.elapsed, 3),
              "images_per_s": round(images_per_s, 1)}
    run.history.append(record)
    return record


def _save_checkpoint(run: _Run, epochs_done: int) -> None:
    """``checkpoint.pt`` (every process's generator state included) and ``metrics.jsonl``."""
    generators = dist.gather_objects(run.gen.get_state(), run.info)
    if not run.info.is_main:
        return
    save_checkpoint(os.path.join(run.out, CHECKPOINT), {
        "epoch": epochs_done, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(), "generators": generators, "method": run.method.state_dict(),
        "history": run.history, "elapsed": run.elapsed, "world_size": run.info.world_size,
        "config": config_to_dict(run.cfg)})
    atomic_write_text(os.path.join(run.out, METRICS),
                      "".join(json.dumps(r, sort_keys=True) + "\n" for r in run.history))


def _log_epoch(run: _Run, record: dict, evaluated: bool) -> None:
    m = run.metrics
    run.log(f"epoch {record['epoch']:>3}/{run.cfg.epochs}  loss {record['train_loss']:.4f}  "
            + (f"test error {m['test_error']:.4f}  nll {m['nll']:.4f}  ece {m['ece']:.4f}  "
               if evaluated else "")
            + f"({record['images_per_s']:.0f} img/s, {run.elapsed:.1f} s)")


def _finish(run: _Run) -> dict:
    """The final metrics (the last evaluation, feature scatter, the run's facts) into ``final.json``."""
    cfg = run.cfg
    final = {k: v for k, v in run.metrics.items() if k not in ("epoch", "lr", "elapsed_s")}
    if run.info.is_main and hasattr(run.model, "feature_layer"):
        final.update(feature_scatter(run.model, run.feed.test_batches(run.info, everything=True), run.device))
    final.update({"method": cfg.method, "dataset": cfg.dataset, "model": cfg.model, "seed": cfg.seed,
                  "epochs": cfg.epochs, "train_time_s": round(run.elapsed, 3),
                  "parameters": count_parameters(run.model), "world_size": run.info.world_size,
                  "train_loss": run.history[-1]["train_loss"] if run.history else float("nan"),
                  "provenance": {**run.facts, "finished": utc_now()}})
    if run.info.is_main:
        atomic_write_json(os.path.join(run.out, FINAL), final)
    dist.barrier(run.info)
    return final
