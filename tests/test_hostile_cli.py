"""Hostile use of the ``mixkit`` command (issue 27, "In the command line"): each finding ends in a
one-line error or a refusal.

The rule every case asserts: exit status 2 (130 for an interrupt), exactly one ``mixkit <command>:
error: ...`` line, the last one on stderr, naming the argument or file at fault and what is wrong
with it, and no Python traceback. Cases that fail before or within a second of training run in
this process; those that train for longer, or need several processes, run the real command in a
subprocess and are marked slow.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mixkit.harness import files
from mixkit.harness.cli import main
from mixkit.harness.rundir import lock_run_dir
from mixkit.harness.train import methods
from mixkit.harness.train.checkpoint import load_checkpoint

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = dict(os.environ, OMP_NUM_THREADS="1",
           PYTHONPATH=os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])]))
TINY = ["--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
        "--model", "small-cnn", "--threads", "1"]


def _in_process(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


def _mixkit(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixkit", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _error_line(code: int, stderr: str, command: str, *needles: str, status: int = 2) -> str:
    """The one error line of a refused command, after checking the rule; returns it."""
    assert code == status, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(f"mixkit {command}: ")]
    assert len(errors) == 1, stderr
    assert stderr.rstrip().splitlines()[-1] == errors[0], stderr
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def _temporaries(directory) -> list[str]:
    return [n for n in os.listdir(directory) if files.is_temporary(n)]


# ---------------------------------------------------------------------------------------------
# Flags and settings refused before anything runs.


@pytest.mark.parametrize("value", ["0", "-1"])
def test_show_refuses_moon_draws_below_1(value, tmp_path, capsys):
    code, err = _in_process(["show", "--moon-draws", value, "--out", str(tmp_path / "g")], capsys)
    _error_line(code, err, "show", "--moon-draws", value)
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bench_refuses_repeats_below_1(value, capsys):
    code, err = _in_process(["bench", "--quick", "--device", "cpu", "--repeats", value], capsys)
    _error_line(code, err, "bench", "--repeats", value)


def test_an_unknown_model_names_the_model_flag(tmp_path, capsys):
    code, err = _in_process(["train", *TINY, "--model", "bogus", "--out", str(tmp_path / "o")], capsys)
    _error_line(code, err, "train", "--model", "'bogus'", "small-cnn")


def test_alpha_below_float32_normal_names_alpha_and_not_the_learning_rate(tmp_path, capsys):
    code, err = _in_process(["train", *TINY, "--method", "mixup", "--alpha", "1e-320",
                             "--out", str(tmp_path / "o")], capsys)
    line = _error_line(code, err, "train", "--alpha", "1e-320")
    assert "learning rate" not in line
    assert not (tmp_path / "o" / "config.yaml").exists()        # refused before the run began


def test_a_fractional_epochs_in_a_config_file_names_the_field_and_the_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1.5\n")
    code, err = _in_process(["train", *TINY, "--config", str(config), "--out", str(tmp_path / "o")], capsys)
    _error_line(code, err, "train", "epochs", "1.5", str(config))


@pytest.mark.parametrize("flag, value, plural", [("--method", "mixup", "--methods"), ("--seed", "1", "--seeds")])
def test_compare_refuses_trains_singular_flags_naming_the_plural(flag, value, plural, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, err = _in_process(["compare", *TINY, "--epochs", "1", flag, value, "--out", str(out)], capsys)
    _error_line(code, err, "compare", flag, plural)
    assert not out.exists()


def test_an_imagefolder_of_one_class_is_refused(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("PIL.Image")
    for split in ("train", "test"):
        d = tmp_path / "d" / split / "only"
        d.mkdir(parents=True)
        for i in range(4):
            image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(d / f"{i}.png")
    code, err = _in_process(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "d"),
                             "--image-size", "8", "--batch-size", "2", "--epochs", "1", "--threads", "1",
                             "--out", str(tmp_path / "o")], capsys)
    _error_line(code, err, "train", str(tmp_path / "d" / "train"), "at least 2 classes")
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------
# Damaged, edited and malicious run directories.


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run of 2 epochs (trained once for the module, in this process: about a second)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    threads = torch.get_num_threads()
    try:
        assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _unfinished_copy(finished_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "final.json").unlink()
    return out


def _edit_checkpoint(out: Path, edit) -> None:
    path = out / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


DAMAGE = [
    ("config names another model", lambda s: s["config"].update(model="resnet18"),
     ["model", "resnet18", "weights"]),
    ("a 3-byte generator state", lambda s: s["generators"].__setitem__(0, torch.tensor([1, 2, 3], dtype=torch.uint8)),
     ["generators[0]", "5056 bytes"]),
    ("epoch 7 of 2", lambda s: s.update(epoch=7), ["epoch", "7", "2 epochs"]),
]


@pytest.mark.parametrize("case, edit, needles", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_resume_from_an_edited_checkpoint_names_the_file_and_what_is_wrong(case, edit, needles, finished_run,
                                                                          tmp_path, capsys):
    out = _unfinished_copy(finished_run, tmp_path)
    _edit_checkpoint(out, edit)
    code, err = _in_process(["train", "--resume", "--out", str(out)], capsys)
    _error_line(code, err, "train", str(out / "checkpoint.pt"), *needles)
    assert not (out / "final.json").exists()          # nothing "finished"


def test_a_truncated_final_json_names_the_file(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    text = (out / "final.json").read_text()
    (out / "final.json").write_text(text[: len(text) // 3])
    code, err = _in_process(["train", "--resume", "--out", str(out)], capsys)
    _error_line(code, err, "train", str(out / "final.json"), "damaged", "JSON")


def test_resume_with_another_eval_batch_size_is_refused(finished_run, tmp_path, capsys):
    """It changes the test NLL's last bits (float32 sums per batch), so it is no longer a
    result-free setting (``RESULT_FREE``)."""
    out = _unfinished_copy(finished_run, tmp_path)
    code, err = _in_process(["train", "--resume", "--eval-batch-size", "7", "--out", str(out)], capsys)
    _error_line(code, err, "train", "eval_batch_size", "512", "7")


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_malicious_checkpoint_is_refused_saying_it_may_run_code(finished_run, tmp_path, capsys):
    out = _unfinished_copy(finished_run, tmp_path)
    marker = str(tmp_path / "the-file-ran-code")
    _edit_checkpoint(out, lambda s: s.update(method=_RunsCode(marker)))
    code, err = _in_process(["train", "--resume", "--out", str(out)], capsys)
    line = _error_line(code, err, "train", str(out / "checkpoint.pt"), "may run code")
    assert "weights_only" not in line
    assert not os.path.exists(marker)


# ---------------------------------------------------------------------------------------------
# A full disk, and a diverging run: the last good checkpoint is kept.


def test_a_full_disk_while_writing_the_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    """The second checkpoint's writes fail with ENOSPC, as on a full disk: torch's writer turns that
    into ``unexpected pos ...``; the command must say what happened instead."""
    real_create, real_fdopen = files._create_temporary, os.fdopen
    names, writes = {}, {"checkpoint.pt": 0}

    def create(directory, name):
        fd, tmp = real_create(directory, name)
        names[fd] = name
        return fd, tmp

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        if names.pop(fd, None) == "checkpoint.pt":
            writes["checkpoint.pt"] += 1
            if writes["checkpoint.pt"] == 2:
                return Full(f)
        return f

    monkeypatch.setattr(files, "_create_temporary", create)
    monkeypatch.setattr(files.os, "fdopen", fdopen)
    out = tmp_path / "run"
    code, err = _in_process(["train", *TINY, "--epochs", "2", "--out", str(out)], capsys)
    monkeypatch.undo()
    _error_line(code, err, "train", "No space left on device writing checkpoint.pt", "--resume")
    assert load_checkpoint(str(out / "checkpoint.pt"), resume=True)["epoch"] == 1
    assert not _temporaries(out) and not (out / "final.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="mounts a tmpfs (root)")
def test_a_full_tmpfs_keeps_the_previous_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # one checkpoint (about 300 KB) fits, its successor beside it does not
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=480k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        p = _mixkit("train", *TINY, "--epochs", "3", "--out", str(disk / "run"))
        _error_line(p.returncode, p.stderr, "train", "No space left on device writing checkpoint.pt")
        assert load_checkpoint(str(disk / "run" / "checkpoint.pt"), resume=True)["epoch"] >= 1
        assert not _temporaries(disk / "run")
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_nan_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """The loss turns NaN at the first step of epoch 2 (7 steps an epoch: 240 samples in batches of
    32): one line with the epoch and the step, no advice about the learning rate, and checkpoint.pt
    still epoch 1's."""
    real, calls = methods.Method.loss, {"n": 0}

    def loss(self, *args, **kwargs):
        calls["n"] += 1
        value = real(self, *args, **kwargs)
        return value * float("nan") if calls["n"] == 8 else value

    monkeypatch.setattr(methods.Method, "loss", loss)
    out = tmp_path / "run"
    code, err = _in_process(["train", *TINY, "--epochs", "3", "--out", str(out)], capsys)
    line = _error_line(code, err, "train", "diverged", "epoch 2, step 1 of 7", "the loss is nan",
                       str(out / "checkpoint.pt"), "epoch 1")
    assert "lower the learning rate" not in line
    ckpt = load_checkpoint(str(out / "checkpoint.pt"), resume=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_a_huge_learning_rate_is_a_one_line_divergence(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _in_process(["train", *TINY, "--epochs", "3", "--lr", "1e6", "--out", str(out)], capsys)
    line = _error_line(code, err, "train", "training diverged at epoch")
    epoch = int(re.search(r"diverged at epoch (\d+)", line).group(1))
    if epoch > 1:           # the epochs before are checkpointed, with finite weights
        ckpt = load_checkpoint(str(out / "checkpoint.pt"), resume=True)
        assert ckpt["epoch"] == epoch - 1 and all(torch.isfinite(t).all() for t in ckpt["model"].values())
    else:
        assert not (out / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------
# Comparisons: one at a time into an --out, and Ctrl-C.


def test_compare_into_an_out_another_process_holds_is_refused(tmp_path, capsys):
    out = tmp_path / "cmp"
    with lock_run_dir(out):
        code, err = _in_process(["compare", *TINY, "--epochs", "1", "--methods", "erm", "--out", str(out)],
                                capsys)
    _error_line(code, err, "compare", str(out), "another run is using it")
    assert os.listdir(out) == []


def _default_sigint() -> None:
    # As in a terminal: a suite started in the background (`nohup ... &`) passes SIGINT on as
    # ignored, and Python then keeps it ignored (seen: compare ran to the end, exit 0).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(*args, stderr=subprocess.PIPE, session: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mixkit", *args], stdout=subprocess.DEVNULL, stderr=stderr,
                            text=True, env=ENV, start_new_session=session, preexec_fn=_default_sigint)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.6])
