"""End to end through the ``mixkit`` command on tiny data: every method, compare, resume after
``kill -9``, two gloo processes, and the command's errors."""

import json
import os
import re
import socket
import subprocess
import sys

import proctree
import pytest
import torch

from mixkit.harness.cli import main
from mixkit.harness.train.config import METHODS

TINY = ["--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
        "--model", "small-cnn", "--threads", "1"]


def _final(d):
    with open(os.path.join(d, "final.json")) as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_train_one_epoch_every_method(tmp_path, method, capsys):
    out = str(tmp_path / method)
    model = ["--model", "small-vit"] if method == "transmix" else []      # it needs a ViT
    assert main(["train", *TINY, *model, "--method", method, "--epochs", "1", "--seed", "0", "--out", out]) == 0
    final = _final(out)
    assert 0.0 <= final["test_error"] <= 1.0 and final["method"] == method
    assert final["n_test"] == 120 and math_finite(final["nll"])
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "config.yaml", "final.json", "metrics.jsonl"]
    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
    assert ck["epoch"] == 1
    assert "test error" in capsys.readouterr().out


def math_finite(x):
    return x == x and abs(x) != float("inf")


@pytest.mark.slow
def test_training_learns_on_digits(tmp_path):
    out = str(tmp_path / "erm")
    main(["train", "--dataset", "digits", "--epochs", "4", "--batch-size", "32", "--lr", "0.1",
          "--augment", "none", "--threads", "1", "--out", out])
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    assert lines[-1]["test_error"] < 0.1            # 10 classes: chance is 0.9 (measured: ~0.02)
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]


@pytest.mark.slow
def test_eval_every_changes_no_result(tmp_path):
    """Evaluating every 2nd epoch (and the last) trains exactly as evaluating every epoch."""
    common = ["train", *TINY, "--method", "mixup", "--epochs", "3"]
    every, sparse = str(tmp_path / "every"), str(tmp_path / "sparse")
    assert main([*common, "--out", every]) == 0
    assert main([*common, "--out", sparse, "--eval-every", "2"]) == 0
    a, b = _final(every), _final(sparse)
    for key in ("test_error", "nll", "ece", "train_loss", "scatter_ratio"):
        assert a[key] == b[key], key
    lines = [json.loads(x) for x in open(os.path.join(sparse, "metrics.jsonl"))]
    assert [("test_error" in r) for r in lines] == [False, True, True]     # epochs 2 and 3 (last)
    full = [json.loads(x) for x in open(os.path.join(every, "metrics.jsonl"))]
    assert [r["train_loss"] for r in lines] == [r["train_loss"] for r in full]
    assert main([*common, "--out", str(tmp_path / "bad"), "--eval-every", "0"]) == 2


