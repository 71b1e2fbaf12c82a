"""scripts/regime_map.py: cells, convergence, aggregation and verdicts on fabricated run records
(no training), the CSV, the report and the PNG; one slow smoke run end to end."""

import csv
import importlib.util
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "regime_map.py"


@pytest.fixture(scope="module")
def rm():
    spec = importlib.util.spec_from_file_location("regime_map", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _history(epochs=10, loss_end=0.1, last_errors=(0.150, 0.149)):
    """A converged-looking metrics.jsonl: a flat loss at the end, evaluations every 5 epochs."""
    records = []
    for e in range(1, epochs + 1):
        r = {"epoch": e, "train_loss": loss_end * (1 + (epochs - e) * 0.001)}
        if e == epochs - 5:
            r["test_error"] = last_errors[0]
        if e == epochs:
            r["test_error"] = last_errors[1]
        records.append(r)
    return records


def _record(cell, method, seed, error, history=None):
    return {"cell": cell, "method": method, "seed": seed, "augment": "none", "train_size": 2000,
            "epochs": 10, "final": {"test_error": error, "nll": 0.5, "ece": 0.05, "train_loss": 0.1},
            "history": history if history is not None else _history()}


# Fabricated errors by seed: zeta is clearly better than erm, fmix clearly worse, mixup a tie.
ERRORS = {"erm": [0.150, 0.152, 0.149, 0.151, 0.150],  # method-list: ok (fabricated errors by seed)
          "mixup": [0.151, 0.149, 0.152, 0.148, 0.150],
          "zeta": [0.140, 0.141, 0.139, 0.142, 0.140],
          "fmix": [0.160, 0.161, 0.162, 0.159, 0.160]}


def _records(cell="noaug-2000"):
    return [_record(cell, m, s, e) for m, errs in ERRORS.items() for s, e in enumerate(errs)]


def test_cells_and_epochs_for_parse(rm):
    assert rm.parse_cell("aug-2000") == ("crop-flip", 2000)
    assert rm.parse_cell("noaug-10000") == ("none", 10000)
    assert rm.parse_epochs_for(["aug-2000=200", "noaug-2000=100,aug-10000=90"]) == {
        "aug-2000": 200, "noaug-2000": 100, "aug-10000": 90}
    for bad in ("flip-2000", "aug-", "aug-x"):
        with pytest.raises(ValueError, match="cells"):
            rm.parse_cell(bad)
    with pytest.raises(ValueError, match="epochs-for"):
        rm.parse_epochs_for(["aug-2000=0"])


def test_cell_config_is_the_preset_with_the_cell(rm):
    cfg = rm.cell_config("aug-10000", 60)
    assert (cfg.dataset, cfg.augment, cfg.train_size, cfg.epochs, cfg.balanced) == (
        "fashion-mnist", "crop-flip", 10000, 60, True)
    assert (cfg.batch_size, cfg.lr, cfg.test_size) == (64, 0.05, 5000)      # the fmnist-cpu preset
    assert rm.cell_config("noaug-2000", 80, smoke=True).train_size < 100


def test_convergence_rule(rm):
    assert rm.convergence(_history())["ok"]
    moved = rm.convergence(_history(last_errors=(0.150, 0.145)))
    assert not moved["ok"] and "test error moved 0.50 pp" in moved["why"]
    falling = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 11)]
    falling[4]["test_error"], falling[9]["test_error"] = 0.15, 0.15
    assert "mean training loss of the last 2 epochs" in rm.convergence(falling)["why"]
    assert not rm.convergence([])["ok"]
    assert not rm.convergence(_history(epochs=3))["ok"]          # too short for two windows


def test_convergence_compares_window_means_so_epoch_noise_does_not_decide(rm):
    # 80 epochs whose loss alternates +-6 % around a flat 0.1: the last epoch (80, 0.094) is 11 %
    # off epoch 73 (0.106), which the first rule compared, but the windows' means are equal.
    flat = [{"epoch": e, "train_loss": 0.1 * (1.06 if e % 2 else 0.94)} for e in range(1, 81)]
    flat[69]["test_error"], flat[79]["test_error"] = 0.150, 0.149
    assert rm.convergence(flat)["ok"]
    # the same noise on a loss still falling by 1 % an epoch is not converged
    falling = [dict(r, train_loss=r["train_loss"] * 0.99 ** r["epoch"]) for r in flat]
    c = rm.convergence(falling)
    assert not c["ok"] and c["loss_change"] == pytest.approx(1 - 0.99 ** 8, rel=0.05)


