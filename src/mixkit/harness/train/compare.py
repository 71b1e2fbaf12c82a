"""Methods side by side: methods x seeds runs, then tables and plots.

``compare(base_cfg, methods, seeds, out)`` trains ``out/<method>/seed<k>/`` for every pair
(skipping runs whose ``final.json`` exists with the same config, resuming interrupted ones) and
writes:

- ``results.csv``: one row per run (method, seed, every final metric);
- ``summary.csv``: one row per method (mean and std over seeds);
- ``results.md``: the table (mean ± std over seeds), for each comparison pair the paired
  difference over common seeds with a 95 % t confidence interval, and a cohesion and calibration
  table (within- and between-class feature scatter, their ratio against ERM, ECE), and the
  provenance of the runs (the command, dates, machine, code and torch versions);
- ``error_bars.png`` (test error, mean ± std), ``cohesion_calibration.png`` (feature scatter
  ratio and ECE per method) and ``curves.png`` (test error per epoch, mean over seeds).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shlex
import signal
import sys
from dataclasses import replace

from mixkit import registry

from ..rundir import locked_run_dir
from .checkpoint import atomic_write_text
from .config import TrainConfig, config_diff, config_from_dict, method_overrides
from .loop import CONFIG, FINAL, METRICS, RESULT_FREE, bar_safe_print, saved_config, train
from .plots import plot_report
from .saved import read_final

__all__ = ["compare", "aggregate", "paired_difference", "write_report", "DEFAULT_PAIRS"]

METRIC_KEYS = ("test_error", "macro_f1", "micro_f1", "nll", "ece", "scatter_within", "scatter_between",
               "scatter_ratio", "train_time_s")

# Pairs each paper compares (its method, its reference), from the registry's ``baselines``; kept
# when both are in a comparison.
DEFAULT_PAIRS = registry.pairs()


def _t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (2.228 at df = 10), from
    scipy (a harness dependency)."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict:
    """``a - b`` over the seeds both have: mean, 95 % t interval, n (NaN interval for n < 2)."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    if not diffs:
        return {"n": 0, "mean": float("nan"), "low": float("nan"), "high": float("nan")}
    mean, std = mean_std(diffs)
    half = _t975(len(diffs) - 1) * std / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return {"n": len(diffs), "mean": mean, "low": mean - half, "high": mean + half}


def _run_config(base: TrainConfig, name: str, seed: int) -> TrainConfig:
    return replace(base, **method_overrides(name), seed=seed)


def _finished(cfg: TrainConfig, run_dir: str) -> dict | None:
    final = os.path.join(run_dir, FINAL)
    if not os.path.exists(final):
        return None
    saved = config_from_dict(saved_config(run_dir))      # the checkpoint's config, not config.yaml
    diff = config_diff(saved, cfg, ignore=RESULT_FREE)
    if diff:
        raise ValueError(f"compare: {run_dir} holds a finished run with other settings "
                         f"({', '.join(sorted(diff))}); use another --out or delete it")
    return read_final(final)


def compare(base: TrainConfig, methods: list[str], seeds: list[int], out: str, *,
            progress: bool | None = None, pairs=None, log=None, paper: dict | None = None,
            jobs: int = 1, command: str | None = None) -> dict:
    """Train every (method, seed) into ``out`` and write the report; returns the aggregate.

    ``command`` is the command line the report names as the one that reproduces it (``mixkit
    compare`` passes its own; default: this process's ``sys.argv``).

    ``jobs > 1`` trains that many runs at once in separate processes (1 torch thread each unless
    ``base.threads`` says otherwise); a run gives the same numbers as a serial run with the
    same thread count.

    The comparison holds ``out``'s lock (``rundir.lock_run_dir``) from start to end: a second
    comparison into the same ``out`` is refused at once (``RunDirBusyError``).
    """
    _check_request(methods, seeds, jobs)
    with locked_run_dir(out):
        return _compare_locked(base, methods, seeds, out, progress=progress, pairs=pairs, log=log,
                               paper=paper, jobs=jobs, command=command)


