"""The plots of a comparison (``compare``): test error, cohesion and calibration per method, and
the test-error curves, each titled with the data set, epochs and number of seeds, written at
``DPI``."""

from __future__ import annotations

import io
import math
import os

from .checkpoint import atomic_write_bytes
from .config import TrainConfig

__all__ = ["plot_report", "save_fig", "DPI"]


def plot_report(out: str, base: TrainConfig, runs, summary, methods) -> None:
    """error_bars.png, cohesion_calibration.png and curves.png of a comparison in ``out``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the harness extra
        return
    about = _about(base, summary, methods)
    _plot_error_bars(plt, out, summary, methods, about)
    _plot_cohesion_calibration(plt, out, summary, methods, about)
    _plot_curves(plt, out, runs, methods, about)


def _about(base: TrainConfig, summary, methods) -> str:
    """What every plot says it shows: the data set, the epochs and the number of seeds."""
    ns = sorted({summary[m]["n"] for m in methods})
    n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    size = f", {base.train_size:,} training images" if base.train_size else ""
    return f"{base.dataset}{size}, {base.epochs} epochs, n = {n} seed{'s' if ns[-1] > 1 else ''}"


def _bars(ax, methods, values, errors, color, digits: int = 1) -> None:
    """Bars from 0 (the axis is not cut) with ± std whiskers only where there are two or more
    seeds, and each bar's value written at its foot."""
    has = [not math.isnan(e) for e in errors]
    ax.bar(range(len(methods)), values, color=color)
    if any(has):
        idx = [i for i, h in enumerate(has) if h]
        ax.errorbar(idx, [values[i] for i in idx], yerr=[errors[i] for i in idx], fmt="none",
                    ecolor="black", capsize=3, linewidth=1)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.{digits}f}", (i, 0), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7, color="white")
    ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right")
    top = max(v + (e if h else 0.0) for v, e, h in zip(values, errors, has, strict=True))
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)


def _plot_error_bars(plt, out: str, summary, methods, about: str) -> None:
    """Test error (and, where every method has it, test NLL) per method, mean ± std over seeds."""
    panels = [("test_error", 100.0, "test error (%)", 2)]
    if all("nll" in summary[m] for m in methods):
        panels.append(("nll", 1.0, "test NLL (nats)", 3))
    width = max(4.5, 0.8 * len(methods) + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.8), squeeze=False)
    stds = []
    for ax, (key, scale, label, digits) in zip(axes[0], panels, strict=True):
        stds = [summary[m][key][1] * scale for m in methods]
        _bars(ax, methods, [summary[m][key][0] * scale for m in methods], stds, "#4c72b0", digits=digits)
        ax.set_ylabel(label)
    spread = " ± std over seeds" if any(not math.isnan(v) for v in stds) else " (one seed: no error bars)"
    what = " and test NLL" if len(panels) > 1 else ""
    fig.suptitle(f"test error{what}, mean{spread}\n{about}", fontsize=9)
    fig.tight_layout()
    save_fig(fig, os.path.join(out, "error_bars.png"))
    plt.close(fig)


def _plot_cohesion_calibration(plt, out: str, summary, methods, about: str) -> None:
    panels = [("scatter_ratio", 1.0, "S_b / S_w of test features (higher: more separable)"),
              ("ece", 100.0, "expected calibration error (%)")]
    panels = [p for p in panels if all(p[0] in summary[m] for m in methods)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.5, 0.8 * len(methods) + 1.5) * len(panels),
                                                      4.0), squeeze=False)
    for ax, (key, scale, title) in zip(axes[0], panels, strict=True):
        vals = [summary[m][key][0] * scale for m in methods]
        errs = [summary[m][key][1] * scale for m in methods]
        _bars(ax, methods, vals, errs, "#55a868", digits=2 if key == "scatter_ratio" else 1)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"mean{' ± std' if any(summary[m]['n'] > 1 for m in methods) else ''} over seeds; "
                 f"{about}", fontsize=9)
    fig.tight_layout()
    save_fig(fig, os.path.join(out, "cohesion_calibration.png"))
    plt.close(fig)


def _plot_curves(plt, out: str, runs, methods, about: str) -> None:
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        curves = [r["curve"] for r in runs if r["method"] == m and r["curve"]]
        if not curves:
            continue
        by_epoch = [dict(c) for c in curves]
        epochs = sorted(set.intersection(*(set(c) for c in by_epoch)))   # evaluated in every seed
        mean = [sum(c[e] for c in by_epoch) / len(by_epoch) * 100 for e in epochs]
        ax.plot(epochs, mean, label=m, marker="." if len(epochs) < 30 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"test error per epoch (mean over seeds)\n{about}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_fig(fig, os.path.join(out, "curves.png"))
    plt.close(fig)


DPI = 150


def save_fig(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(path, buf.getvalue())
