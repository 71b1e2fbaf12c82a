"""Smoke test of the benchmark's own code path (no timing assertions)."""

import json

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
