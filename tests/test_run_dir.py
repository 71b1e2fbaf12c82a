"""The run directory: one run at a time (a lock the OS drops with the process), no leftover
temporaries after kill -9, output files with the umask's mode, clear errors for an unusable
--out, and compare's workers ending with their parent."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from mixkit.harness.cli import main
from mixkit.harness.files import atomic_write, atomic_write_text, is_temporary, remove_temporaries
from mixkit.harness.rundir import LOCK, RunDirBusyError, lock_run_dir

TINY = ["--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
        "--model", "small-cnn", "--threads", "1", "--epochs", "1"]


def _train_args(out, *extra):
    return ["train", *TINY, *extra, "--out", str(out)]


def _wait_for(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# A run in a fresh process that, after epoch 1, waits until the file GO exists (so the test knows
# it is still running) and then finishes its epochs.
_WAIT_AFTER_EPOCH_1 = """
import os, sys, time
from mixkit.harness.cli import main
from mixkit.harness.train.loop import EPOCH_END_HOOKS

def wait(epoch, info):
    if epoch == 1:
        open({ready!r}, "w").close()
        while not os.path.exists({go!r}):
            time.sleep(0.05)

EPOCH_END_HOOKS.append(wait)
sys.exit(main({argv!r}))
"""


@pytest.mark.slow
def test_a_second_run_into_a_busy_out_is_refused_and_the_first_completes(tmp_path, capsys):
    out, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    argv = [*_train_args(out, "--method", "mixup")]
    argv[argv.index("--epochs") + 1] = "2"
    code = _WAIT_AFTER_EPOCH_1.format(ready=str(ready), go=str(go), argv=argv)
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_for(lambda: ready.exists() or first.poll() is not None, 120, "the first run's epoch 1")
        assert first.poll() is None, first.communicate()
        assert main(_train_args(out, "--method", "cutmix")) != 0
        err = capsys.readouterr().err
        assert f"mixkit train: error: --out {out}: another run is using it (pid {first.pid})" in err, err
        assert "Traceback" not in err
        go.touch()
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    with open(out / "final.json") as f:
        final = json.load(f)
    assert final["method"] == "mixup" and final["epochs"] == 2
    assert "cutmix" not in (out / "config.yaml").read_text()
    assert not (out / LOCK).exists()                   # released and removed at the end
    # Free again: the next run into the directory is not refused (it sees a finished run).
    assert main(_train_args(out, "--method", "mixup", "--epochs", "2", "--resume")) == 0


def test_a_run_into_a_locked_out_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    with lock_run_dir(out):
        t0 = time.monotonic()
        assert main(_train_args(out)) == 2
        assert time.monotonic() - t0 < 30
        err = capsys.readouterr().err
        assert f"mixkit train: error: --out {out}: another run is using it (pid {os.getpid()})" in err
        assert not (out / "config.yaml").exists()      # nothing written into the busy directory
        with pytest.raises(RunDirBusyError):
            lock_run_dir(out)
    with lock_run_dir(out) as lock:                     # released: free again
        assert lock.held and (out / LOCK).read_text().strip() == str(os.getpid())
    assert not (out / LOCK).exists()


_HOLD_LOCK = """
import sys, time
from mixkit.harness.rundir import lock_run_dir
lock = lock_run_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_kill_9_leaves_no_stale_lock_and_the_next_start_removes_temporaries(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusyError) as busy:
            lock_run_dir(out)
        assert busy.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK).exists()                        # the file stays, its lock went with the process
    # What killed atomic writers leave, and names that only look alike (kept).
    leftovers = [".tmp-checkpoint.pt.k3j_9zq0", ".tmp-metrics.jsonl.abcdefgh", ".tmp-final.json.00000000"]
    kept = [".tmp-notes", ".tmp-a.b", "x.tmp-checkpoint.pt.abcdefgh", ".tmp-a.ABCDEFGH", ".tmp-a.abcdefghi"]
    for name in leftovers + kept:
        (out / name).write_text("partial")
    (out / ".tmp-dir.abcdefgh").mkdir()                 # not a file: kept
    assert main(_train_args(out)) == 0
    names = set(os.listdir(out))
    assert not names & set(leftovers)
    assert set(kept) | {".tmp-dir.abcdefgh"} <= names
    assert names - set(kept) - {".tmp-dir.abcdefgh"} == {"checkpoint.pt", "config.yaml", "final.json",
                                                           "metrics.jsonl"}