def test_verdicts(rm):
    assert rm.verdict({"n": 5, "mean": -0.01, "low": -0.02, "high": -0.005}) == "holds"
    assert rm.verdict({"n": 5, "mean": 0.01, "low": 0.005, "high": 0.02}) == "fails"
    assert rm.verdict({"n": 5, "mean": 0.0, "low": -0.01, "high": 0.01}) == "not shown"
    assert rm.verdict({"n": 1, "mean": -0.01, "low": math.nan, "high": math.nan}) == "not shown"


def test_summary_on_fabricated_records(rm):
    records = _records() + [_record("aug-2000", m, 0, 0.2, history=[]) for m in ("erm", "mixup")]
    summary = rm.summarise(records, ["noaug-2000", "aug-2000"], list(ERRORS))
    cell = summary["noaug-2000"]
    assert cell["passed"] and cell["rows"]["erm"]["converged"] == 5
    assert cell["rows"]["zeta"]["test_error"][0] == pytest.approx(0.1404)
    claims = {(a, b): rm.verdict(d) for a, b, d in cell["claims"]}
    assert claims[("zeta", "erm")] == "holds"
    assert claims[("zeta", "mixup")] == "holds"
    assert claims[("fmix", "erm")] == "fails"
    assert claims[("fmix", "mixup")] == "fails"
    assert ("cutmix", "erm") not in claims                   # no cutmix runs: no claim
    assert cell["vs_erm"]["mixup"]["low"] < 0 < cell["vs_erm"]["mixup"]["high"]
    assert not summary["aug-2000"]["passed"] and len(summary["aug-2000"]["failed"]) == 2


def test_a_cell_without_runs_is_not_run_not_failed(rm):
    summary = rm.summarise(_records(), ["noaug-2000", "aug-10000"], list(ERRORS))
    assert not summary["aug-10000"]["rows"] and not summary["aug-10000"]["failed"]
    md = rm.results_markdown(summary, _records(), "python scripts/regime_map.py")
    assert "Every cell run passed. Not run yet: aug-10000." in md
    assert "## aug-10000\n\nNot run yet: no finished runs of this cell on disk." in md
    assert "Augmentation ," not in md                        # no section of blanks


def test_outputs_csv_report_and_png(rm, tmp_path):
    records = _records() + _records("aug-2000")
    cells = ["noaug-2000", "aug-2000"]
    rm.write_outputs(str(tmp_path), records, cells, list(ERRORS), [0, 1, 2, 3, 4], "python x.py")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert len(rows) == 40
    for column in ("method", "seed", "augment", "train_size", "test_error", "nll", "epochs", "converged"):
        assert column in rows[0]
    report = (tmp_path / "results.md").read_text()
    assert "## noaug-2000" in report and "## aug-2000" in report
    assert "| zeta beats erm | -1.00 [" in report and "| holds |" in report and "| fails |" in report
    assert "Every cell passed." in report and "- command: `python x.py`" in report
    png = (tmp_path / "regime_map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(tmp_path / "regime_map.png").info["dpi"][0] == pytest.approx(150, abs=1)


def test_collect_reads_finished_runs_from_disk(rm, tmp_path):
    run = tmp_path / "noaug-2000" / "erm" / "seed0"
    run.mkdir(parents=True)
    (run / "final.json").write_text(json.dumps({"test_error": 0.15, "nll": 0.5}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _history()))
    configs = {"noaug-2000": rm.cell_config("noaug-2000", 10)}
    found = rm.collect(str(tmp_path), ["noaug-2000"], ["erm", "mixup"], [0, 1], configs)
    assert [(r["method"], r["seed"], r["train_size"]) for r in found] == [("erm", 0, 2000)]
    assert rm.convergence(found[0]["history"])["ok"]


def _write_run(root, cell, method, seed, epochs, train_size=2000, augment="none", error=0.15, config=True):
    """A finished run as mixkit train leaves it: final.json, metrics.jsonl and (optionally) config.yaml."""
    run = root / cell / method / f"seed{seed}"
    run.mkdir(parents=True)
    final = {"test_error": error, "nll": 0.5, "ece": 0.05, "train_loss": 0.1, "macro_f1": 0.8, "epochs": epochs}
    (run / "final.json").write_text(json.dumps(final))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _history(epochs)))
    if config:
        (run / "config.yaml").write_text(f"augment: {augment}\ntrain_size: {train_size}\nepochs: {epochs}\n")


