"""Adversarial use of the ``mixkit`` command: bad flags and config files, unusable ``--out``,
damaged or edited run directories, concurrent and killed runs, odd images, several processes.

A bad input must end in a clean error: exit status 2, one ``mixkit <command>: error: ...`` naming
the argument (or file) at fault, and no traceback from mixkit. Cases that fail before any
training call the command in this process; those that train run the real command in a
subprocess and are marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import proctree
import pytest
import torch

from mixkit.harness.cli import main

TINY = ["--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
        "--model", "small-cnn", "--threads", "1", "--epochs", "1"]
IMG = ["--dataset", "imagefolder", "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--threads", "1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """``--threads 1`` sets torch's thread count in this process; put it back after each case."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _in_process(argv, capsys) -> tuple[int, str]:
    """``mixkit ARGV`` in this process: (exit status, stderr). An exception that escapes the
    command fails the test, as a traceback would reach the user."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's errors
        code = e.code
    return code, capsys.readouterr().err


def _no_mixkit_traceback(stderr: str) -> bool:
    """No frame of mixkit in the output; a traceback only from torchrun's own launcher."""
    if any(line.strip().startswith("File") and "mixkit" in line for line in stderr.splitlines()):
        return False
    return "Traceback" not in stderr or "torch/distributed" in stderr


def _assert_clean_error(code: int, stderr: str, command: str, *needles: str, launcher: bool = False) -> None:
    """Exit status 2 (under torchrun, whose launcher exits 1 when a worker fails: not 0), the
    command's error line, no traceback from mixkit, and every needle in the message."""
    assert code != 0 if launcher else code == 2, stderr
    assert f"mixkit {command}: error: " in stderr, stderr
    assert _no_mixkit_traceback(stderr), stderr
    for needle in needles:
        assert needle in stderr, f"{needle!r} not in {stderr!r}"