def test_the_cleanup_pattern_is_the_atomic_writers_naming(tmp_path):
    seen, names = [], ("a.json", "checkpoint.pt", ".hidden", "with space.txt", "x.y.z")

    def write(f):
        seen.extend(n for n in os.listdir(tmp_path) if n not in names and n != "kept")
        f.write(b"x")

    (tmp_path / "kept").write_text("k")
    for name in names:
        atomic_write(tmp_path / name, write)
    assert len(seen) == 5 and all(is_temporary(n) for n in seen), seen
    assert not any(is_temporary(n) for n in names)
    assert not any(is_temporary(n) for n in os.listdir(tmp_path))
    assert remove_temporaries(tmp_path) == [] and remove_temporaries(tmp_path / "absent") == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_give_the_mode_a_plain_open_would(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "new")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("plain")
        atomic_write_text(tmp_path / "a.txt", "again")    # over an existing file too
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == mode


def test_a_run_writes_its_files_with_the_umasks_mode(tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert main(_train_args(out)) == 0
    finally:
        os.umask(old)
    names = sorted(os.listdir(out))
    assert names == ["checkpoint.pt", "config.yaml", "final.json", "metrics.jsonl"]
    assert {n: stat.S_IMODE(os.stat(out / n).st_mode) for n in names} == dict.fromkeys(names, 0o644)


def _refused(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("not a directory")
    err = _refused(_train_args(path), capsys)
    assert f"mixkit train: error: --out {path}: is a file, not a directory" in err
    assert path.read_text() == "not a directory"


def test_out_under_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("not a directory")
    err = _refused(_train_args(path / "sub" / "run"), capsys)
    assert f"mixkit train: error: --out {path / 'sub' / 'run'}: cannot create the directory" in err


def test_out_in_a_read_only_directory_is_refused(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not apply")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "run").mkdir()
    ro.chmod(0o555)
    (ro / "run").chmod(0o555)
    try:
        err = _refused(_train_args(ro / "run"), capsys)
        assert f"mixkit train: error: --out {ro / 'run'}: the directory is not writable" in err
        err = _refused(_train_args(ro / "new"), capsys)
        assert f"mixkit train: error: --out {ro / 'new'}: cannot create the directory" in err
    finally:
        (ro / "run").chmod(0o755)
        ro.chmod(0o755)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_compare_workers_die_with_their_parent(tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", *TINY, "--methods", "erm,mixup", "--seeds", "0", "--jobs", "2", "--out", str(out)]
    argv[argv.index("--epochs") + 1] = "5000"        # far longer than the test waits
    parent = subprocess.Popen([sys.executable, "-m", "mixkit", *argv], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        # Both workers are training once they hold their run directories' locks.
        locks = [out / "erm" / "seed0" / LOCK, out / "mixup" / "seed0" / LOCK]
        _wait_for(lambda: all(p.exists() for p in locks) or parent.poll() is not None, 120, "two workers")
        assert parent.poll() is None
        workers = [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2, workers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not any(_alive(p) for p in workers), 10, f"workers {workers} to end")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_disk_full_is_a_cli_error(tmp_path, monkeypatch, capsys):
    import errno

    from mixkit.harness import files
    from mixkit.harness.cli import main

    out = str(tmp_path / "run")
    real = files.atomic_write

    def full(path, write, *args, **kwargs):
        if str(path).endswith("checkpoint.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write, *args, **kwargs)

    from mixkit.harness.train import checkpoint

    monkeypatch.setattr(files, "atomic_write", full)
    monkeypatch.setattr(checkpoint, "atomic_write", full)  # it holds its own reference
    argv = ["train", "--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
            "--model", "small-cnn", "--threads", "1", "--epochs", "1", "--out", out]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "mixkit train: error: No space left on device" in err and "continue with --resume" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["show", "bench"])
def test_show_and_bench_with_out_under_a_file_are_cli_errors(tmp_path, capsys, command):
    from mixkit.harness.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    extra = ["--quick"] if command == "bench" else []
    assert main([command, "--out", str(blocker / "x"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mixkit {command}: error: ") and "Not a directory" in err
