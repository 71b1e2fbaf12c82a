"""The regime map: where each seed method helps or hurts against ERM on Fashion-MNIST.

    python scripts/regime_map.py --out runs/regimes --seeds 0,1,2,3,4 --jobs 2
    python scripts/regime_map.py --out runs/regimes --cells noaug-2000,aug-2000
    python scripts/regime_map.py --out runs/regimes --epochs-for aug-2000=200
    python scripts/regime_map.py --out runs/regimes --report-only     # rebuild the report from disk
    python scripts/regime_map.py --out runs/regimes --cells aug-10000 --export-records KEEP   # see below
    python scripts/regime_map.py --out /tmp/smoke --smoke --seeds 0 --methods erm,mixup

A cell is an input augmentation (``noaug``: ``augment none``; ``aug``: ``augment crop-flip``,
random crop with 4 pixels of zero padding and a horizontal flip, the papers' CIFAR recipe) and a
training-set size (2,000 or 10,000 class-stratified images, ``data_seed`` 0). Every cell starts
from the ``fmnist-cpu`` preset (small CNN, batch 64, SGD lr 0.05 cosine, weight decay 5e-4, 5,000
test images; evaluated every 5 epochs here) and trains ERM, MixUp, ζ-mixup at the paper's γ 2.8
(``zeta``) and at γ 5 (``zeta-g5``: the lowest mean test error of the γ sweep in docs/results.md,
15.40 % against 15.51 % at γ 3.4 and 15.55 % at γ 4), CutMix, FMix and SynerMix, over the seeds,
with one ``compare()`` per cell into ``OUT/<cell>/`` (resumable: finished runs are skipped,
interrupted ones resumed). Every method of every cell draws the same class-balanced batches
(``balanced`` is set for all, as compare does when SynerMix is among the methods, so that a
subset of the methods run first trains the same runs as the full map).

Then it writes into ``OUT/``, over every cell with runs in ``OUT`` (training one cell keeps the
others in the map; ``--report-only --cells`` reports just those), each cell read with the epochs
its runs trained (from their ``config.yaml``; a cell whose runs differ in epochs, or differ from
an ``--epochs-for``, is an error, not a mixed row): ``results.csv`` (one row per run),
``results.md`` (per cell the table of means ± std and the paired 95 % t intervals of the papers'
comparisons, each "holds", "fails" or "not shown"; the convergence check; provenance) and
``regime_map.png`` (methods x cells, colour = Δ test error vs ERM in pp, the interval written in
each cell).

Convergence rule (checked, per run, from its ``metrics.jsonl``; revised 2026-12-02, before any
cell but noaug-2000 ran, and applied to every cell): a run has converged when the mean training
loss of its last 10 % of epochs (at least two) is within 5 % (relative) of the mean of the 10 %
before, and its test error at the last two evaluations differs by less than 0.3 pp. A cell passes
when every run in it passes; the report flags the cells that do not, with the runs that failed.
(The first rule compared the loss of the last epoch with that of 10 % of the epochs earlier;
on noaug-2000 the epoch-to-epoch noise of the loss, 3-8 %, decided it, not convergence: window
means average that noise out. Under a cosine schedule the learning rate is small at the end, so
the loss part is a weak test on its own; the test-error part is the one that catches an
unfinished schedule.) Every cell is evaluated every 5 epochs (``eval_every`` does not change
what a run trains), so the last two evaluations are 5 epochs apart; noaug-2000 ran at the
preset's 10.

Epochs per cell (the defaults; ``--epochs-for`` overrides): what each cell's runs in
docs/results/regimes/ trained, beside the first guesses, made before any cell ran, and what
moved them:

| cell        | epochs | first guess | why                                                          |
|-------------|--------|-------------|--------------------------------------------------------------|
| noaug-2000  | 80     | 80          | the fmnist-cpu suite: ERM memorises by 40, mixing needs 80   |
| aug-2000    | 300    | 150         | at 150 ERM's loss still fell and MixUp, CutMix, FMix vs ERM  |
|             |        |             | were not shown; at 300 they hold                             |
| noaug-10000 | 80     | 40          | at 40, 11 of 35 runs failed the convergence check (3 at 80)  |
| aug-10000   | 120    | 60          | at 60, 8 of 35 runs failed it, ERM's loss still falling      |
|             |        |             | (at 120, 6: ERM's loss part; the verdicts equal those at 60) |

Cost, scaled from the cells as run (2026-12-03, 2 jobs on the 2 cores of an AMD EPYC):
aug-2000 at 300 epochs took 93 min alone on the cores, noaug-10000 at 80 epochs 127 min (short
test runs shared the cores briefly): 0.53 and 0.54 ms of one core per training image-epoch,
test evaluations included (the 2,000-image cells at 80 and 150 epochs took 0.62-0.63 ms, their
test evaluations weighing more against fewer training images). Taking the cost as 0.55 ms x
epochs x training images, 7 methods x 5 seeds at 2 jobs:

| cell        | epochs | runs | wall time |
|-------------|--------|------|-----------|
| noaug-2000  | 80     | 35   | 0.4 h     |
| noaug-10000 | 80     | 35   | 2.1 h     |
| aug-2000    | 300    | 35   | 1.6 h     |
| aug-10000   | 120    | 35   | 3.2 h     |
| total       |        | 140  | 7.4 h     |

(``--estimate`` prints this table for the cells, epochs, seeds and jobs given.)

A cell longer than a session: ``runs/`` is not kept from one session's checkout to the next, so
before a session stops, stop the command and ``--export-records KEEP`` (a folder in git): it
copies the record files of the finished runs (no checkpoints) and leaves the unfinished ones out.
The next session copies KEEP's cell folder into ``--out`` and runs the same command: the finished
runs are skipped, the unfinished ones train from the start.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shlex
import sys
from dataclasses import replace

from mixkit.harness.train.checkpoint import atomic_write_bytes, atomic_write_text
from mixkit.harness.train.compare import compare, mean_std, paired_difference, provenance_lines
from mixkit.harness.train.config import TrainConfig, read_yaml, resolve_config
from mixkit.harness.train.loop import FINAL, METRICS
from mixkit.harness.train.saved import CONFIG, read_final

# The seed methods of the map (ζ-mixup twice: the paper's γ 2.8 and the sweep's best, γ 5).
METHODS = ["erm", "mixup", "zeta", "zeta-g5", "cutmix", "fmix", "synermix"]
# The papers' comparisons (method, reference): each claims the method has the lower test error.
CLAIMS = [("zeta", "erm"), ("zeta", "mixup"), ("zeta-g5", "erm"), ("zeta-g5", "mixup"),
          ("fmix", "erm"), ("fmix", "mixup"), ("cutmix", "erm"), ("synermix", "erm"),
          ("synermix", "mixup")]
AUGMENTS = {"noaug": "none", "aug": "crop-flip"}
SIZES = (2000, 10000)
CELLS = [f"{a}-{n}" for a in AUGMENTS for n in SIZES]
EPOCHS = {"noaug-2000": 80, "aug-2000": 300, "noaug-10000": 80, "aug-10000": 120}
PRESET = "fmnist-cpu"
LOSS_TOL = 0.05          # relative change of the mean training loss: last 10 % of epochs vs the 10 % before
ERROR_TOL = 0.003        # test error at the last two evaluations: 0.3 pp
EVAL_EVERY = 5           # evaluations 5 epochs apart (result-free: the runs train the same)
SECONDS_PER_IMAGE_EPOCH = 0.55e-3   # one core, measured on the cells as run (see the docstring)
SMOKE = {"train_scale": 50, "test_size": 100, "epochs": 2, "eval_every": 1, "batch_size": 32}


def parse_cell(cell: str) -> tuple[str, int]:
    """``"aug-2000"`` -> ``("crop-flip", 2000)``."""
    aug, _, size = cell.partition("-")
    if aug not in AUGMENTS or not size.isdigit() or int(size) < 1:
        raise ValueError(f"cells: expected names like {', '.join(CELLS)}, got {cell!r}")
    return AUGMENTS[aug], int(size)


def parse_epochs_for(items: list[str]) -> dict[str, int]:
    """``["aug-2000=200", "noaug-2000=100,aug-10000=90"]`` -> ``{cell: epochs}``."""
    found = {}
    for item in ",".join(items).split(","):
        if not item.strip():
            continue
        cell, sep, n = item.strip().partition("=")
        if not sep or not n.isdigit() or int(n) < 1:
            raise ValueError(f"--epochs-for: expected CELL=N with N >= 1, got {item!r}")
        parse_cell(cell)
        found[cell] = int(n)
    return found


def cell_config(cell: str, epochs: int, smoke: bool = False) -> TrainConfig:
    """The base config of one cell: the preset, the cell's augmentation and size, its epochs."""
    augment, size = parse_cell(cell)
    base = resolve_config(preset=PRESET)
    cfg = replace(base, augment=augment, train_size=size, epochs=epochs, balanced=True, eval_every=EVAL_EVERY)
    if smoke:
        cfg = replace(cfg, train_size=max(size // SMOKE["train_scale"], 20), test_size=SMOKE["test_size"],
                      epochs=SMOKE["epochs"], eval_every=SMOKE["eval_every"],
                      batch_size=SMOKE["batch_size"])
    cfg.validate()
    return cfg


def estimate(cells: list[str], epochs: dict[str, int], n_methods: int, n_seeds: int, jobs: int) -> str:
    """The markdown table of expected wall time per cell and in total (see the docstring)."""
    lines = ["| cell | epochs | runs | wall time |", "|---|---|---|---|"]
    total_runs, total_s = 0, 0.0
    for cell in cells:
        _, size = parse_cell(cell)
        runs = n_methods * n_seeds
        wall = runs * epochs[cell] * size * SECONDS_PER_IMAGE_EPOCH / max(min(jobs, runs), 1)
        total_runs, total_s = total_runs + runs, total_s + wall
        lines.append(f"| {cell} | {epochs[cell]} | {runs} | {wall / 3600:.1f} h |")
    lines.append(f"| total | | {total_runs} | {total_s / 3600:.1f} h |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the records of the runs, read back from disk

def read_history(path: str) -> list[dict]:
    """A run's ``metrics.jsonl`` (``[]`` when there is none)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def collect(out: str, cells: list[str], methods: list[str], seeds: list[int], configs: dict,
            pinned: set[str] | frozenset = frozenset()) -> list[dict]:
    """One record per finished run: cell, method, seed, augment, train_size, epochs, final, history.

    A record carries what its run trained (its ``config.yaml``, else its ``final.json``), not what
    this command would train, so a report rebuilt without ``--epochs-for`` still names each cell's
    real epochs. ValueError when a run's augmentation or size is not its cell's, when the runs of
    a cell differ in epochs (they cannot be compared), or when a cell in ``pinned`` (its epochs
    given on the command line, or trained by this command) holds runs of other epochs.
    """
    records = []
    for cell in cells:
        cfg = configs[cell]
        mine = []
        for m in methods:
            for s in seeds:
                run_dir = os.path.join(out, cell, m, f"seed{s}")
                if not os.path.exists(os.path.join(run_dir, FINAL)):
                    continue
                final = read_final(os.path.join(run_dir, FINAL))
                saved = read_yaml(os.path.join(run_dir, CONFIG)) if os.path.exists(
                    os.path.join(run_dir, CONFIG)) else {}
                trained = {k: saved.get(k, final.get(k, getattr(cfg, k)))
                           for k in ("augment", "train_size", "epochs")}
                for k in ("augment", "train_size"):
                    if trained[k] != getattr(cfg, k):
                        raise ValueError(f"{run_dir}: expected a run of cell {cell} "
                                         f"({k} {getattr(cfg, k)!r}), got one with {k} {trained[k]!r}")
                mine.append({"cell": cell, "method": m, "seed": s, **trained, "final": final,
                             "history": read_history(os.path.join(run_dir, METRICS))})
        lengths = sorted({r["epochs"] for r in mine})
        if len(lengths) > 1:
            groups = []
            for n in lengths:
                names = [f"{r['method']}/seed{r['seed']}" for r in mine if r["epochs"] == n]
                shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                groups.append(f"{len(names)} run(s) of {n} epochs ({shown})")
            runs = " and ".join(groups)
            raise ValueError(f"{os.path.join(out, cell)}: expected the runs of one cell to share their "
                             f"epochs, got {runs}; move the older runs aside")
        if lengths and cell in pinned and lengths[0] != cfg.epochs:
            raise ValueError(f"{os.path.join(out, cell)}: expected runs of {cfg.epochs} epochs (as asked), "
                             f"got runs of {lengths[0]}")
        records += mine
    return records


RECORD_FILES = (CONFIG, FINAL, METRICS)     # what a finished run is kept as (no checkpoint)


def export_records(out: str, dest: str, cells: list[str], methods: list[str], seeds: list[int]) -> dict:
    """Copy the record files (``RECORD_FILES``) of every finished run of ``cells`` in ``out`` into
    ``dest/<cell>/<method>/seed<s>/``; returns ``{"copied", "present", "unfinished"}`` (run names).

    A run is finished when its ``final.json`` exists; an unfinished run is left out, since its
    ``config.yaml`` without a checkpoint would make the same command train it again from epoch 0
    under a name that looks resumed. Copied back into an ``--out``, the records make the command
    skip those runs (compare reads a finished run's settings from its ``config.yaml`` when there
    is no checkpoint). A file already in ``dest`` with other content is a ValueError naming it,
    raised before anything is copied; identical files are left as they are.
    """
    plan, present, unfinished, clashes = [], [], [], []
    for cell in cells:
        for m in methods:
            for s in seeds:
                name = f"{cell}/{m}/seed{s}"
                src_dir = os.path.join(out, cell, m, f"seed{s}")
                dst_dir = os.path.join(dest, cell, m, f"seed{s}")
                if not os.path.exists(os.path.join(src_dir, FINAL)):
                    if os.path.isdir(src_dir):
                        unfinished.append(name)
                    continue
                todo = []
                for f in RECORD_FILES:
                    src = os.path.join(src_dir, f)
                    if not os.path.exists(src):
                        continue
                    with open(src, "rb") as fh:
                        data = fh.read()
                    dst = os.path.join(dst_dir, f)
                    if os.path.exists(dst):
                        with open(dst, "rb") as fh:
                            if fh.read() != data:
                                clashes.append(dst)
                        continue
                    todo.append((dst, data))
                if todo:
                    plan.append((name, todo))
                else:
                    present.append(name)
    if clashes:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise ValueError(f"--export-records: {shown} already in {dest} with other content; expected "
                         "none or the same records (move them aside, or export into another folder)")
    for _, todo in plan:
        for dst, data in todo:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            atomic_write_bytes(dst, data)
    return {"copied": [n for n, _ in plan], "present": present, "unfinished": unfinished}


# ---------------------------------------------------------------------------------------------
# convergence, aggregation and verdicts

def convergence(history: list[dict], loss_tol: float = LOSS_TOL, error_tol: float = ERROR_TOL) -> dict:
    """Whether one run converged by the rule of the docstring: ``ok``, the relative change of the
    mean training loss (last 10 % of epochs against the 10 % before), the change of test error
    between the last two evaluations."""
    losses = [r["train_loss"] for r in history if "train_loss" in r]
    errors = [r["test_error"] for r in history if "test_error" in r]
    window = max(2, math.ceil(0.1 * len(losses)))
    if len(losses) < 2 * window or len(errors) < 2:
        return {"ok": False, "loss_change": float("nan"), "error_change": float("nan"),
                "why": "fewer than four epochs or two evaluations recorded"}
    before = sum(losses[-2 * window:-window]) / window
    last = sum(losses[-window:]) / window
    loss_change = abs(last - before) / max(abs(before), 1e-12)
    error_change = abs(errors[-1] - errors[-2])
    why = []
    if not loss_change < loss_tol:
        why.append(f"mean training loss of the last {window} epochs {100 * loss_change:.1f} % off the "
                   f"{window} before")
    if not error_change < error_tol:
        why.append(f"test error moved {100 * error_change:.2f} pp between the last two evaluations")
    return {"ok": not why, "loss_change": loss_change, "error_change": error_change, "why": "; ".join(why)}


def verdict(diff: dict) -> str:
    """A claim "method beats reference" from the paired interval of method - reference."""
    if diff["n"] < 2 or math.isnan(diff["low"]):
        return "not shown"
    if diff["high"] < 0:
        return "holds"
    if diff["low"] > 0:
        return "fails"
    return "not shown"


def summarise(records: list[dict], cells: list[str], methods: list[str]) -> dict:
    """Per cell: per method the test error and NLL (mean, std), n, by-seed errors, the runs that
    did not converge; the paired differences vs ERM and of the claims; whether the cell passed."""
    cells_out = {}
    for cell in cells:
        mine = [r for r in records if r["cell"] == cell]
        rows, failed = {}, []
        for m in methods:
            runs = [r for r in mine if r["method"] == m]
            if not runs:
                continue
            by_seed = {r["seed"]: float(r["final"]["test_error"]) for r in runs}
            nll = [float(r["final"]["nll"]) for r in runs if "nll" in r["final"]]
            checks = {r["seed"]: convergence(r["history"]) for r in runs}
            failed += [(m, s, c["why"]) for s, c in checks.items() if not c["ok"]]
            rows[m] = {"n": len(runs), "test_error": mean_std(list(by_seed.values())), "by_seed": by_seed,
                       "nll": mean_std(nll) if nll else None,
                       "converged": sum(c["ok"] for c in checks.values())}
        vs_erm = {m: paired_difference(rows[m]["by_seed"], rows["erm"]["by_seed"])
                  for m in rows if m != "erm" and "erm" in rows}
        claims = [(a, b, paired_difference(rows[a]["by_seed"], rows[b]["by_seed"]))
                  for a, b in CLAIMS if a in rows and b in rows]
        epochs = sorted({r["epochs"] for r in mine})
        cells_out[cell] = {"rows": rows, "vs_erm": vs_erm, "claims": claims, "failed": failed,
                           "passed": bool(mine) and not failed, "epochs": epochs,
                           "train_size": sorted({r["train_size"] for r in mine}),
                           "augment": sorted({r["augment"] for r in mine})}
    return cells_out


# ---------------------------------------------------------------------------------------------
# what is written

CSV_COLUMNS = ["cell", "method", "seed", "augment", "train_size", "epochs", "test_error", "nll", "ece",
               "macro_f1", "train_loss", "converged", "loss_change", "error_change"]


def results_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in records:
        c = convergence(r["history"])
        w.writerow({"cell": r["cell"], "method": r["method"], "seed": r["seed"], "augment": r["augment"],
                    "train_size": r["train_size"], "epochs": r["epochs"],
                    **{k: r["final"].get(k) for k in ("test_error", "nll", "ece", "macro_f1", "train_loss")},
                    "converged": c["ok"], "loss_change": c["loss_change"], "error_change": c["error_change"]})
    return buf.getvalue()


def _ms(ms, scale: float = 100.0, digits: int = 2) -> str:
    if ms is None:
        return "–"
    mean, std = ms
    return f"{mean * scale:.{digits}f}" + ("" if math.isnan(std) else f" ± {std * scale:.{digits}f}")


def _ci(d: dict) -> str:
    if d["n"] == 0:
        return "–"
    if math.isnan(d["low"]):
        return f"{100 * d['mean']:+.2f} (n = {d['n']})"
    return f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"


def cell_markdown(cell: str, info: dict) -> str:
    """One cell's section of results.md."""
    if not info["rows"]:
        return f"## {cell}\n\nNot run yet: no finished runs of this cell on disk.\n"
    size = "/".join(f"{n:,}" for n in info["train_size"])
    epochs = "/".join(str(e) for e in info["epochs"])
    check = ("passed: every run converged" if info["passed"] else
             f"**not passed**: {len(info['failed'])} run(s) did not converge" if info["failed"] else
             "no finished runs")
    lines = [f"## {cell}", "",
             f"Augmentation {'/'.join(info['augment'])}, {size} training images, {epochs} epochs. "
             f"Convergence check: {check}.", "",
             "| method | seeds | test error % | Δ vs ERM (pp, 95 % CI) | NLL | converged |",
             "|---|---|---|---|---|---|"]
    for m, row in info["rows"].items():
        delta = _ci(info["vs_erm"][m]) if m in info["vs_erm"] else "–"
        lines.append(f"| {m} | {row['n']} | {_ms(row['test_error'])} | {delta} | "
                     f"{_ms(row['nll'], 1.0, 3)} | {row['converged']}/{row['n']} |")
    if info["claims"]:
        lines += ["", "| claim | Δ error (pp) [95 % CI] | seeds | verdict |", "|---|---|---|---|"]
        lines += [f"| {a} beats {b} | {_ci(d)} | {d['n']} | {verdict(d)} |" for a, b, d in info["claims"]]
    if info["failed"]:
        lines += ["", "Runs that did not converge:", ""]
        lines += [f"- {m}/seed{s}: {why}" for m, s, why in info["failed"]]
    return "\n".join(lines) + "\n"


def results_markdown(summary: dict, records: list[dict], command: str, smoke: bool = False) -> str:
    flagged = [c for c, info in summary.items() if info["failed"]]
    unrun = [c for c, info in summary.items() if not info["rows"]]
    head = ["# Regime map: Fashion-MNIST" + (" (smoke run: tiny sizes, not results)" if smoke else ""), "",
            f"Base config: the {PRESET} preset; every method on the same class-balanced batches. Mean "
            "± std over seeds; Δ is the paired difference over common seeds with a 95 % t interval "
            "(negative: lower error than the reference). A claim \"A beats B\" holds when the interval "
            "of A − B lies below 0, fails when it lies above 0, and is not shown when it contains 0.", "",
            f"Convergence rule: in every run, the mean training loss of the last 10 % of its epochs is "
            f"within {100 * LOSS_TOL:.0f} % of the mean of the 10 % before, and its test error at the "
            f"last two evaluations differs by less than {100 * ERROR_TOL:.1f} pp. "
            + (f"**Cells that did not pass: {', '.join(flagged)}.**" if flagged else
               "Every cell run passed." if unrun else "Every cell passed.")
            + (f" Not run yet: {', '.join(unrun)}." if unrun else ""),
            "", "![regime map](regime_map.png)", "", ""]
    body = "\n".join(cell_markdown(c, info) for c, info in summary.items())
    runs = [{"final": r["final"]} for r in records]
    return "\n".join(head) + body + "\n" + provenance_lines(runs, command)


def plot_map(path: str, summary: dict, methods: list[str], seeds: list[int], smoke: bool = False) -> None:
    """regime_map.png: rows = methods, columns = cells, colour = Δ test error vs ERM (pp)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixkit.harness.train.plots import save_fig

    cells = list(summary)
    grid = [[math.nan] * len(cells) for _ in methods]
    texts = [[""] * len(cells) for _ in methods]
    for j, cell in enumerate(cells):
        info = summary[cell]
        for i, m in enumerate(methods):
            if m == "erm" and m in info["rows"]:
                texts[i][j] = f"{_ms(info['rows'][m]['test_error'])} %\n(error)"
            elif m in info["vs_erm"]:
                d = info["vs_erm"][m]
                grid[i][j] = 100 * d["mean"]
                texts[i][j] = _ci(d).replace(" [", "\n[")
    finite = [abs(v) for row in grid for v in row if not math.isnan(v)]
    lim = max(finite) if finite else 1.0
    fig, ax = plt.subplots(figsize=(2.2 * len(cells) + 2.5, 0.75 * len(methods) + 1.8))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.9")   # ERM's row, a missing method: grey
    im = ax.imshow(grid, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(methods)):
        for j in range(len(cells)):
            dark = not math.isnan(grid[i][j]) and abs(grid[i][j]) > 0.6 * lim
            ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(cells)), [_column(c, summary[c]) for c in cells])
    ax.set_yticks(range(len(methods)), methods)
    fig.colorbar(im, ax=ax, label="Δ test error vs ERM (pp)\nblue: lower than ERM")
    epochs = ", ".join(f"{c} {'/'.join(map(str, summary[c]['epochs'])) or '–'}" for c in cells)
    ax.set_title(f"Fashion-MNIST regime map{' (smoke)' if smoke else ''}: Δ test error vs ERM, "
                 f"95 % CI, n = {len(seeds)} seed{'s' if len(seeds) > 1 else ''}\nepochs: {epochs}",
                 fontsize=9)
    fig.tight_layout()
    save_fig(fig, path)
    plt.close(fig)


def _column(cell: str, info: dict) -> str:
    return cell + ("" if info["passed"] else "\n(not converged)")


def write_outputs(out: str, records: list[dict], cells: list[str], methods: list[str], seeds: list[int],
                  command: str, smoke: bool = False) -> dict:
    """results.csv, results.md and regime_map.png into ``out``; returns the summary."""
    os.makedirs(out, exist_ok=True)
    summary = summarise(records, cells, methods)
    atomic_write_text(os.path.join(out, "results.csv"), results_csv(records))
    atomic_write_text(os.path.join(out, "results.md"), results_markdown(summary, records, command, smoke))
    plot_map(os.path.join(out, "regime_map.png"), summary, methods, seeds, smoke)
    return summary


# ---------------------------------------------------------------------------------------------
# the command

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The regime map of the seed methods on Fashion-MNIST "
                                "(see the module docstring).")
    p.add_argument("--out", default="runs/regimes", help="output folder (default runs/regimes)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0,1,2,3,4)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (default 2)")
    p.add_argument("--cells", default=None, help=f"comma-separated cells to train (default all: "
                   f"{','.join(CELLS)}); the report covers these and every other cell already in --out, "
                   "or with --report-only just these")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (default the "
                   "seed methods)")
    p.add_argument("--epochs-for", action="append", default=[], metavar="CELL=N",
                   help="a cell's epochs (repeatable; defaults in the docstring)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run: tiny sizes, 2 epochs")
    p.add_argument("--estimate", action="store_true", help="print the expected wall time and stop")
    p.add_argument("--report-only", action="store_true", help="no training: the report of what is on disk")
    p.add_argument("--export-records", metavar="DIR", default=None,
                   help="no training, no report: copy the config.yaml, final.json and metrics.jsonl of "
                   "every finished run of --cells (default: every cell in --out) into "
                   "DIR/<cell>/<method>/seed<s>/, to keep them in git across sessions (copied back into "
                   "--out, those runs are skipped)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        cells = [c.strip() for c in (args.cells or ",".join(CELLS)).split(",") if c.strip()]
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        for c in cells:
            parse_cell(c)
        asked = parse_epochs_for(args.epochs_for)
        epochs = {c: EPOCHS.get(c, 80) for c in [*CELLS, *cells]} | asked
    except ValueError as e:
        print(f"regime_map: {e}", file=sys.stderr)
        return 2
    if "erm" not in methods:
        print("regime_map: --methods must include erm (the map is drawn against it)", file=sys.stderr)
        return 2
    if args.estimate:
        print(estimate(cells, epochs, len(methods), len(seeds), args.jobs), end="")
        return 0
    if args.export_records is not None:
        if not os.path.isdir(args.out):
            print(f"regime_map: --export-records: expected --out to be a folder of runs, got {args.out!r}, "
                  "no such folder", file=sys.stderr)
            return 2
        chosen = cells if args.cells is not None else \
            [c for c in CELLS if os.path.isdir(os.path.join(args.out, c))]
        try:
            got = export_records(args.out, args.export_records, chosen, methods, seeds)
        except (ValueError, OSError) as e:
            print(f"regime_map: {e}", file=sys.stderr)
            return 2
        print(f"regime_map: {len(got['copied'])} finished run(s) of {', '.join(chosen) or 'no cell'} copied "
              f"to {args.export_records}, {len(got['present'])} already there; "
              f"{len(got['unfinished'])} unfinished left out"
              + (f" ({', '.join(got['unfinished'])})" if got["unfinished"] else ""))
        return 0
    # The report is the whole map in --out: training one cell must not drop the others from it.
    report_cells = cells if args.report_only and args.cells is not None else \
        [c for c in dict.fromkeys([*CELLS, *cells]) if c in cells or os.path.isdir(os.path.join(args.out, c))]
    configs = {c: cell_config(c, epochs[c], args.smoke) for c in report_cells}
    pinned = set(asked) | (set() if args.report_only else set(cells))
    command = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", __file__, *argv])
    if not args.report_only:
        pairs = [p for p in CLAIMS if p[0] in methods and p[1] in methods]
        for c in cells:
            print(f"regime_map: cell {c} ({configs[c].epochs} epochs)", file=sys.stderr, flush=True)
            compare(configs[c], methods, seeds, os.path.join(args.out, c), pairs=pairs, jobs=args.jobs,
                    progress=False, command=command)
    try:
        records = collect(args.out, report_cells, methods, seeds, configs, pinned)
    except ValueError as e:
        print(f"regime_map: {e}", file=sys.stderr)
        return 2
    summary = write_outputs(args.out, records, report_cells, methods, seeds, command, args.smoke)
    for c, info in summary.items():
        state = "not run yet" if not info["rows"] else \
            f"convergence check {'passed' if info['passed'] else 'NOT passed'}"
        print(f"regime_map: {c}: {state}", file=sys.stderr)
    print(f"regime_map: {os.path.join(args.out, 'results.md')}, results.csv, regime_map.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