def _run(args, env_extra=None, check=True):
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.run([sys.executable, "-m", "mixkit", *args], env=env, capture_output=True, text=True,
                       timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


# Runs the command in a fresh process with an epoch-end hook that SIGKILLs it (kill -9: no
# cleanup, no finally) once the given epoch's checkpoint is on disk.
_KILL_AFTER_EPOCH = """
import os, signal, sys
from mixkit.harness.cli import main
from mixkit.harness.train.loop import EPOCH_END_HOOKS

def kill(epoch, info):
    if epoch == {epoch} and info.is_main:
        os.kill(os.getpid(), signal.SIGKILL)

EPOCH_END_HOOKS.append(kill)
sys.exit(main({argv!r}))
"""


def _run_killed_after_epoch(epoch, args):
    code = _KILL_AFTER_EPOCH.format(epoch=int(epoch), argv=list(args))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mixup+fmix", "synermix"])
def test_resume_after_kill_matches_uninterrupted(tmp_path, method):
    args = [*TINY, "--method", method, "--epochs", "3", "--seed", "5"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    _run(["train", *args, "--out", whole])
    p = _run_killed_after_epoch(1, ["train", *args, "--out", cut])
    assert p.returncode == -9, p.stderr                    # SIGKILL after epoch 1's checkpoint
    assert "epoch   1/3" in p.stderr and "epoch   2/3" not in p.stderr
    assert not os.path.exists(os.path.join(cut, "final.json"))
    assert len(open(os.path.join(cut, "metrics.jsonl")).readlines()) == 1
    p = _run(["train", "--out", cut, "--resume"])
    assert "resuming after epoch 1/3" in p.stderr
    a, b = _final(whole), _final(cut)
    for key in ("test_error", "nll", "ece", "macro_f1", "train_loss"):
        assert a[key] == b[key], key
    curve_a = [json.loads(x)["nll"] for x in open(os.path.join(whole, "metrics.jsonl"))]
    curve_b = [json.loads(x)["nll"] for x in open(os.path.join(cut, "metrics.jsonl"))]
    assert curve_a == curve_b
    sd_a = torch.load(os.path.join(whole, "checkpoint.pt"), weights_only=True)["model"]
    sd_b = torch.load(os.path.join(cut, "checkpoint.pt"), weights_only=True)["model"]
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


@pytest.mark.slow
def test_resume_errors(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--epochs", "1", "--out", out]) == 0
    # the same directory again without --resume
    assert main(["train", *TINY, "--epochs", "1", "--out", out]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    # resume with different settings
    os.remove(os.path.join(out, "final.json"))
    assert main(["train", "--out", out, "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "differ from the run" in err and "lr: run has 0.1, given 0.5" in err
    # a damaged checkpoint
    with open(os.path.join(out, "checkpoint.pt"), "r+b") as f:
        f.truncate(100)
    assert main(["train", "--out", out, "--resume"]) == 2
    assert "checkpoint" in (err := capsys.readouterr().err) and "damaged" in err
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "expected a run directory with config.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_two_methods_two_seeds_and_skip(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    args = ["compare", *TINY, "--methods", "erm,mixup", "--seeds", "0,1", "--epochs", "1", "--out", out]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "| erm | 2 |" in printed.out and "| mixup | 2 |" in printed.out
    for name in ("results.md", "results.csv", "summary.csv", "error_bars.png", "curves.png",
                 "cohesion_calibration.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    rows = open(os.path.join(out, "results.csv")).read().splitlines()
    assert rows[0].startswith("method,seed,test_error") and len(rows) == 5
    errors = {(r.split(",")[0], r.split(",")[1]): float(r.split(",")[2]) for r in rows[1:]}
    assert errors[("erm", "0")] == _final(os.path.join(out, "erm", "seed0"))["test_error"]
    # every run says which code, machine and time produced it, and the report gathers them
    facts = _final(os.path.join(out, "mixup", "seed1"))["provenance"]
    assert facts["mixkit"] and facts["torch"] == torch.__version__ and re.match(r"\d{4}-\d\d-\d\dT", facts["finished"])
    assert facts["started"] <= facts["finished"]            # taken at the start, so the code that ran
    report = open(os.path.join(out, "results.md")).read()
    assert "## Provenance" in report and f"commit {facts['commit']}" in report
    assert f"command: `mixkit {' '.join(args)}`" in report
    stamp = os.path.getmtime(os.path.join(out, "erm", "seed0", "final.json"))
    assert main(args) == 0
    assert "finished earlier, skipped" in capsys.readouterr().err
    assert os.path.getmtime(os.path.join(out, "erm", "seed0", "final.json")) == stamp


@pytest.mark.slow
def test_compare_parallel_jobs_match_serial(tmp_path, capsys):
    """--jobs 2 trains in worker processes; every run equals the serial one (both 1 thread)."""
    common = ["compare", *TINY, "--methods", "erm,cutmix", "--seeds", "0", "--epochs", "1"]
    serial, parallel = str(tmp_path / "serial"), str(tmp_path / "parallel")
    assert main([*common, "--out", serial]) == 0
    assert main([*common, "--out", parallel, "--jobs", "2"]) == 0
    for m in ("erm", "cutmix"):
        a, b = _final(os.path.join(serial, m, "seed0")), _final(os.path.join(parallel, m, "seed0"))
        assert a["test_error"] == b["test_error"] and a["nll"] == b["nll"]
    assert open(os.path.join(parallel, "results.csv")).read().count("\n") == 3
    with pytest.raises(SystemExit):
        main([*common, "--out", parallel, "--jobs", "x"])
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "zero"), "--jobs", "0"]) == 2
    assert "jobs: expected a positive number of parallel runs, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["train", "--out", "x", "--method", "mixupp"], "method: expected one of erm, mixup"),
    (["train", "--out", "x", "--dataset", "cifar11"], "cifar11"),
    (["compare", "--out", "x", "--methods", "erm,foo"], "methods: expected names among"),
    (["train", "--out", "x", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent"], "apt-get install"),
])
def test_cli_errors(argv, match, capsys, tmp_path):
    argv = [a if a != "x" else str(tmp_path / "x") for a in argv]
    assert main(argv) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["train", "--out", "x", "--epochs", "two"], "argument --epochs: invalid int value"),
    (["train", "--epochs", "1"], "the following arguments are required: --out"),
    (["compare", "--out", "x", "--seeds", "0,a"], "expected comma-separated integers"),
    (["fly"], "invalid choice"),
])
def test_cli_flag_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert match in capsys.readouterr().err


def test_corrupt_data_file_through_cli(tmp_path, capsys):
    import gzip
    import struct
    d = tmp_path / "fm"
    d.mkdir()
    for prefix, n in (("train", 20), ("t10k", 10)):
        with gzip.open(d / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + bytes(28 * 28 * n - 5))  # truncated
        with gzip.open(d / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, n) + bytes(n))
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(d), "--out", str(tmp_path / "r")]) == 2
    assert "truncated" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mixup", "synermix"])
