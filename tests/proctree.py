"""Running a multi-process command (``torchrun -m mixkit ...``) so that a hang fails the test with every
process's Python stacks instead of a bare timeout.

``run(cmd, env=..., timeout=...)`` is ``subprocess.run(cmd, capture_output=True, text=True, ...)``; past
``timeout`` it sends ``SIGUSR1`` to every process under the command (the ``mixkit`` command prints all
its threads' stacks on it, see ``mixkit.harness.cli``), waits for them to be written, kills the whole
tree and fails the test with the command's stderr, stacks included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest


def descendants(pid: int) -> list[int]:
    """Every living process under ``pid`` (children first), read from ``/proc``."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:                        # it ended while we looked: not a descendant any more
            continue
        # the command name is in parentheses and may hold spaces; the fields after it are fixed
        parent_of[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent_of.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:             # already ended
            pass


def run(cmd: list[str], *, env: dict | None = None, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tree = descendants(proc.pid)
        _signal_all(tree, signal.SIGUSR1)
        time.sleep(3.0)                        # let every process write its stacks
        _signal_all([proc.pid, *tree], signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... still ran after {timeout} s; the stacks of its "
                    f"{len(tree)} processes (SIGUSR1), then its stderr:\n{err[-20000:]}", pytrace=False)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