def _compare_locked(base: TrainConfig, methods: list[str], seeds: list[int], out: str, *, progress, pairs,
                    log, paper, jobs, command) -> dict:
    base = like_for_like(base, methods)
    if progress is None:
        progress = sys.stderr.isatty()
    if log is None:
        def log(msg):
            if progress:
                bar_safe_print(msg)      # above the bars, not through them
            else:
                print(msg, file=sys.stderr, flush=True)
    # Seed by seed: a suite stopped part-way has every method on its first seeds, so its report
    # compares like with like (the report itself lists runs method by method).
    pending = [(m, s) for s in seeds for m in methods]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(pending), desc="compare", dynamic_ncols=True, file=sys.stderr)
    finals: dict[tuple[str, int], dict] = {}
    todo = _skip_finished(base, pending, out, finals, bar, log)

    def done(m, s, final):
        finals[m, s] = final
        if bar is not None:
            bar.update(1)
            bar.set_postfix(last=f"{m}/{s}: {final['test_error']:.4f}")
        else:
            log(f"{m}/seed{s}: test error {final['test_error']:.4f}")

    if jobs == 1 or len(todo) <= 1:
        for m, s, cfg, run_dir in todo:
            done(m, s, _train_job(cfg, run_dir, progress=progress, log=None if progress else log))
    else:
        _train_in_parallel(todo, jobs, done)
    runs = [{"method": m, "seed": s, "final": finals[m, s], "curve": _test_error_curve(out, m, s)}
            for m in methods for s in seeds]
    if bar is not None:
        bar.close()
    summary = aggregate(runs, methods)
    write_report(out, base, runs, summary, methods, pairs if pairs is not None else DEFAULT_PAIRS, paper,
                 command=command if command is not None else shlex.join(sys.argv))
    return summary


def provenance_lines(runs: list[dict], command: str) -> str:
    """The report's traceability paragraph: the command, and the span of dates, machines, code
    versions and torch versions of the runs it summarises (from each ``final.json``)."""
    facts = [r["final"].get("provenance") or {} for r in runs]

    def seen(key: str) -> str:
        values = sorted({str(f.get(key)) for f in facts if f.get(key) is not None})
        missing = sum(1 for f in facts if f.get(key) is None)
        text = ", ".join(values) if values else "not recorded"
        return text + (f" ({missing} of {len(facts)} runs did not record it)" if values and missing else "")

    dates = sorted(f["finished"] for f in facts if f.get("finished"))
    span = f"{dates[0]} to {dates[-1]}" if dates else "not recorded"
    return ("## Provenance\n\n"
            f"- command: `{command}`\n"
            f"- runs finished (UTC): {span}\n"
            f"- machine: {seen('machine')}\n"
            f"- mixkit {seen('mixkit')}, commit {seen('commit')}\n"
            f"- torch {seen('torch')}, Python {seen('python')}\n")


def like_for_like(base: TrainConfig, methods: list[str]) -> TrainConfig:
    """Every method of a comparison sees the same batches: when a SynerMix method is among them and
    ``balanced`` is not set, every method gets the class-balanced sampler SynerMix needs (not only
    the SynerMix methods, which would see more samples per step than the others)."""
    if base.balanced is None and any(method_overrides(m)["method"].startswith("synermix") for m in methods):
        return replace(base, balanced=True)
    return base


def sampler_note(base: TrainConfig) -> str:
    """One sentence for the report: which batches every method of the comparison trained on."""
    if base.balanced:
        return ("Every method trained on the same class-balanced batches (each class present in a "
                "batch at least twice: SynerMix's sampler, on for all when a SynerMix method is "
                "compared).")
    return "Every method trained on the same uniformly shuffled batches."


def _check_request(methods: list[str], seeds: list[int], jobs: int) -> None:
    if not methods:
        raise ValueError("methods: expected at least one method, got none")
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds):
        raise ValueError(f"methods, seeds: expected distinct entries, got {methods} and {seeds}")
    for m in methods:
        method_overrides(m)          # raises for an unknown name before anything runs
    if jobs < 1:
        raise ValueError(f"jobs: expected a positive number of parallel runs, got {jobs}")


def _skip_finished(base: TrainConfig, pending, out: str, finals: dict, bar, log) -> list[tuple]:
    """Collect the runs finished earlier into ``finals``; return ``(method, seed, cfg, run_dir)``
    of the others."""
    todo = []
    for m, s in pending:
        cfg = _run_config(base, m, s)
        run_dir = os.path.join(out, m, f"seed{s}")
        final = _finished(cfg, run_dir)
        if final is not None:
            log(f"{run_dir}: finished earlier, skipped")
            finals[m, s] = final
            if bar is not None:
                bar.update(1)
        else:
            todo.append((m, s, cfg, run_dir))
    return todo