def test_two_process_gloo(tmp_path, method):
    out = str(tmp_path / "ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "mixkit", "train", *TINY, "--method", method,
           "--epochs", "2", "--device", "cpu", "--out", out]
    p = proctree.run(cmd, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    final = _final(out)
    assert final["world_size"] == 2 and final["n_test"] == 120       # metrics over both shards
    assert p.stdout.count("test error") == 1                           # only rank 0 reports
    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
    assert len(ck["generators"]) == 2 and not torch.equal(ck["generators"][0], ck["generators"][1])
    # The metrics describe the checkpointed model: both ranks evaluated rank 0's batch-norm statistics.
    from mixkit.harness.data.datasets import load_dataset
    from mixkit.harness.models import build_model
    from mixkit.harness.train.config import TrainConfig
    from mixkit.harness.train.dist import DistInfo
    from mixkit.harness.train.loop import evaluate

    data = load_dataset("digits", train_size=240, test_size=120, seed=0)
    model = build_model("small-cnn", num_classes=10, input_shape=tuple(data.train_x.shape[1:]))
    model.load_state_dict(ck["model"])
    mine = evaluate(model, data.test_x, data.test_y, 10, TrainConfig(), torch.device("cpu"), DistInfo(), None)
    assert mine["n_test"] == 120 and mine["test_error"] == final["test_error"]
    assert abs(mine["nll"] - final["nll"]) < 1e-6


_PAUSE_AFTER_EPOCH = """
import os, sys, time
from mixkit.harness.cli import main
from mixkit.harness.train.loop import EPOCH_END_HOOKS

def pause(epoch, info):
    if epoch == 1 and info.is_main:
        open({marker!r}, "w").close()
        time.sleep(120)              # the test kills the launcher meanwhile

EPOCH_END_HOOKS.append(pause)
sys.exit(main(sys.argv[1:]))
"""


def _torchrun(args, script=None):
    head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}"]
    return head + ([script] if script else ["-m", "mixkit"]) + list(args)


