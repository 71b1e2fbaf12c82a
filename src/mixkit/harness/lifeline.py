"""Worker processes that end with their parent.

``die_with_parent(parent_pid)``, called first thing in a worker process (a pool's
``initializer``), makes the worker end when its parent does, ``kill -9`` of the parent included,
instead of training on as an orphan. On Linux the kernel sends the worker ``SIGKILL`` when the
parent ends (``prctl(PR_SET_PDEATHSIG)``); elsewhere, or where ``prctl`` fails, a daemon thread
polls ``os.getppid()`` and kills the worker once its parent has changed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """End this process (``SIGKILL``) as soon as the process ``parent_pid``, its parent, ends."""
    if not _set_pdeathsig(signal.SIGKILL):
        threading.Thread(target=_watch, args=(parent_pid, interval), name="mixkit-lifeline",
                         daemon=True).start()
    # The parent may have ended before the line above ran: then no signal will ever come.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)
