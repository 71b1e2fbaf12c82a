"""The report of a run: the targets of docs/benchmarks.md checked against it, its Markdown, the
zeta-mixup scaling plot, and reading back a ``bench.json``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .entries import ELEM_VS_TIMM, FASTEST_MODES, MEMORY_BOUNDED, PER_SAMPLE_MASKS
from .records import Report, Row
from .timing import hbm_floor_ms


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


SMALL, LARGE = (128, 3, 32, 32), (64, 3, 224, 224)


def _shape_name(shape) -> str:
    return "×".join(map(str, shape))


def _shapes(rep: Report) -> list[tuple]:
    """The report's input shapes, in the order they were measured."""
    shapes = []
    for r in rep.rows:
        if tuple(r.shape) not in shapes:
            shapes.append(tuple(r.shape))
    return shapes


def target_checks(rep: Report) -> list[dict]:
    """The speed and memory targets of docs/benchmarks.md, checked against one report.

    Each entry: ``target`` (what is asked), ``where`` (shape or entry), ``value`` (the measured
    ratio, percentage or memory), ``limit`` and ``met``. Targets whose entries are missing from the
    report (a quick run, no peers) are left out.
    """
    return (_fastest_vs_peer_checks(rep) + _elem_vs_timm_checks(rep) + _fmix_mask_checks(rep)
            + _zeta_vs_official_checks(rep) + _train_step_checks(rep) + _extra_memory_checks(rep))


def _rows(rep: Report, shape, method, impl=None, modes=None) -> list[Row]:
    """The report's timed rows (finite time) of one shape and method, optionally one
    implementation and some modes."""
    return [r for r in rep.rows if tuple(r.shape) == shape and r.method == method
            and (impl is None or r.impl == impl) and (modes is None or r.mode in modes)
            and math.isfinite(r.ms)]


def _check(target, where, value, limit, *, at_most=True, unit="×") -> list[dict]:
    """One checked target, or none when the value is missing or not finite."""
    if value is None or not math.isfinite(value):
        return []
    return [{"target": target, "where": where, "value": value, "limit": limit, "unit": unit,
             "at_most": at_most, "met": value <= limit if at_most else value >= limit}]


def _fastest_vs_peer_checks(rep: Report) -> list[dict]:
    out = []
    for shape, limit in ((SMALL, 1.0), (LARGE, 0.5)):
        for method, modes in FASTEST_MODES.items():
            mine = _rows(rep, shape, method, "mixkit", modes)
            peers = [r for r in _rows(rep, shape, method) if r.impl != "mixkit"]
            if mine and peers:
                best, peer = min(mine, key=lambda r: r.ms), min(peers, key=lambda r: r.ms)
                out += _check(f"{method}: fastest mode vs fastest peer", f"{_shape_name(shape)} "
                              f"({best.mode} {best.ms:.3g} ms vs {peer.impl} {peer.mode} {peer.ms:.3g} ms)",
                              best.ms / peer.ms, limit)
    return out


def _elem_vs_timm_checks(rep: Report) -> list[dict]:
    out = []
    for shape in (SMALL, LARGE):
        for method in ELEM_VS_TIMM:
            mine = _rows(rep, shape, method, "mixkit", ("elem", "elem inplace"))
            timm = [r for r in _rows(rep, shape, method) if r.impl.startswith("timm") and r.mode == "elem"]
            if mine and timm:
                best = min(mine, key=lambda r: r.ms)
                out += _check(f"{method} elem vs timm elem", f"{_shape_name(shape)} ({best.mode} "
                              f"{best.ms:.3g} ms vs {timm[0].ms:.3g} ms)", best.ms / timm[0].ms, 0.25)
    return out


def _fmix_mask_checks(rep: Report) -> list[dict]:
    out = []
    for r in rep.masks:
        limit = {(32, 32): 10.0, (224, 224): 3.0}.get(tuple(r["shape"]))
        if limit is not None and r.get("ratio") is not None:
            out += _check("FMix masks/s vs official", _shape_name(r["shape"]), r["ratio"], limit,
                          at_most=False)
    return out