def _mixkit(*args, timeout=300):
    """The real command in a subprocess (one thread)."""
    return subprocess.run([sys.executable, "-m", "mixkit", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _torchrun(*args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", "-m", "mixkit", *args]
    return proctree.run(cmd, env=ENV, timeout=600)


def _final(run_dir) -> dict:
    with open(os.path.join(run_dir, "final.json"), encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# Bad flags and config files: refused before training, naming the field.

BAD_TRAIN_FLAGS = [
    ("lr inf", [*TINY, "--lr", "inf"], ["lr: expected a finite number"]),
    ("momentum nan", [*TINY, "--momentum", "nan"], ["momentum: expected a finite number"]),
    ("lr -1", [*TINY, "--lr", "-1"], ["lr: expected a number > 0"]),
    ("epochs 0", [*TINY, "--epochs", "0"], ["epochs: expected"]),
    ("batch-size 0", [*TINY, "--batch-size", "0"], ["batch_size: expected"]),
    ("batch-size above the set", [*TINY, "--batch-size", "1000"], ["batch_size: expected at most"]),
    ("method bogus", [*TINY, "--method", "bogus"], ["method: expected one of"]),
    ("dataset bogus", [*TINY, "--dataset", "bogus"], ["dataset 'bogus'"]),
    ("milestones 1,x", [*TINY, "--milestones", "1,x"], ["milestones: expected", "'1,x'"]),
    ("warmup-epochs >= epochs", [*TINY, "--warmup-epochs", "3"], ["warmup_epochs: expected"]),
    ("augment rrc-flip in memory", [*TINY, "--augment", "rrc-flip"], ["augment: expected", "rrc-flip needs"]),
    ("loader bogus", [*TINY, "--loader", "bogus"], ["loader: expected one of"]),
    ("workers -1", [*TINY, "--workers", "-1"], ["workers: expected"]),
    ("cutout -1", [*TINY, "--cutout", "-1"], ["cutout: expected"]),
    ("balanced maybe", [*TINY, "--balanced", "maybe"], ["--balanced", "'maybe'"]),
    ("train-size above the set", ["--dataset", "digits", "--train-size", "99999"], ["train_size=99999"]),
    ("device cuda without a GPU", [*TINY, "--device", "cuda"], ["device: expected"]),
    ("config missing", [*TINY, "--config", "/nonexistent.yaml"], ["/nonexistent.yaml", "not found"]),
    ("imagefolder without --data-dir", ["--dataset", "imagefolder", "--epochs", "1"], ["--data-dir"]),
    ("imagefolder, missing folder", ["--dataset", "imagefolder", "--data-dir", "/nonexistent"],
     ["/nonexistent", "does not exist"]),
    ("fashion-mnist, empty --data-dir", ["--dataset", "fashion-mnist", "--data-dir", "{empty}"],
     ["Fashion-MNIST files not found in {empty}"]),
]


@pytest.mark.parametrize("args, needles", [c[1:] for c in BAD_TRAIN_FLAGS], ids=[c[0] for c in BAD_TRAIN_FLAGS])
def test_train_refuses_a_bad_flag_naming_it(args, needles, tmp_path, capsys):
    if torch.cuda.is_available() and "cuda" in args:
        pytest.skip("a GPU is present")
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("{empty}", str(empty)) for a in args]
    code, err = _in_process(["train", *args, "--out", str(tmp_path / "o")], capsys)
    _assert_clean_error(code, err, "train", *[n.replace("{empty}", str(empty)) for n in needles])


BAD_COMPARE_FLAGS = [
    ("unknown method", ["--methods", "erm,bogus", "--seeds", "0"], ["methods: expected names among", "bogus"]),
    ("duplicate seeds", ["--methods", "erm", "--seeds", "0,0"], ["seeds: expected distinct"]),
    ("jobs 0", ["--methods", "erm", "--seeds", "0", "--jobs", "0"], ["jobs: expected"]),
]


@pytest.mark.parametrize("args, needles", [c[1:] for c in BAD_COMPARE_FLAGS],
                         ids=[c[0] for c in BAD_COMPARE_FLAGS])
def test_compare_refuses_a_bad_flag_naming_it(args, needles, tmp_path, capsys):
    code, err = _in_process(["compare", "--dataset", "digits", *args, "--out", str(tmp_path / "o")], capsys)
    _assert_clean_error(code, err, "compare", *needles)


BAD_YAML = [
    ('nesterov "false"', 'nesterov: "false"\n', ["nesterov: expected true or false"]),
    ("lr_decay true", "lr_decay: true\n", ["lr_decay: expected a finite number"]),
    ('amp "no"', 'amp: "no"\n', ["amp: expected true or false"]),
    ("unknown key", "learning_rate: 0.1\n", ["unknown keys", "learning_rate"]),
    ("a list", "- 1\n- 2\n", ["c.yaml", "expected a mapping"]),
    ("malformed", "lr: [1, 2\n", ["c.yaml", "could not parse"]),
    ("milestones string", "milestones: 100,x\n", ["milestones: expected"]),
]


@pytest.mark.parametrize("text, needles", [c[1:] for c in BAD_YAML], ids=[c[0] for c in BAD_YAML])
def test_train_refuses_a_bad_config_file_naming_the_field(text, needles, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, err = _in_process(["train", *TINY, "--config", str(path), "--out", str(tmp_path / "o")], capsys)
    _assert_clean_error(code, err, "train", *needles)


# ---------------------------------------------------------------------------------------------
# An --out that cannot be a run directory.


def test_out_is_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.touch()
    code, err = _in_process(["train", *TINY, "--out", str(path)], capsys)
    _assert_clean_error(code, err, "train", f"--out {path}")


def test_out_under_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.touch()
    code, err = _in_process(["train", *TINY, "--out", str(path / "x")], capsys)
    _assert_clean_error(code, err, "train", f"--out {path / 'x'}")


def test_show_out_under_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.touch()
    code, err = _in_process(["show", "--out", str(path / "x")], capsys)
    _assert_clean_error(code, err, "show", str(path / "x"))


def test_resume_of_an_empty_folder(tmp_path, capsys):
    (tmp_path / "e").mkdir()
    code, err = _in_process(["train", "--resume", "--out", str(tmp_path / "e")], capsys)
    _assert_clean_error(code, err, "train", "resume: expected a run directory", str(tmp_path / "e"))


# ---------------------------------------------------------------------------------------------
# Images an ImageFolder run cannot use.


def _images(root, bad=None):
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(2):
            d = root / split / f"c{c}"
            d.mkdir(parents=True)
            for i in range(8):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(d / f"{i}.png")
    if bad == "corrupt":
        (root / "train" / "c0" / "0.png").write_bytes(b"not a png")
    if bad == "float":
        Image.fromarray(rng.random((20, 20)).astype("float32"), mode="F").save(root / "train" / "c0" / "f.tiff")
    if bad == "16bit":
        Image.fromarray(rng.integers(0, 65536, (20, 20)).astype("uint16")).save(root / "train" / "c0" / "s.png")
    return root


@pytest.mark.parametrize("bad, needle", [("corrupt", "0.png"), ("float", "float")])
def test_imagefolder_refuses_an_unreadable_or_float_image_naming_it(bad, needle, tmp_path, capsys):
    data = _images(tmp_path / "d", bad)
    code, err = _in_process(["train", *IMG, "--data-dir", str(data), "--out", str(tmp_path / "o")], capsys)
    _assert_clean_error(code, err, "train", needle)


@pytest.mark.slow
def test_imagefolder_scales_a_16_bit_image_in_memory_and_streamed(tmp_path):
    data = str(_images(tmp_path / "d", "16bit"))
    memory = _mixkit("train", *IMG, "--data-dir", data, "--out", str(tmp_path / "m"))
    assert memory.returncode == 0, memory.stderr
    streamed = _mixkit("train", *IMG, "--data-dir", data, "--loader", "stream", "--workers", "2",
                       "--augment", "rrc-flip", "--out", str(tmp_path / "s"))
    assert streamed.returncode == 0, streamed.stderr


# ---------------------------------------------------------------------------------------------
# Lists read as lists, numbers as numbers (the saved config.yaml).


@pytest.mark.slow
def test_config_file_reads_1e_3_as_a_number_and_milestones_as_a_list(tmp_path):
    yaml = pytest.importorskip("yaml")
    path, out = tmp_path / "c.yaml", tmp_path / "o"
    path.write_text("lr: 1e-3\nmilestones: 100,150\nschedule: multistep\n")
    p = _mixkit("train", *TINY, "--config", str(path), "--out", str(out))
    assert p.returncode == 0, p.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lr"] == 0.001 and saved["milestones"] == [100, 150]


@pytest.mark.slow
def test_milestones_flag_is_a_list(tmp_path):
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "o"
    p = _mixkit("train", *TINY, "--schedule", "multistep", "--milestones", "100,150", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["milestones"] == [100, 150]


# ---------------------------------------------------------------------------------------------
# Finished, damaged and edited run directories (each case works on its own copy of a run).


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """Two finished runs, trained once for the module: erm for 1 epoch, mixup for 2."""
    base = tmp_path_factory.mktemp("finished")
    runs = {"erm": base / "erm", "mixup": base / "mixup"}
    for args, out in (([], runs["erm"]), (["--method", "mixup", "--epochs", "2"], runs["mixup"])):
        p = _mixkit("train", *TINY, *args, "--out", str(out))
        assert p.returncode == 0, p.stderr
    return runs


def _copy(finished_runs, name, tmp_path, *, unfinished=False) -> str:
    """A copy of a finished run; ``unfinished``: without final.json, as if killed after its last
    checkpoint."""
    out = tmp_path / "run"
    shutil.copytree(finished_runs[name], out)
    if unfinished:
        (out / "final.json").unlink()
    return str(out)


@pytest.mark.slow
def test_second_run_into_a_finished_out_is_refused(finished_runs, tmp_path):
    out = _copy(finished_runs, "erm", tmp_path)
    p = _mixkit("train", *TINY, "--out", out)
    _assert_clean_error(p.returncode, p.stderr, "train", "already holds a run")


@pytest.mark.slow
def test_resume_with_a_0_byte_checkpoint_is_refused(finished_runs, tmp_path):
    out = _copy(finished_runs, "erm", tmp_path, unfinished=True)
    open(os.path.join(out, "checkpoint.pt"), "w").close()
    p = _mixkit("train", "--resume", "--out", out)
    _assert_clean_error(p.returncode, p.stderr, "train", os.path.join(out, "checkpoint.pt"), "empty")


@pytest.mark.slow
def test_resume_with_a_checkpoint_without_world_size_is_refused(finished_runs, tmp_path):
    out = _copy(finished_runs, "erm", tmp_path, unfinished=True)
    path = os.path.join(out, "checkpoint.pt")
    ckpt = torch.load(path, weights_only=True)
    del ckpt["world_size"]
    torch.save(ckpt, path)
    p = _mixkit("train", "--resume", "--out", out)
    _assert_clean_error(p.returncode, p.stderr, "train", path, "world_size missing")


@pytest.mark.slow
def test_resume_keeps_the_checkpoints_settings_after_config_yaml_is_edited(finished_runs, tmp_path):
    out = _copy(finished_runs, "mixup", tmp_path, unfinished=True)
    cfg = os.path.join(out, "config.yaml")
    with open(cfg, encoding="utf-8") as f:
        text = f.read()
    assert "method: mixup" in text
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(text.replace("method: mixup", "method: cutmix"))
    p = _mixkit("train", "--resume", "--out", out)
    assert p.returncode == 0, p.stderr
    assert _final(out)["method"] == "mixup"


@pytest.mark.slow
def test_resume_keeps_the_checkpoints_settings_after_config_yaml_is_emptied(finished_runs, tmp_path):
    out = _copy(finished_runs, "mixup", tmp_path, unfinished=True)
    open(os.path.join(out, "config.yaml"), "w").close()
    p = _mixkit("train", "--resume", "--out", out)
    assert p.returncode == 0, p.stderr
    final = _final(out)
    assert final["method"] == "mixup" and final["epochs"] == 2


@pytest.mark.slow
def test_resume_with_a_contradicting_flag_is_refused_naming_the_field(finished_runs, tmp_path):
    out = _copy(finished_runs, "mixup", tmp_path, unfinished=True)
    p = _mixkit("train", "--resume", "--method", "cutmix", "--out", out)
    _assert_clean_error(p.returncode, p.stderr, "train", "differ", "method")


@pytest.mark.slow
def test_leftover_temporaries_are_removed_at_the_next_start(finished_runs, tmp_path):
    out = _copy(finished_runs, "erm", tmp_path, unfinished=True)
    junk = os.path.join(out, ".tmp-checkpoint.pt.ab12cd34")
    with open(junk, "wb") as f:
        f.write(b"x" * 1000)
    p = _mixkit("train", "--resume", "--out", out)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(junk)


@pytest.mark.slow
def test_files_follow_the_umask(tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:  # the child inherits the umask
        p = _mixkit("train", *TINY, "--out", str(out))
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    modes = {f: oct(os.stat(out / f).st_mode & 0o777) for f in ("final.json", "checkpoint.pt")}
    assert set(modes.values()) == {"0o644"}, modes


# ---------------------------------------------------------------------------------------------
# Concurrent and killed runs.


def _popen(*args):
    return subprocess.Popen([sys.executable, "-m", "mixkit", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)


def _wait_for(predicate, timeout: float, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate() and (proc is None or proc.poll() is None):
        time.sleep(0.05)


@pytest.mark.slow
def test_two_runs_at_once_into_one_out(tmp_path):
    out = tmp_path / "run"
    first = _popen("train", *TINY, "--epochs", "30", "--out", str(out))
    try:
        _wait_for(lambda: (out / "config.yaml").exists(), 60, first)
        assert first.poll() is None, "the first run ended before the second started"
        p = _mixkit("train", *TINY, "--method", "cutmix", "--out", str(out))
        _assert_clean_error(p.returncode, p.stderr, "train", "another run is using it")
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_equals_the_uninterrupted_run(tmp_path):
    args = [*TINY, "--epochs", "4", "--method", "mixup+fmix", "--seed", "2"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    p = _mixkit("train", *args, "--out", str(whole))
    assert p.returncode == 0, p.stderr
    proc = _popen("train", *args, "--out", str(cut))
    metrics = cut / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, 120, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (cut / "final.json").exists():
        pytest.skip("the run finished before the kill (inconclusive)")
    p = _mixkit("train", "--resume", "--out", str(cut))
    assert p.returncode == 0, p.stderr
    a, b = _final(whole), _final(cut)
    assert {k: a[k] for k in ("test_error", "nll", "train_loss")} == {k: b[k] for k in ("test_error", "nll", "train_loss")}


def _alive(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return "zombie" not in f.read().lower()
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pgrep") is None or not os.path.isdir("/proc"), reason="needs pgrep and /proc")
def test_kill_9_of_compare_with_2_jobs_leaves_no_worker(tmp_path):
    proc = _popen("compare", "--dataset", "digits", "--methods", "erm,mixup", "--seeds", "0", "--epochs", "50",
                  "--jobs", "2", "--out", str(tmp_path / "cmp"))
    try:
        children: list[str] = []

        def two_workers() -> bool:
            children[:] = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                         text=True).stdout.split()
            return len(children) >= 2

        _wait_for(two_workers, 60, proc)
        assert children, "compare started no worker"
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _wait_for(lambda: not any(_alive(c) for c in children), 10)
    assert not [c for c in children if _alive(c)]


# ---------------------------------------------------------------------------------------------
# Several processes (torchrun, CPU).


@pytest.mark.slow
def test_torchrun_2_processes_3_times_exit_0(tmp_path):
    codes = []
    for i in range(3):
        p = _torchrun("train", *TINY, "--epochs", "3", "--method", "synermix", "--device", "cpu",
                      "--out", str(tmp_path / f"r{i}"))
        codes.append((p.returncode, p.stderr[-2000:]))
    assert [c for c, _ in codes] == [0, 0, 0], codes


@pytest.mark.slow
def test_torchrun_sync_bn_on_cpu_is_refused(tmp_path):
    p = _torchrun("train", *TINY, "--device", "cpu", "--sync-bn", "--out", str(tmp_path / "o"))
    _assert_clean_error(p.returncode, p.stderr, "train", "sync_bn: expected a CUDA device", launcher=True)


@pytest.mark.slow
def test_torchrun_2_processes_streamed_manifold_tests_every_sample(tmp_path):
    out = tmp_path / "o"
    p = _torchrun("train", *TINY, "--device", "cpu", "--loader", "stream", "--method", "manifold", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert _final(out)["n_test"] == 120
