"""Smoke test of the benchmark's own code path (no timing assertions)."""

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixkit import registry
from mixkit.harness import bench
from mixkit.mixers import MixUp


@pytest.mark.slow
def test_bench_runs_and_writes_reports(tmp_path):
    rep = bench.run(shapes=[(4, 1, 8, 8), (6, 1, 12)], repeats=1, peers=True, extras=False, out=tmp_path)
    methods = {(r.method, r.impl, r.mode) for r in rep.rows}
    assert ("floor", "read 2 write 1", "preallocated") in methods
    for m in registry.names(kind="input", harness=True):  # every input method the harness trains
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
    rep = bench.Report(rows=[  # method-list: ok (rows for the targets bench.yaml names)
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


# ---------------------------------------------------------------------------------------------
# The CUDA-only paths, exercised without a GPU: the HBM floor, the bandwidth choice, the column,
# and which errors are recorded (peers) or raised (mixkit's own entries).


def test_hbm_floor_is_three_input_sizes_over_the_bandwidth():
    assert bench.hbm_floor_ms(1e9, 1000.0) == pytest.approx(3.0)            # 3 GB at 1 TB/s: 3 ms
    nbytes = 4 * math.prod(bench.LARGE)
    assert bench.hbm_floor_ms(nbytes, bench.H200_HBM_GBS) == pytest.approx(3 * nbytes / 4.8e12 * 1e3)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bandwidth_gbs"):
            bench.hbm_floor_ms(1e6, bad)


def test_bandwidth_choice_override_then_h200_datasheet(monkeypatch):
    with pytest.raises(ValueError, match="expected a CUDA device"):
        bench.measure_copy_bandwidth_gbs(torch.device("cpu"))
    assert bench.device_bandwidth_gbs(torch.device("cuda"), 3350.0) == (3350.0, "given (--bandwidth-gbs)")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")

    def no_measure(*a, **k):
        raise AssertionError("an H200 takes the datasheet figure, nothing is measured")

    monkeypatch.setattr(bench.timing, "measure_copy_bandwidth_gbs", no_measure)
    gbs, source = bench.device_bandwidth_gbs(torch.device("cuda"))
    assert gbs == 4800.0 and "H200" in source
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(bench.timing, "measure_copy_bandwidth_gbs", lambda device: 1700.0)
    assert bench.device_bandwidth_gbs(torch.device("cuda")) == (1700.0, "NVIDIA A100-SXM4-80GB: "
                                                                "measured device-to-device copy")


def test_hbm_column_in_rows_and_markdown(tmp_path):
    shape = (4, 1, 8, 8)
    rows = bench.bench_shape(shape, torch.device("cpu"), 1, peers=False, memory=False, bandwidth_gbs=100.0)
    floor = bench.hbm_floor_ms(4 * math.prod(shape), 100.0)
    assert all(r.vs_hbm == pytest.approx(r.ms / floor) for r in rows)
    meta = {"machine": "m", "device": "NVIDIA H200", "torch": "t", "threads": 1, "date": "d", "command": "c",
            "hbm_gbs": 100.0, "hbm_source": "given (--bandwidth-gbs)"}
    md = bench.to_markdown(bench.Report(rows=rows, meta=meta))
    assert "| ms | × floor | × HBM | × best peer | mem | note |" in md
    assert f"HBM floor: {floor:.4f} ms" in md and "at 100 GB/s (given (--bandwidth-gbs))" in md
    mixup = next(r for r in rows if r.method == "mixup" and r.mode == "batch")
    assert f"| {bench.fmt(mixup.vs_floor)} | {bench.fmt(mixup.vs_hbm)} | " in md
    plain = bench.to_markdown(bench.Report(rows=rows, meta={k: v for k, v in meta.items() if "hbm" not in k}))
    assert "× HBM" not in plain and "| ms | × floor | × best peer | mem | note |" in plain
    (tmp_path / "bench.json").write_text(json.dumps(dataclasses.asdict(bench.Report(rows=rows, meta=meta))))
    back = bench.report_from_json(tmp_path / "bench.json")
    assert [r.vs_hbm for r in back.rows] == [r.vs_hbm for r in rows]


def test_peers_failures_are_recorded_and_mixkits_raised(monkeypatch):
    class Rejects:
        def __call__(self, x, y):
            raise TypeError("no such input")

    monkeypatch.setattr(bench.entries, "peer_entries", lambda ndim, batch: [("mixup", "peer", "batch", Rejects())])
    rows = bench.bench_shape((4, 1, 8, 8), torch.device("cpu"), 1, memory=False)
    failed = next(r for r in rows if r.impl == "peer")
    assert math.isnan(failed.ms) and failed.note == "failed: TypeError"

    class Broken(MixUp):
        def __call__(self, x, y, generator=None):
            raise RuntimeError("broken mixer")

    monkeypatch.setattr(bench.entries, "mixkit_entries", lambda ndim: [("mixup", "mixkit", "batch", Broken())])
    with pytest.raises(RuntimeError, match="broken mixer"):
        bench.bench_shape((4, 1, 8, 8), torch.device("cpu"), 1, peers=False, memory=False)

    class WrongShape(MixUp):
        def __call__(self, x, y, generator=None):
            return x[:1], torch.zeros(1, bench.NUM_CLASSES)

    monkeypatch.setattr(bench.entries, "mixkit_entries", lambda ndim: [("mixup", "mixkit", "batch", WrongShape())])
    with pytest.raises(RuntimeError, match="mixkit mixup batch returned mixed"):
        bench.bench_shape((4, 1, 8, 8), torch.device("cpu"), 1, peers=False, memory=False)


def test_mixkit_entries_get_a_cpu_generator(monkeypatch):
    seen = []

    class Spy(MixUp):
        def __call__(self, x, y, generator=None):
            seen.append(generator.device)
            return super().__call__(x, y, generator=generator)

    monkeypatch.setattr(bench.entries, "mixkit_entries", lambda ndim: [("mixup", "mixkit", "batch", Spy(num_classes=10))])
    bench.bench_shape((4, 1, 8, 8), torch.device("cpu"), 1, peers=False, memory=False)
    assert seen and all(d == torch.device("cpu") for d in seen)


def test_cli_bandwidth_flag_and_device_checks(capsys):
    args = bench.build_parser().parse_args(["--device", "cuda", "--bandwidth-gbs", "4800", "--quick"])
    assert args.bandwidth_gbs == 4800.0 and args.device == "cuda"
    assert bench.main(["--device", "cpu", "--bandwidth-gbs", "100"]) == 2
    assert "--bandwidth-gbs applies to --device cuda" in capsys.readouterr().err
    assert bench.main(["--device", "nonsense"]) == 2
    if not torch.cuda.is_available():
        assert bench.main(["--device", "cuda", "--quick"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            bench.run(shapes=[(4, 1, 8, 8)], device="cuda", repeats=1, extras=False)


def _gpu_check():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_check_without_cuda_exits_non_zero_with_a_message(tmp_path):
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(path), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr
    assert not (tmp_path / "cuda.md").exists()


def test_gpu_check_reads_pytest_summaries_and_junit(tmp_path):
    gc = _gpu_check()
    out = "....s.\n=== warnings ===\nfoo\n1200 passed, 14 skipped, 2 warnings in 83.21s (0:01:23)\n"
    assert gc.pytest_summary(out) == "1200 passed, 14 skipped, 2 warnings in 83.21s (0:01:23)"
    assert gc.pytest_summary("== 3 failed, 1 passed in 0.50s ==") == "3 failed, 1 passed in 0.50s"
    assert gc.pytest_summary("Traceback ...\nImportError: x") is None
    (tmp_path / "j.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda" name="test_mixers_make_no_sync_under_sync_debug_error[cpu-zeta]"/>'
        '<testcase classname="tests.test_cuda" name="test_synermix_makes_no_sync_under_sync_debug_error[x]">'
        '<failure message="boom"/></testcase>'
        '<testcase classname="tests.test_cuda" name="test_sync_debug_mode_is_restored_and_catches_a_sync">'
        '<skipped message="no cuda"/></testcase>'
        '<testcase classname="tests.test_cuda" name="test_autocast_keeps_dtypes_on_cuda[zeta]"/>'
        '<testcase classname="tests.test_mixers_contract" name="test_pickles[sync_debug]"/>'
        '</testsuite></testsuites>')
    assert gc.sync_debug_results(tmp_path / "j.xml") == {"passed": 1, "failed": 1, "skipped": 1}


def test_training_step_benchmark_builds_the_harness_small_cnn():
    from mixkit.harness.bench import small_cnn
    from mixkit.harness.models.small import SmallCNN

    model = small_cnn()
    assert isinstance(model, SmallCNN)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_transmix_overhead_benchmark_times_both_steps_and_removes_its_hook():
    """benchmarks/transmix_overhead.py's measurement on the harness's small ViT: both medians are
    positive times, and the TransMix hook is gone afterwards (the model is left as it came)."""
    from mixkit.harness.models import build_model
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "transmix_overhead.py"
    spec = importlib.util.spec_from_file_location("transmix_overhead", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vit = build_model("small-vit", num_classes=10, input_shape=(1, 8, 8))
    layer = dict(vit.named_modules())[vit.attention_layer]
    before = len(layer._forward_hooks)
    plain, trans = module.measure(vit, vit.attention_layer, (1, 8, 8), 4, 2, torch.device("cpu"))
    assert 0 < plain < 60 and 0 < trans < 60
    assert len(layer._forward_hooks) == before