@pytest.mark.slow
def test_two_process_resume_after_kill_of_the_launcher_is_exact(tmp_path):
    """kill -9 of torchrun after epoch 1: its workers end with it (the run directory's lock is free
    again), and the resumed run equals the uninterrupted one in test metrics, the batch-norm
    statistics that rank 1 evaluates with included."""
    import signal
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["train", *TINY, "--method", "mixup+fmix", "--epochs", "3", "--seed", "3", "--device", "cpu"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    p = proctree.run(_torchrun([*args, "--out", whole]), env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    marker, script = str(tmp_path / "epoch1"), str(tmp_path / "pause.py")
    with open(script, "w") as f:
        f.write(_PAUSE_AFTER_EPOCH.format(marker=marker))
    launcher = subprocess.Popen(_torchrun([*args, "--out", cut], script), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(marker):
            assert launcher.poll() is None and time.monotonic() < deadline, "the run never reached epoch 1"
            time.sleep(0.2)
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    assert not os.path.exists(os.path.join(cut, "final.json"))
    p = proctree.run(_torchrun(["train", "--out", cut, "--resume", "--device", "cpu", "--threads", "1"]),
                     env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resuming after epoch 1/3" in p.stderr
    a, b = _final(whole), _final(cut)
    for key in ("test_error", "nll", "ece", "macro_f1", "train_loss"):
        assert a[key] == b[key], key
    curve = [[json.loads(x)["nll"] for x in open(os.path.join(d, "metrics.jsonl"))] for d in (whole, cut)]
    assert curve[0] == curve[1]


def test_show_and_bench_are_wired(tmp_path, capsys):
    for sub in ("show", "bench"):
        with pytest.raises(SystemExit) as e:
            main([sub, "--help"])
        assert e.value.code == 0
        assert f"mixkit {sub}" in capsys.readouterr().out
    assert main(["bench", "--shapes", "4x1x8x8", "--repeats", "1", "--quick", "--no-peers",
                 "--out", str(tmp_path / "b")]) == 0
    assert "## 4×1×8×8" in (tmp_path / "b" / "bench.md").read_text()


def test_help_lists_every_config_field(capsys):
    from dataclasses import fields

    from mixkit.harness.train.config import TrainConfig
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name


def test_version_flag(capsys):
    import mixkit
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"mixkit {mixkit.__version__} (torch {torch.__version__}, Python ")


@pytest.mark.parametrize("missing, extra", [("numpy", "harness"), ("matplotlib.pyplot", "harness"),
                                            ("PIL", "harness"), ("timm", "peers")])
def test_a_missing_extra_is_one_line_with_the_install_command(missing, extra, capsys, monkeypatch):
    from mixkit.harness import cli

    def lacking(name):
        def fail(ns):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return fail

    monkeypatch.setattr(cli, "_train", lacking(missing))
    assert main(["train", "--out", "x"]) == 2
    top = missing.split(".")[0]
    assert capsys.readouterr().err == (f"mixkit train: error: {top} is not installed (the {extra} extra); "
                                       f"install it with: pip install 'mixkit[{extra}]'\n")
    monkeypatch.setattr(cli, "_train", lacking("x"))       # another module keeps torch's message
    assert main(["train", "--out", "x"]) == 2
    assert capsys.readouterr().err == "mixkit train: error: No module named 'x'\n"


def test_paper_column_for_recipe_presets():
    from mixkit.harness.train.compare import markdown_table
    summary = {m: {"n": 1, "test_error": (e, float("nan")), "by_seed": {0: e}}
               for m, e in (("erm", 0.05), ("fmix", 0.04))}
    table = markdown_table(summary, ["erm", "fmix"], [("fmix", "erm")], paper={"erm": 4.30, "fmix": 3.64})
    assert "paper's error %" in table and "| 4.30 |" in table and "| 3.64 |" in table
    assert "| fmix − erm | -1.00 (n = 1) | 1 |" in table


def _write_fashion(d, n_train=60, n_test=20, seed=0):
    import gzip
    import struct
    g = torch.Generator().manual_seed(seed)
    d.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (torch.arange(n) % 10).to(torch.uint8)
        images = (torch.rand(n, 28, 28, generator=g) * 60 + labels.view(n, 1, 1) * 19).to(torch.uint8)
        with gzip.open(d / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + images.numpy().tobytes())
        with gzip.open(d / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, n) + labels.numpy().tobytes())


@pytest.mark.slow
def test_realism_in_trained_feature_space(tmp_path):
    from mixkit.harness.analysis.cohesion import penultimate_features
    from mixkit.harness.analysis.realism import trained_feature_fn
    from mixkit.harness.data.datasets import load_dataset
    from mixkit.harness.models import build_model
    data_dir = tmp_path / "fm"
    _write_fashion(data_dir)
    run = str(tmp_path / "run")
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--epochs", "1",
                 "--batch-size", "20", "--threads", "1", "--out", run]) == 0
    fn = trained_feature_fn(run)
    data = load_dataset("fashion-mnist", data_dir=str(data_dir))
    pixels = data.test_x * torch.tensor(data.std).view(1, -1, 1, 1) + torch.tensor(data.mean).view(1, -1, 1, 1)
    feats = fn(pixels)
    model = build_model("small-cnn", num_classes=10, input_shape=(1, 28, 28))
    model.load_state_dict(torch.load(os.path.join(run, "checkpoint.pt"), weights_only=True)["model"])
    ref, _ = penultimate_features(model, [(data.test_x, data.test_y)], "pool")
    torch.testing.assert_close(feats, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["manifold", "synermix-manifold"])
