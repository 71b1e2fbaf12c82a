"""A run that seems hung can be asked where it waits: ``kill -USR1`` makes the ``mixkit`` command print
every thread's stack and go on; the tests' multi-process helper (``proctree.run``) does that to every
process of a command that outlives its timeout and fails with the stacks."""

import os
import signal
import subprocess
import sys
import time

import proctree
import pytest
from test_harness_e2e import TINY, _final

ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_sigusr1_prints_the_stacks_and_the_run_goes_on(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mixkit", "train", *TINY, "--epochs", "3", "--out", str(out)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists():           # training has begun
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached epoch 1"
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Current thread" in err and "mixkit" in err       # a stack, through mixkit's frames
    assert _final(str(out))["epochs"] == 3 and len(open(out / "metrics.jsonl").readlines()) == 3


def test_the_helper_fails_a_hung_command_with_its_stacks():
    """The command (like torchrun's agent) is left alone; the process under it prints its stacks."""
    child = ("import faulthandler, signal, time\n"
             "faulthandler.register(signal.SIGUSR1, all_threads=True)\n"
             "def waits_here(): time.sleep(60)\n"
             "waits_here()\n")
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    with pytest.raises(pytest.fail.Exception) as info:
        proctree.run([sys.executable, "-c", code], env=ENV, timeout=4)
    msg = str(info.value)
    assert "still ran after 4 s" in msg and "its 1 processes" in msg
    assert "Current thread" in msg and "waits_here" in msg


def test_descendants_finds_children_and_grandchildren():
    """``proc`` starts one child: it is ``proc``'s one descendant, and both are this process's."""
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, "
                             "'-c', 'import time; time.sleep(30)']); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 30
        while len(proctree.descendants(proc.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = proctree.descendants(proc.pid)
        assert len(tree) == 1 and proc.pid not in tree
        assert set(tree) | {proc.pid} <= set(proctree.descendants(os.getpid()))
    finally:
        for p in [*proctree.descendants(proc.pid), proc.pid]:
            os.kill(p, signal.SIGKILL)
        proc.wait()