def test_two_compares_into_one_out_at_once_one_is_refused(delay, tmp_path):
    """Started ``delay`` seconds apart (both are still importing torch, or one is training): the
    one that comes second to the lock is refused, whichever it is; the other finishes."""
    out = str(tmp_path / "cmp")
    args = ["compare", *TINY, "--epochs", "6", "--methods", "erm,mixup", "--out", out]
    first = _popen(*args)
    time.sleep(delay)
    second = _popen(*args)
    results = [(p.wait(timeout=600), p.stderr.read()) for p in (first, second)]
    for p in (first, second):
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 2], results
    code, err = next(r for r in results if r[0] == 2)
    _error_line(code, err, "compare", out, "another run is using it")


@pytest.mark.slow
@pytest.mark.parametrize("to", ["group", "parent"])
def test_ctrl_c_on_compare_with_2_jobs_gives_a_true_hint_and_no_traceback(to, tmp_path):
    """SIGINT to the process group (Ctrl-C in a terminal: the workers get it too) or to compare
    alone: exit 130, the hint that works, no traceback from an idle worker, no queued run started;
    following the hint finishes the comparison."""
    for attempt in range(3):
        out = tmp_path / f"cmp{attempt}"
        args = ["compare", *TINY, "--epochs", "40", "--methods", "erm,mixup,cutmix", "--jobs", "2",
                "--out", str(out)]
        proc = _popen(*args, stderr=subprocess.PIPE, session=True)
        deadline = time.monotonic() + 120
        started = [out / m / "seed0" / "metrics.jsonl" for m in ("erm", "mixup")]
        while time.monotonic() < deadline and proc.poll() is None and not all(p.exists() for p in started):
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"compare ended before the interrupt: {proc.stderr.read()}")
        # the workers start a second or so apart, and a run of this size takes about as long: when
        # one has finished and its worker took the queued run, the interrupt tests nothing; again
        if not (out / "cutmix").exists() and not any((out / m / "seed0" / "final.json").exists()
                                                     for m in ("erm", "mixup")):
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    else:
        pytest.fail("every attempt finished a run before both had started: the runs are too short here")
    if to == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    line = _error_line(proc.returncode, err, "compare", "interrupted", "run the same command again", status=130)
    assert "--resume" not in line
    assert not (out / "cutmix").exists()              # the run not started was not started after it
    p = _mixkit(*args)                      # following the hint finishes the comparison
    assert p.returncode == 0, p.stderr
    assert (out / "results.md").exists()


# ---------------------------------------------------------------------------------------------
# Ranks started with different settings.


def _ranks(args_of_rank, out: Path) -> list[tuple[int, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = dict(ENV, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", "mixkit", "train", *TINY, "--device", "cpu",
                                       *args_of_rank(rank), "--out", str(out)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env))
    try:
        return [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()


@pytest.mark.slow
@pytest.mark.parametrize("field, flag, values", [("epochs", "--epochs", ("2", "3")), ("lr", "--lr", ("0.1", "0.05"))])
def test_ranks_started_with_different_settings_stop_with_a_clear_error(field, flag, values, tmp_path):
    """Two gloo processes as torchrun starts them, given different values: both stop at start-up
    (no hang for another number of epochs, no silent training for another learning rate)."""
    results = _ranks(lambda rank: [flag, values[rank]], tmp_path / "run")
    for code, err in results:
        _error_line(code, err, "train", "ranks", field, values[0], values[1])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
