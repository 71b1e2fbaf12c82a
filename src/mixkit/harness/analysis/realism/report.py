"""The report: Markdown tables of the results, reading a ``mixkit compare`` results CSV, and the
plots (the half-moons scatter, realism and test error against gamma)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import torch

from .experiments import compare_method
from .stats import mean_std, spearman_rank_correlation


def table(result: dict, keys: Sequence[str], agreement: bool = False) -> str:
    rows = []
    extra = " | NN label = parent's |" if agreement else " |"
    header = "| method | own weight | shift | " + " | ".join(
        f"{k} mean | {k} median | {k} p90" for k in keys) + extra
    rows.append(header)
    rows.append("|" + "---|" * (3 + 3 * len(keys) + int(agreement)))
    for name, e in result["methods"].items():
        cells = [name, f"{e['own_weight']:.3f}", f"{e['shift']:.3f}"]
        for k in keys:
            cells += [f"{e[k]['mean']:.3f}", f"{e[k]['median']:.3f}", f"{e[k]['p90']:.3f}"]
        if agreement:
            cells.append(f"{e['label_agreement']:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _std_text(std: float | None) -> str:
    return "–" if std is None else f"{std:.3f}"


def summary_table(summary: dict[str, dict]) -> str:
    rows = ["| method | nearest real mean | ± std | shift | ± std | networks |",
            "|---|---|---|---|---|---|"]
    for name, e in summary.items():
        (nr, nr_sd), (sh, sh_sd) = e["nearest_real"], e["shift"]
        rows.append(f"| {name} | {nr:.3f} | {_std_text(nr_sd)} | {sh:.3f} | {_std_text(sh_sd)} | "
                    f"{e['n']} |")
    return "\n".join(rows)


def results_section(summary: dict[str, dict], mixers: dict, test_errors: dict[str, list[float]],
                     csv_path: str, space: str) -> list[str]:
    """The realism-vs-test-error table, the methods missing from the CSV and Spearman's rho."""
    lines = [f"\n## Realism against test error ({csv_path})",
             f"\nrealism: nearest real mean, held-out reference, {space}; test error: mean over "
             "seeds of the compare run (n seeds).\n",
             "| method | compare method | realism (held-out) | test error % | seeds |",
             "|---|---|---|---|---|"]
    pairs, missing, unmapped = [], [], []
    for name, entry in summary.items():
        realism = entry["nearest_real"][0]
        method = compare_method(mixers[name])
        if method is None:
            unmapped.append(name)
            lines.append(f"| {name} | – | {realism:.3f} | – | – |")
        elif method not in test_errors:
            missing.append(method)
            lines.append(f"| {name} | {method} | {realism:.3f} | missing | 0 |")
        else:
            errors = test_errors[method]
            mean = sum(errors) / len(errors)
            pairs.append((realism, mean))
            lines.append(f"| {name} | {method} | {realism:.3f} | {100 * mean:.2f} | {len(errors)} |")
    lines.append("")
    if missing:
        lines.append(f"missing from {csv_path}: {', '.join(missing)}")
    if unmapped:
        lines.append(f"no compare method for: {', '.join(unmapped)}")
    if len(pairs) < 2:
        lines.append(f"Spearman rank correlation (realism vs test error): undefined, "
                     f"{len(pairs)} method(s) in both")
    else:
        rho = spearman_rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])
        text = "undefined (a side without variation)" if math.isnan(rho) else f"{rho:+.3f}"
        lines.append(f"Spearman rank correlation (realism vs test error): rho = {text} over "
                     f"{len(pairs)} methods (positive: methods whose samples lie farther from real "
                     "images have higher test error)")
    return lines


RESULTS_COLUMNS = ("method", "seed", "test_error")


def read_compare_results(path: str | os.PathLike) -> dict[str, list[float]]:
    """The test errors (fractions) per method of a ``mixkit compare`` ``results.csv`` (columns
    ``method, seed, test_error, ...``), in file order. A missing column, a test error that is not a
    finite number or a (method, seed) given twice raise ValueError naming the file."""
    errors: dict[str, list[float]] = {}
    seen: set[tuple[str, str]] = set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        missing = [c for c in RESULTS_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"results CSV {path}: expected the columns {', '.join(RESULTS_COLUMNS)} "
                             f"(a mixkit compare results.csv), got {columns} (missing {missing})")
        for line, row in enumerate(reader, start=2):
            method, seed, text = row["method"], row["seed"], row["test_error"]
            try:
                value = float(text)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f"results CSV {path}, line {line}: expected a finite number in "
                                 f"test_error, got {text!r}")
            if (method, seed) in seen:
                raise ValueError(f"results CSV {path}, line {line}: expected one row per method and "
                                 f"seed, got method {method!r} seed {seed!r} again")
            seen.add((method, seed))
            errors.setdefault(method, []).append(value)
    return errors


