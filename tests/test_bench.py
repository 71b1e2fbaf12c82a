"""Smoke test of the benchmark's own code path (no timing assertions)."""

import json

import pytest
import torch

from mixkit import bench


def test_bench_runs_and_writes_reports(tmp_path):
    rep = bench.run(shapes=[(4, 1, 8, 8), (6, 1, 12)], repeats=1, peers=True, extras=False, out=tmp_path)
    methods = {(r.method, r.impl, r.mode) for r in rep.rows}
    assert ("floor", "read 2 write 1", "preallocated") in methods
    for m in ["mixup", "cutmix", "fmix", "zeta", "mixup+fmix", "cutmix+zeta"]:
        assert any(r.method == m and r.impl == "mixkit" for r in rep.rows), m
    assert all(r.ms > 0 for r in rep.rows if r.impl == "mixkit")
    md = (tmp_path / "bench.md").read_text()
    assert "## 4×1×8×8" in md and "## 6×1×12" in md
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["meta"]["torch"] == torch.__version__
    assert len(data["rows"]) == len(rep.rows)


def test_official_style_references_are_valid_mixes():
    x = torch.rand(5, 1, 9, 9)
    y = torch.randint(0, bench.NUM_CLASSES, (5,))
    mixed, soft = bench.official_zeta(x, y)
    torch.testing.assert_close(soft.sum(1), torch.ones(5))
    assert mixed.shape == x.shape
    mask, lam = bench.official_fmix_mask((9, 9))
    assert abs(mask.mean() - lam) <= 1 / 81 + 1e-9


def test_memory_probe_counts_an_output():
    x = torch.rand(64, 256)
    extra = bench.extra_memory_bytes(lambda: x * 2, torch.device("cpu"))
    assert extra >= x.numel() * 4


def _row(shape, method, impl, mode, ms, mem=None):
    return bench.Row(shape, method, impl, mode, ms, extra_mem=mem)


def test_target_checks_read_the_right_entries(tmp_path):
    small, large = bench.SMALL, bench.LARGE
    rep = bench.Report(rows=[
        _row(small, "mixup", "mixkit", "batch", 2.0), _row(small, "mixup", "mixkit", "batch inplace", 1.0),
        _row(small, "mixup", "mixkit", "elem", 0.5),          # elem is not the batch target's mode
        _row(small, "mixup", "timm (in place)", "batch", 0.8), _row(small, "mixup", "kornia", "elem", 9.0),
        _row(small, "mixup", "timm (in place)", "elem", 4.0),
        _row(large, "zeta", "mixkit", "N=B", 3.0, mem=1.0), _row(large, "zeta", "official-style", "N=B", 10.0),
        _row(large, "cutmix", "mixkit", "batch inplace", 1.0, mem=0.5),
        _row(large, "fmix", "mixkit", "elem inplace", 1.0, mem=0.4),
    ], masks=[{"shape": [32, 32], "batch": 128, "mixkit_masks_per_s": 95.0, "ratio": 9.5},
              {"shape": [16000], "batch": 64, "mixkit_masks_per_s": 5.0, "ratio": 1.0}],
        train_step=[{"method": "zeta", "plain_ms": 100.0, "mixed_ms": 107.0, "overhead_pct": 7.0}])
    checks = {(c["target"], c["where"].split(" (")[0]): c for c in bench.target_checks(rep)}
    batch = checks["mixup: fastest mode vs fastest peer", "128×3×32×32"]
    assert batch["value"] == 1.0 / 0.8 and not batch["met"]
    elem = checks["mixup elem vs timm elem", "128×3×32×32"]
    assert elem["value"] == 0.5 / 4.0 and elem["met"]
    zeta = checks["zeta: fastest mode vs fastest peer", "64×3×224×224"]
    assert zeta["value"] == 0.3 and zeta["met"]
    assert checks["zeta N=B vs official-style", "64×3×224×224"]["met"]
    masks = checks["FMix masks/s vs official", "32×32"]
    assert masks["value"] == 9.5 and not masks["met"] and masks["limit"] == 10.0
    assert not any(w == "16000" for _, w in checks)        # no target for 1-D masks
    assert not checks["training-step overhead", "zeta"]["met"]
    mem = checks["extra memory in place: masks only", "cutmix batch inplace, 64×3×224×224"]
    assert mem["value"] == 0.5 and not mem["met"] and mem["limit"] == 0.1
    assert checks["extra memory out of place: one output + masks", "zeta N=B, 64×3×224×224"]["met"]
    fmix_elem = checks["extra memory in place: masks only", "fmix elem inplace, 64×3×224×224"]
    assert fmix_elem["limit"] == 0.43 and fmix_elem["met"]          # one mask plane per sample allowed
    md = bench.to_markdown(bench.Report(rows=rep.rows, masks=rep.masks, train_step=rep.train_step,
                                        meta={"machine": "m", "device": "cpu", "torch": "t", "threads": 1,
                                              "date": "d", "command": "c"}))
    assert "## Targets, checked against this run" in md and "| 9.50 × | ≥ 10 | **no** |" in md


def test_report_round_trips_through_json(tmp_path):
    rep = bench.run(shapes=[(4, 1, 8, 8)], repeats=1, peers=False, extras=False, out=tmp_path)
    back = bench.report_from_json(tmp_path / "bench.json")
    assert [(r.shape, r.method, r.mode, r.ms) for r in back.rows] == \
        [(r.shape, r.method, r.mode, r.ms) for r in rep.rows]
    assert bench.to_markdown(back) == (tmp_path / "bench.md").read_text()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="expected a mixkit bench.json"):
        bench.report_from_json(tmp_path / "bad.json")