def _train_in_parallel(todo: list[tuple], jobs: int, done) -> None:
    """Parallel runs in fresh processes; each gets 1 thread unless the config names a count, so
    ``jobs`` processes share the cores instead of oversubscribing them.

    Ctrl-C: this process passes SIGINT on to its workers (whether or not they had it from the
    terminal), cancels the runs not started and waits for the interrupted ones to stop, each
    leaving its last checkpoint, so that the same command continues them. A worker takes the
    first SIGINT only: a training one stops it, an idle one (which would otherwise die with a
    traceback) starts no run after it (see ``_on_sigint``)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    # Workers end with this process, even when it is killed with SIGKILL (no orphans train on).
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx,
                               initializer=_start_worker, initargs=(os.getpid(),))
    try:
        futures = {}
        for m, s, cfg, run_dir in todo:
            if cfg.threads is None:
                cfg = replace(cfg, threads=1)
            futures[pool.submit(_train_job_in_worker, cfg, run_dir)] = (m, s)
        for fut in as_completed(futures):
            m, s = futures[fut]
            done(m, s, fut.result())
    except KeyboardInterrupt:
        for pid in list(getattr(pool, "_processes", None) or {}):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# A pool worker's state: whether it trains now, and whether it has been interrupted.
_WORKER = {"busy": False, "stopping": False}


def _start_worker(parent_pid: int) -> None:
    from ..lifeline import die_with_parent

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum, frame) -> None:
    """A worker's SIGINT handler: the first one stops the run it trains (KeyboardInterrupt) and
    every later start; a second one (the terminal's and this process's) is ignored."""
    first = not _WORKER["stopping"]
    _WORKER["stopping"] = True
    if first and _WORKER["busy"]:
        raise KeyboardInterrupt


def _train_job_in_worker(cfg: TrainConfig, run_dir: str) -> dict:
    """``_train_job`` in a pool worker; none starts once the worker has been interrupted."""
    if _WORKER["stopping"]:
        raise KeyboardInterrupt
    _WORKER["busy"] = True
    try:
        return _train_job(cfg, run_dir)
    finally:
        _WORKER["busy"] = False


def _test_error_curve(out: str, method: str, seed: int) -> list[tuple[int, float]]:
    """``(epoch, test error)`` of every evaluated epoch of one run."""
    mpath = os.path.join(out, method, f"seed{seed}", METRICS)
    if not os.path.exists(mpath):
        return []
    try:
        with open(mpath, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except ValueError as e:     # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{mpath}: damaged (not one JSON record per line: {e}); delete the run's "
                         "directory to train it again") from None
    return [(r["epoch"], r["test_error"]) for r in records if "test_error" in r]


def _train_job(cfg: TrainConfig, run_dir: str, progress: bool = False, log=None) -> dict:
    """One run, resuming an interrupted one in ``run_dir``. Without a log or progress bars (a
    worker process) its log lines carry the run's label and seed (its folder and the one above:
    ``zeta-g5/seed0``, where the method alone would not tell two variants apart), since several
    runs share stderr."""
    if log is None and not progress:
        prefix = os.path.join(os.path.basename(os.path.dirname(os.path.abspath(run_dir))),
                              os.path.basename(os.path.abspath(run_dir)))

        def log(msg):
            print(f"[{prefix}] {msg}", file=sys.stderr, flush=True)
    resume = os.path.exists(os.path.join(run_dir, CONFIG))
    return train(cfg, run_dir, resume=resume, progress=progress, log=log)


def aggregate(runs: list[dict], methods: list[str]) -> dict:
    summary = {}
    for m in methods:
        mine = [r for r in runs if r["method"] == m]
        row = {"n": len(mine)}
        for key in METRIC_KEYS:
            vals = [float(r["final"][key]) for r in mine if key in r["final"]]
            if vals:
                row[key] = mean_std(vals)
        row["by_seed"] = {r["seed"]: float(r["final"]["test_error"]) for r in mine}
        row["nll_by_seed"] = {r["seed"]: float(r["final"]["nll"]) for r in mine if "nll" in r["final"]}
        ratios = {r["seed"]: float(r["final"]["scatter_ratio"])
                  for r in mine if "scatter_ratio" in r["final"]}
        if ratios:
            row["ratio_by_seed"] = ratios
        summary[m] = row
    return summary


def _verdict(diff: dict, name: str, what: str = "error", nll: bool = False) -> str:
    """``name`` minus ERM in words: the mean, the 95 % interval and whether it shows a difference
    (test error in percentage points, or with ``nll`` the test NLL in nats)."""
    def num(v: float) -> str:
        return f"{v:+.3f}" if nll else f"{100 * v:+.2f}"
    unit = "" if nll else " pp"
    if diff["n"] < 2:
        return f"{name} {num(diff['mean'])}{unit} vs ERM on one seed: not shown (one seed has no interval)"
    text = (f"{name} {num(diff['mean'])}{unit} vs ERM, 95 % CI [{num(diff['low'])}, {num(diff['high'])}] "
            f"over {diff['n']} seeds")
    if diff["low"] <= 0 <= diff["high"]:
        return text + ": not shown (the interval contains 0; more seeds are needed to call it)"
    better = "lower" if diff["high"] < 0 else "higher"
    return text + f": shown ({name}'s {what} is {better} than ERM's; the interval excludes 0)"


NEXT = ("Next: mixkit compare --preset fmnist-cpu --jobs 2 --out runs/fmnist-cpu (20 methods x 5 seeds, "
        "about 2 hours; docs/results.md).")


def reading(summary: dict, methods: list[str], out: str, claim: str = "test_error") -> str:
    """One line on what a comparison with ERM shows, and what to run next. ``claim="test_error"``:
    the method with the lowest mean test error (ERM included), and the best mixing method's paired
    difference to ERM with its interval, "not shown" when that interval contains 0.
    ``claim="nll"`` (a job sized to call the test NLL, not the error): the verdict is on the NLL of
    the mixing method with the lowest mean NLL; the test error is reported, not called."""
    others = [m for m in methods if m != "erm" and "test_error" in summary.get(m, {})]
    if "erm" not in methods or not others or "test_error" not in summary.get("erm", {}):
        return f"Reading: see {os.path.join(out, 'results.md')} and error_bars.png beside it."
    erm = summary["erm"]
    plot = f"Plot: {os.path.join(out, 'error_bars.png')}."
    if claim == "nll" and "nll" in erm and all("nll" in summary[m] for m in others):
        best = min(others, key=lambda m: summary[m]["nll"][0])
        nll = paired_difference(summary[best]["nll_by_seed"], erm["nll_by_seed"])
        err = paired_difference(summary[best]["by_seed"], erm["by_seed"])
        return (f"Reading: on test NLL (what this job is sized to call): "
                f"{_verdict(nll, best, 'test NLL', nll=True)}. Test error, reported and not "
                f"called here: {best} {100 * err['mean']:+.2f} pp vs ERM. What this does not show: whether "
                f"mixing lowers the test error; the suite below does (docs/results.md). {plot} {NEXT}")
    best_mix = min(others, key=lambda m: summary[m]["test_error"][0])
    lowest = "erm" if erm["test_error"][0] <= summary[best_mix]["test_error"][0] else best_mix
    diff = paired_difference(summary[best_mix]["by_seed"], erm["by_seed"])
    lead = (f"ERM has the lowest test error ({100 * erm['test_error'][0]:.2f} %); the best mixing method: "
            if lowest == "erm" else
            f"{best_mix} has the lowest test error ({100 * summary[best_mix]['test_error'][0]:.2f} %): ")
    lower_nll = [m for m in others if "nll" in summary[m] and "nll" in erm
                 and summary[m]["nll"][0] < erm["nll"][0]]
    return (f"Reading: {lead}{_verdict(diff, best_mix)}; {len(lower_nll)} of {len(others)} "
            f"mixing methods have a lower test NLL than ERM. {plot} {NEXT}")


def _fmt(ms: tuple[float, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if ms is None:
        return "–"
    mean, std = ms
    if math.isnan(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _ci(d: dict, scale: float = 100.0) -> str:
    if d["n"] == 0:
        return "–"
    if math.isnan(d["low"]):
        return f"{d['mean'] * scale:+.2f} (n = 1)"
    return f"{d['mean'] * scale:+.2f} [{d['low'] * scale:+.2f}, {d['high'] * scale:+.2f}]"


def markdown_table(summary: dict, methods: list[str], pairs, paper: dict | None = None) -> str:
    """The results table; ``paper`` adds a column of published test errors (%) by method."""
    lines = ["| method | seeds | test error % | Δ vs ERM (pp, 95 % CI) | macro-F1 % | NLL | ECE % "
             "| S_b/S_w | time/run (s) |" + (" paper's error % |" if paper else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if paper else "")]
    erm = summary.get("erm")
    for m in methods:
        row = summary[m]
        delta = "–" if erm is None or m == "erm" else _ci(paired_difference(row["by_seed"], erm["by_seed"]))
        lines.append(f"| {m} | {row['n']} | {_fmt(row.get('test_error'), 100)} | {delta} | "
                     f"{_fmt(row.get('macro_f1'), 100)} | {_fmt(row.get('nll'), 1, 3)} | "
                     f"{_fmt(row.get('ece'), 100)} | {_fmt(row.get('scatter_ratio'), 1, 2)} | "
                     f"{_fmt(row.get('train_time_s'), 1, 0)} |"
                     + (f" {paper[m]:.2f} |" if paper and m in paper else (" – |" if paper else "")))
    chosen = [(a, b) for a, b in pairs if a in summary and b in summary]
    if chosen:
        lines += ["", "Paired differences in test error (percentage points, first minus second; "
                  "negative = the first is better), 95 % t interval over common seeds:", "",
                  "| comparison | Δ error (pp) [95 % CI] | seeds |", "|---|---|---|"]
        for a, b in chosen:
            d = paired_difference(summary[a]["by_seed"], summary[b]["by_seed"])
            lines.append(f"| {a} − {b} | {_ci(d)} | {d['n']} |")
    if any("scatter_ratio" in summary[m] for m in methods):
        lines += ["", "Cohesion and separability of the test set's penultimate features (S_w: mean "
                  "squared distance to the class mean, tr(S_w)/N; S_b: spread of the class means, "
                  "tr(S_b)/N; S_b/S_w is scale-free, so it compares models whose features differ in "
                  "scale) and calibration (ECE, 15 bins), with the ratio's paired difference to ERM:",
                  "", "| method | S_w | S_b | S_b/S_w | Δ S_b/S_w vs ERM [95 % CI] | ECE % | NLL |",
                  "|---|---|---|---|---|---|---|"]
        for m in methods:
            row = summary[m]
            delta = "–"
            if erm is not None and m != "erm" and "ratio_by_seed" in erm and "ratio_by_seed" in row:
                d = paired_difference(row["ratio_by_seed"], erm["ratio_by_seed"])
                delta = _ci(d, scale=1.0)
            lines.append(f"| {m} | {_fmt(row.get('scatter_within'), 1, 2)} | "
                         f"{_fmt(row.get('scatter_between'), 1, 2)} | "
                         f"{_fmt(row.get('scatter_ratio'), 1, 2)} | {delta} | "
                         f"{_fmt(row.get('ece'), 100)} | {_fmt(row.get('nll'), 1, 3)} |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def write_report(out: str, base: TrainConfig, runs, summary, methods, pairs, paper=None, *,
                 command: str = "") -> None:
    os.makedirs(out, exist_ok=True)
    final_keys = ["test_error", "test_accuracy", "micro_f1", "macro_f1", "nll", "ece", "scatter_within",
                  "scatter_between", "scatter_ratio", "train_loss", "train_time_s", "epochs"]
    rows = [{"method": r["method"], "seed": r["seed"], **{k: r["final"].get(k) for k in final_keys}}
            for r in runs]
    atomic_write_text(os.path.join(out, "results.csv"), _csv(rows, ["method", "seed", *final_keys]))
    srows = []
    for m in methods:
        row = {"method": m, "seeds": summary[m]["n"]}
        for key in METRIC_KEYS:
            if key in summary[m]:
                row[f"{key}_mean"], row[f"{key}_std"] = summary[m][key]
        srows.append(row)
    cols = ["method", "seeds"] + [f"{k}_{s}" for k in METRIC_KEYS for s in ("mean", "std")]
    atomic_write_text(os.path.join(out, "summary.csv"), _csv(srows, cols))
    head = (f"# Comparison: {base.dataset}, {base.model}, {base.epochs} epochs\n\n"
            f"Training set {base.train_size or 'all'}, test set {base.test_size or 'all'}, "
            f"batch {base.batch_size}, lr {base.lr} ({base.schedule}), weight decay {base.weight_decay}, "
            f"augmentation {base.augment}{f' + Cutout({base.cutout})' if base.cutout else ''}. "
            f"{sampler_note(base)} Mean ± std over seeds. S_b/S_w: between- over within-class "
            "scatter of the test set's penultimate features (larger: classes more separable).\n\n")
    atomic_write_text(os.path.join(out, "results.md"), head + markdown_table(summary, methods, pairs, paper)
                      + "\n" + provenance_lines(runs, command))
    plot_report(out, base, runs, summary, methods)
