"""Where a number came from: the code version, the machine and the time of a run.

``provenance(device)`` returns a small JSON-able dict that ``train`` stores in ``final.json`` and
``compare`` summarises in its report, so every figure in the docs can be traced to the commit,
the machine and the date that produced it:

- ``mixkit``: the package version; ``commit``: the git commit of the source tree mixkit was
  imported from, with ``+dirty`` when it had uncommitted changes (``None`` for an installed
  wheel, which has no git tree: the version then identifies the code);
- ``torch``, ``python``: the versions;
- ``machine``: CPU architecture and the number of CPUs this process may use, and for a CUDA
  device the GPU's name;
- ``started``: the UTC time of the call, ISO 8601, to the second.

``train`` takes these facts when a run (or a resumed part of it) starts, since the code a process
runs is the code it imported then, and adds ``finished`` when it ends.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

import torch

import mixkit

__all__ = ["provenance", "git_commit", "utc_now"]


def git_commit(path: str | None = None) -> str | None:
    """The commit of the git work tree holding ``path`` (default: mixkit's source), with
    ``+dirty`` if tracked files differ from it; ``None`` outside a work tree or without git."""
    where = path or os.path.dirname(os.path.abspath(mixkit.__file__))
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):     # no git binary, or a hung file system
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if dirty.returncode != 0 or dirty.stdout.strip() else "")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                           # not on Linux
        return os.cpu_count() or 1


def provenance(device: torch.device | str | None = None) -> dict:
    """The code version, machine and start time of a run on ``device`` (see the module docstring)."""
    machine = f"{platform.machine() or 'unknown CPU'}, {_cpus()} CPUs"
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        machine += f", {torch.cuda.get_device_name(device)}"
    return {
        "mixkit": mixkit.__version__,
        "commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": machine,
        "started": utc_now(),
    }


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