def _zeta_vs_official_checks(rep: Report) -> list[dict]:
    out = []
    for shape in _shapes(rep):
        mine = _rows(rep, shape, "zeta", "mixkit", ("N=B",))
        official = _rows(rep, shape, "zeta", "official-style")
        if mine and official:
            out += _check("zeta N=B vs official-style", _shape_name(shape), mine[0].ms / official[0].ms, 1.0)
    return out


def _train_step_checks(rep: Report) -> list[dict]:
    out = []
    for r in rep.train_step:
        out += _check("training-step overhead", r["method"], r["overhead_pct"], 3.0, unit="%")
    return out


def _extra_memory_checks(rep: Report) -> list[dict]:
    out = []
    mine = [r for method in MEMORY_BOUNDED for r in _rows(rep, LARGE, method, "mixkit")]
    for r in mine:
        if r.extra_mem is None:
            continue
        # Allowed: one output (none in place) plus the parameters; per-sample masks (CutMix and
        # FMix elem) are one (H, W) plane per sample, 1/C of the input; 0.1 of slack for the rest.
        inplace = "inplace" in r.mode
        masks = 1 / LARGE[1] if r.method in PER_SAMPLE_MASKS and r.mode.startswith("elem") else 0.0
        kind = "in place: masks only" if inplace else "out of place: one output + masks"
        out += _check("extra memory " + kind, f"{r.method} {r.mode}, {_shape_name(LARGE)}", r.extra_mem,
                      round((0.0 if inplace else 1.0) + masks + 0.1, 2), unit="× input")
    return out


def _targets_markdown(checks: list[dict]) -> list[str]:
    lines = ["## Targets, checked against this run", "",
             "| target | where | measured | limit | met |", "|---|---|---:|---:|---|"]
    for c in checks:
        sign = "≤" if c["at_most"] else "≥"
        lines.append(f"| {c['target']} | {c['where']} | {c['value']:.2f} {c['unit']} | "
                     f"{sign} {c['limit']:g} | {'yes' if c['met'] else '**no**'} |")
    return lines + [""]


def to_markdown(rep: Report) -> str:
    hbm = rep.meta.get("hbm_gbs")
    lines = _header_markdown(rep.meta)
    checks = target_checks(rep)
    if checks:
        lines += _targets_markdown(checks)
    for shape in _shapes(rep):
        lines += _shape_markdown(rep, shape, hbm)
    if rep.masks:
        lines += _masks_markdown(rep.masks)
    if rep.train_step:
        lines += _train_step_markdown(rep.train_step)
    if rep.zeta_scaling:
        lines += _zeta_scaling_markdown(rep.zeta_scaling)
    return "\n".join(lines)


def _header_markdown(m: dict) -> list[str]:
    lines = [
        "# mixkit speed benchmark",
        "",
        f"Machine: {m['machine']}; device {m['device']}; torch {m['torch']}; threads {m['threads']}; "
        f"{m['date']}.",
        f"Command: `{m['command']}`",
        "",
        "Median ms per call after warm-up. *× floor*: time over one pre-allocated pass reading two "
        "batches and writing one. *× best peer*: over the fastest peer or official-style entry for the "
        "same method (targets: ≤ 1.0 at 128×3×32×32, ≤ 0.5 at 64×3×224×224 in the fastest mode). "
        "*mem*: extra bytes allocated per call over the input's size.",
        "",
    ]
    hbm = m.get("hbm_gbs")
    if hbm:
        lines += [f"*× HBM*: time over the HBM floor, three times the input's bytes (read two batches, "
                  f"write one) at {hbm:g} GB/s ({m.get('hbm_source', 'bandwidth')}).", ""]
    return lines