def test_hidden_layer_methods_on_a_cifar_stem_resnet_at_32px(tmp_path, method, monkeypatch):
    # layer1 of the CIFAR-stem ResNet-18 is 64x32x32 and layer2 128x16x16 per sample: mixing there
    # runs with autograd on large samples
    from test_datasets import write_cifar
    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    write_cifar(tmp_path / "data", per_batch=16)
    out = str(tmp_path / method)
    argv = ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--model", "resnet18",
            "--method", method, "--epochs", "1", "--batch-size", "16", "--threads", "2", "--seed", "0",
            "--out", out]
    assert main(argv) == 0
    assert math_finite(_final(out)["nll"])


@pytest.mark.slow
def test_fmix_paper_recipe_command_runs_one_short_epoch_on_cpu(tmp_path, capsys):
    """The GPU recipe's one command (PreAct-ResNet18, crop + flip, multistep lr; ERM, MixUp,
    CutMix, FMix), cut to one epoch (one step of 128) on 130 written Fashion-MNIST-format images: every run
    finishes and the report prints the paper's errors beside ours."""
    from test_datasets import make_fashion_dir
    make_fashion_dir(tmp_path / "fm", n_train=130, n_test=40)
    out = str(tmp_path / "preact")
    assert main(["compare", "--preset", "fmix-fashion-preact", "--data-dir", str(tmp_path / "fm"),
                 "--epochs", "1", "--device", "cpu", "--threads", "2", "--out", out]) == 0
    printed = capsys.readouterr().out
    from mixkit.harness.train.config import COMPARE_PRESETS

    for method, paper in COMPARE_PRESETS["fmix-fashion-preact"]["paper"].items():
        paper = f"{paper:.2f}"
        final = _final(os.path.join(out, method, "seed0"))
        assert final["model"] == "preact-resnet18" and final["epochs"] == 1 and final["n_test"] == 40
        assert re.search(rf"^\| {method} \| 1 \|.*\| {paper} \|$", printed, re.M)
    cfg = open(os.path.join(out, "fmix", "seed0", "config.yaml")).read()
    assert "augment: crop-flip" in cfg and "schedule: multistep" in cfg and "batch_size: 128" in cfg