def test_collect_names_the_epochs_the_runs_trained_not_the_default(rm, tmp_path):
    # aug-2000's default is 150 epochs; runs of 300 read back as 300, from config.yaml or final.json
    _write_run(tmp_path, "aug-2000", "erm", 0, 300, augment="crop-flip")
    _write_run(tmp_path, "aug-2000", "erm", 1, 300, augment="crop-flip", config=False)
    configs = {"aug-2000": rm.cell_config("aug-2000", 150)}
    found = rm.collect(str(tmp_path), ["aug-2000"], ["erm"], [0, 1], configs)
    assert [r["epochs"] for r in found] == [300, 300]
    with pytest.raises(ValueError, match="expected runs of 150 epochs .as asked., got runs of 300"):
        rm.collect(str(tmp_path), ["aug-2000"], ["erm"], [0, 1], configs, pinned={"aug-2000"})


def test_collect_refuses_a_cell_of_mixed_lengths_or_another_cells_run(rm, tmp_path):
    _write_run(tmp_path, "noaug-10000", "erm", 0, 40, train_size=10000)
    _write_run(tmp_path, "noaug-10000", "erm", 1, 80, train_size=10000)
    configs = {"noaug-10000": rm.cell_config("noaug-10000", 40)}
    with pytest.raises(ValueError, match=r"share their epochs, got 1 run\(s\) of 40 epochs \(erm/seed0\) and 1 run\(s\) of 80 epochs \(erm/seed1\)"):
        rm.collect(str(tmp_path), ["noaug-10000"], ["erm"], [0, 1], configs)
    _write_run(tmp_path, "noaug-2000", "erm", 0, 80, train_size=10000)
    with pytest.raises(ValueError, match="cell noaug-2000 .train_size 2000., got one with train_size 10000"):
        rm.collect(str(tmp_path), ["noaug-2000"], ["erm"], [0], {"noaug-2000": rm.cell_config("noaug-2000", 80)})


def _fabricated_map(root, cells=("noaug-2000", "aug-2000"), epochs=(80, 300)):
    for cell, n in zip(cells, epochs, strict=True):
        augment, size = ("crop-flip" if cell.startswith("aug") else "none"), int(cell.split("-")[1])
        for m, errs in (("erm", ERRORS["erm"]), ("mixup", ERRORS["zeta"])):
            for s, e in enumerate(errs):
                _write_run(root, cell, m, s, n, train_size=size, augment=augment, error=e)