def _shape_markdown(rep: Report, shape: tuple, hbm: float | None) -> list[str]:
    """One shape's table; with ``hbm`` (GB/s) its HBM floor and a × HBM column."""
    if hbm:
        nbytes = 4 * math.prod(shape)  # float32 inputs
        lines = [f"## {_shape_name(shape)}", "",
                 f"HBM floor: {hbm_floor_ms(nbytes, hbm):.4f} ms (3 × {nbytes / 1e6:.2f} MB at "
                 f"{hbm:g} GB/s).", "",
                 "| method | implementation | mode | ms | × floor | × HBM | × best peer | mem | note |",
                 "|---|---|---|---:|---:|---:|---:|---:|---|"]
    else:
        lines = [f"## {_shape_name(shape)}", "",
                 "| method | implementation | mode | ms | × floor | × best peer | mem | note |",
                 "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rep.rows:
        if tuple(r.shape) == shape:
            hbm_cell = f"{fmt(r.vs_hbm)} | " if hbm else ""
            lines.append(
                f"| {r.method} | {r.impl} | {r.mode} | {fmt(r.ms, 3)} | {fmt(r.vs_floor)} | "
                f"{hbm_cell}{fmt(r.vs_peer)} | {fmt(r.extra_mem)} | {r.note} |"
            )
    return lines + [""]


def _masks_markdown(masks: list[dict]) -> list[str]:
    lines = ["## FMix masks per second (per-sample, batched) vs the official one-per-batch", "",
             "| shape | batch | mixkit masks/s | official-style masks/s | ratio |",
             "|---|---:|---:|---:|---:|"]
    for r in masks:
        shape = _shape_name(r["shape"])
        lines.append(f"| {shape} | {r['batch']} | {r['mixkit_masks_per_s']:.0f} | "
                     f"{fmt(r.get('official_masks_per_s'), 0)} | {fmt(r.get('ratio'), 1)} |")
    return lines + [""]


def _train_step_markdown(train_step: list[dict]) -> list[str]:
    lines = ["## Training step of a small CNN, batch 128×1×28×28", "",
             "Plain and mixed steps timed in pairs from the same model state; overhead = "
             "median over pairs of mixed / plain − 1.", "",
             "| mixer | plain ms | with mixer ms | overhead % |", "|---|---:|---:|---:|"]
    for r in train_step:
        lines.append(f"| {r['method']} | {r['plain_ms']:.2f} | {r['mixed_ms']:.2f} | "
                     f"{r['overhead_pct']:.1f} |")
    return lines + [""]


def _zeta_scaling_markdown(scaling: dict) -> list[str]:
    lines = ["## ζ-mixup cost growth", "", "| axis | value | mixkit ms | official-style ms |",
             "|---|---:|---:|---:|"]
    for axis, rows in scaling.items():
        for r in rows:
            official = fmt(r.get("official_ms"), 3)
            lines.append(f"| {axis} | {r['x']} | {r['mixkit_ms']:.3f} | {official} |")
    return lines + [""]


def plot_zeta_scaling(scaling: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"batch": "batch size (3×32×32)", "size": "image side (batch 64, 3 channels)",
              "n_mix": "N samples per mix (batch 128, 3×32×32)"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (axis, rows) in zip(axes, scaling.items(), strict=False):
        xs = [r["x"] for r in rows]
        ax.plot(xs, [r["mixkit_ms"] for r in rows], "o-", label="mixkit")
        if any("official_ms" in r for r in rows):
            ax.plot(xs, [r["official_ms"] for r in rows], "s--", label="official-style")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(titles[axis])
        ax.set_ylabel("ms per call")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("ζ-mixup cost growth")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def report_from_json(path: str | Path) -> Report:
    """A report written by :func:`run` (``bench.json``), to re-render or re-check it."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = {"rows", "masks", "train_step", "zeta_scaling", "meta"} - set(data)
    if missing:
        raise ValueError(f"{path}: expected a mixkit bench.json with rows, masks, train_step, "
                         f"zeta_scaling and meta, missing {sorted(missing)}")
    rows = [Row(**{**r, "shape": tuple(r["shape"])}) for r in data["rows"]]
    return Report(rows=rows, masks=data["masks"], train_step=data["train_step"],
                  zeta_scaling=data["zeta_scaling"], meta=data["meta"])