def plot_half_moons(result: dict, path: str | os.PathLike | None = None, *, max_points: int = 2048,
                    seed: int = 0):
    """Scatter the real points (grey) and each method's synthetic points, one panel per method.

    ``result`` comes from ``half_moons_realism(..., keep_points=True)``. Returns the matplotlib
    figure; with ``path`` it is also saved there (PNG) and closed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "points" not in result:
        raise ValueError("result: expected the output of half_moons_realism(..., keep_points=True)")
    real = result["points"].numpy()
    methods = result["methods"]
    panels = len(methods)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 2.7), sharex=True, sharey=True,
                             squeeze=False)
    g = torch.Generator().manual_seed(seed)
    for ax, (name, entry) in zip(axes[0], methods.items(), strict=True):
        pts = entry["points"]
        if pts.shape[0] > max_points:
            pts = pts[torch.randperm(pts.shape[0], generator=g)[:max_points]]
        ax.scatter(real[:, 0], real[:, 1], s=4, c="0.6", label="real", linewidths=0)
        ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), s=3, c="tab:red", alpha=0.35,
                   label="synthetic", linewidths=0)
        nr, cm = entry["nearest_real"], entry["clean_manifold"]
        ax.set_title(f"{name}\nnearest real {nr['mean']:.3f}, manifold {cm['mean']:.3f}",
                     fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle(f"half-moons (n={result['config']['n']}, noise={result['config']['noise']}, "
                 f"batch {result['config']['batch']}): mean distances of synthetic points",
                 fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig


def _short_label(run_dir: str) -> str:
    parts = [p for p in os.path.normpath(run_dir).split(os.sep) if p]
    return os.sep.join(parts[-2:]) if parts else run_dir


def plot_realism_sweep(held_out: Sequence[tuple[str, dict]], mixers: dict, path: str | os.PathLike,
                       test_errors: dict[str, list[float]] | None = None) -> None:
    """Write a PNG to ``path`` (atomically): nearest-real mean against zeta-mixup's gamma, one thin
    line per network (``held_out``: (label, ``image_realism`` result) pairs, held-out reference)
    and their mean as a thick line, mixup's value per network as a dashed horizontal line; with
    ``test_errors`` (method -> test errors over seeds, as ``read_compare_results``) a second panel
    with test error (mean ± std over seeds) against gamma and mixup's as a dashed line."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixkit.mixers import ZetaMixup

    from ...files import atomic_write_bytes

    zeta = sorted((float(m.gamma), name) for name, m in mixers.items() if type(m) is ZetaMixup)
    if not zeta:
        raise ValueError(f"mixers: expected at least one zeta-mixup to plot against gamma, got "
                         f"{list(mixers)}")
    if not held_out:
        raise ValueError("held_out: expected at least one network's result, got none")
    mixup = [name for name, m in mixers.items() if compare_method(m) == "mixup"]
    gammas = [g for g, _ in zeta]
    panels = 1 if test_errors is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels, 4.0), squeeze=False, sharex=True)
    ax = axes[0][0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = []
    for i, (label, res) in enumerate(held_out):
        colour = colours[i % len(colours)]
        ys = [res["methods"][name]["nearest_real"]["mean"] for _, name in zeta]
        curves.append(ys)
        ax.plot(gammas, ys, color=colour, lw=0.9, alpha=0.8, marker=".", label=_short_label(label))
        for name in mixup:
            ax.axhline(res["methods"][name]["nearest_real"]["mean"], color=colour, lw=0.9, ls="--",
                       alpha=0.8)
    mean = [sum(col) / len(col) for col in zip(*curves, strict=True)]
    ax.plot(gammas, mean, color="black", lw=2.6, marker="o", label=f"mean of {len(curves)}")
    if mixup:
        ax.plot([], [], color="0.4", lw=0.9, ls="--", label="mixup (alpha=1)")
    ax.set_xlabel("zeta-mixup gamma")
    ax.set_ylabel("nearest real mean (held-out, feature space)")
    ax.set_title("realism of synthetic images (lower: nearer real images)", fontsize=9)
    ax.legend(fontsize=7)
    if test_errors is not None:
        ax2 = axes[0][1]
        points = []
        for g, name in zeta:
            method = compare_method(mixers[name])
            if method in test_errors:
                m, sd = mean_std(test_errors[method])
                points.append((g, 100 * m, 0.0 if sd is None else 100 * sd))
        if points:
            ax2.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                         color="tab:red", marker="o", capsize=3, label="zeta-mixup")
        if "mixup" in test_errors:
            ax2.axhline(100 * mean_std(test_errors["mixup"])[0], color="0.3", ls="--",
                        label="mixup (alpha=1)")
        if not points and "mixup" not in test_errors:
            ax2.text(0.5, 0.5, "no zeta-mixup or mixup rows in the results", ha="center",
                     va="center", transform=ax2.transAxes, fontsize=8)
        else:
            ax2.legend(fontsize=7)
        ax2.set_xlabel("zeta-mixup gamma")
        ax2.set_ylabel("test error (%)")
        ax2.set_title("test error, mean ± std over seeds", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