def test_report_only_covers_every_cell_on_disk_with_its_own_epochs(rm, tmp_path, capsys):
    _fabricated_map(tmp_path)
    assert rm.main(["--out", str(tmp_path), "--methods", "erm,mixup", "--report-only"]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert {(r["cell"], r["epochs"]) for r in rows} == {("noaug-2000", "80"), ("aug-2000", "300")}
    report = (tmp_path / "results.md").read_text()
    assert "crop-flip, 2,000 training images, 300 epochs" in report
    assert "## noaug-10000\n\nNot run yet" in report           # the map names the cells not run
    # --cells with --report-only: just those
    assert rm.main(["--out", str(tmp_path), "--methods", "erm,mixup", "--report-only", "--cells", "aug-2000"]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert {r["cell"] for r in rows} == {"aug-2000"}
    # epochs asked for that the runs do not have: an error in one line, no report written over
    before = (tmp_path / "results.md").read_text()
    assert rm.main(["--out", str(tmp_path), "--methods", "erm,mixup", "--report-only",
                    "--epochs-for", "aug-2000=150"]) == 2
    assert "expected runs of 150 epochs (as asked), got runs of 300" in capsys.readouterr().err
    assert (tmp_path / "results.md").read_text() == before


def test_estimate_matches_the_docstring(rm):
    table = rm.estimate(rm.CELLS, rm.EPOCHS, len(rm.METHODS), 5, 2)
    assert "| noaug-2000 | 80 | 35 | 0.4 h |" in table
    assert "| aug-10000 | 120 | 35 | 3.2 h |" in table
    assert "| total | | 140 | 7.4 h |" in table
    for row in table.splitlines()[2:]:     # every row of the printed table is in the docstring's
        cells = [c.strip() for c in row.strip("|").split("|")]
        padded = [f"{c:<{w}}" for c, w in zip(cells, (11, 6, 4, 9), strict=True)]
        assert "| " + " | ".join(padded) + " |" in rm.__doc__, row


def test_export_records_copies_finished_runs_only_and_never_overwrites(rm, tmp_path, capsys):
    out, keep = tmp_path / "out", tmp_path / "keep"
    for s in (0, 1):
        _write_run(out, "aug-10000", "erm", s, 120, train_size=10000, augment="crop-flip")
    (out / "aug-10000" / "erm" / "seed0" / "checkpoint.pt").write_bytes(b"not a record")
    unfinished = out / "aug-10000" / "mixup" / "seed0"       # interrupted: config and metrics, no final.json
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text("epochs: 120\n")
    (unfinished / "metrics.jsonl").write_text("")
    args = ["--out", str(out), "--methods", "erm,mixup", "--seeds", "0,1", "--export-records", str(keep)]
    assert rm.main(args) == 0
    said = capsys.readouterr().out
    assert "2 finished run(s) of aug-10000 copied" in said and "1 unfinished left out (aug-10000/mixup/seed0)" in said
    for s in (0, 1):
        run = out / "aug-10000" / "erm" / f"seed{s}"
        assert sorted(f.name for f in (keep / "aug-10000" / "erm" / f"seed{s}").iterdir()) == \
            ["config.yaml", "final.json", "metrics.jsonl"]
        for f in ("config.yaml", "final.json", "metrics.jsonl"):
            assert (keep / "aug-10000" / "erm" / f"seed{s}" / f).read_bytes() == (run / f).read_bytes()
    assert not (keep / "aug-10000" / "mixup").exists()
    # again: nothing to copy; then a record that differs is refused, naming it, and nothing is written
    assert rm.main(args) == 0
    assert "0 finished run(s) of aug-10000 copied to" in capsys.readouterr().out
    clash = keep / "aug-10000" / "erm" / "seed1" / "final.json"
    clash.write_text('{"test_error": 0.5}')
    _write_run(out, "aug-10000", "erm", 2, 120, train_size=10000, augment="crop-flip")
    assert rm.main(args[:-3] + ["0,1,2", "--export-records", str(keep)]) == 2
    err = capsys.readouterr().err
    assert str(clash) in err and "with other content" in err
    assert clash.read_text() == '{"test_error": 0.5}' and not (keep / "aug-10000" / "erm" / "seed2").exists()
    # a wrong --out is an error, not "0 copied"
    assert rm.main(["--out", str(tmp_path / "nowhere"), "--export-records", str(keep)]) == 2
    assert "expected --out to be a folder of runs" in capsys.readouterr().err
    # the records read back as the report reads them
    configs = {"aug-10000": rm.cell_config("aug-10000", 120)}
    found = rm.collect(str(keep), ["aug-10000"], ["erm"], [0], configs)
    assert [(r["method"], r["seed"], r["epochs"]) for r in found] == [("erm", 0, 120)]


@pytest.mark.slow
def test_smoke_end_to_end(tmp_path):
    out = tmp_path / "regimes"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--smoke", "--seeds", "0", "--methods",
           "erm,mixup", "--cells", "noaug-2000,aug-2000", "--jobs", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"epoch +\d+/", done.stderr)           # training logs its epochs (checked below)
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert {(r["cell"], r["method"]) for r in rows} == {(c, m) for c in ("noaug-2000", "aug-2000")
                                                        for m in ("erm", "mixup")}
    assert (out / "regime_map.png").stat().st_size > 0
    assert "smoke run" in (out / "results.md").read_text()
    assert (out / "aug-2000" / "mixup" / "seed0" / "final.json").exists()    # one compare per cell
    # training one cell again (its runs are finished, so nothing trains) keeps the other in the map
    done = subprocess.run(cmd[:-4] + ["--cells", "aug-2000", "--jobs", "1"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert {r["cell"] for r in rows} == {"noaug-2000", "aug-2000"}
    # across sessions: export the finished runs, lose --out, copy them back: nothing trains again
    keep = tmp_path / "keep"
    done = subprocess.run(cmd[:-4] + ["--export-records", str(keep)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 finished run(s) of noaug-2000, aug-2000 copied" in done.stdout
    fresh = tmp_path / "fresh"
    shutil.copytree(keep, fresh)
    again = [fresh if a == str(out) else a for a in cmd]
    done = subprocess.run([str(a) for a in again], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("finished earlier, skipped") == 4
    assert not re.search(r"epoch +\d+/", done.stderr), done.stderr[-2000:]      # no epoch trained
    fresh_rows = list(csv.DictReader(io.StringIO((fresh / "results.csv").read_text())))
    assert sorted((r["cell"], r["method"], r["test_error"]) for r in fresh_rows) == \
        sorted((r["cell"], r["method"], r["test_error"]) for r in rows)
