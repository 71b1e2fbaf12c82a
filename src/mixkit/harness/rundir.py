"""The run directory: checked, created and locked for the whole of one run.

``lock_run_dir(out)`` makes sure ``out`` is a directory this process can write into (creating it
and its parents), takes an exclusive ``fcntl.flock`` on ``out/.lock`` and writes its pid there,
then removes the temporaries that writers killed in ``out`` left behind
(``mixkit.harness.files.remove_temporaries``). A second run into a busy directory is refused at
once (``RunDirBusyError``) instead of overwriting the first one's files. The operating system
drops the lock when the process ends, however it ends (``kill -9`` included), so no stale lock is
ever left. A run removes ``.lock`` when it ends (a killed one leaves it, unlocked, which means
nothing: the next run locks it).

Where ``fcntl`` does not exist (Windows) the directory is checked and cleaned but not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .files import remove_temporaries

try:
    import fcntl
except ImportError:                 # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "RunDirError", "RunDirBusyError", "RunDirLock", "lock_run_dir", "locked_run_dir"]

LOCK = ".lock"


class RunDirError(RuntimeError):
    """``--out`` cannot be used as a run directory (a file, under a file, not writable)."""


class RunDirBusyError(RunDirError):
    """Another live process holds the run directory's lock."""

    def __init__(self, out: str, pid: int | None):
        self.out, self.pid = out, pid
        super().__init__(f"--out {out}: another run is using it (pid {pid if pid is not None else '?'})")

    def __reduce__(self):           # crosses from a compare worker (its args are not the message's)
        return type(self), (self.out, self.pid)


class RunDirLock:
    """The held lock of one run directory; ``release()`` (idempotent) gives it back."""

    def __init__(self, out: str, fd: int | None):
        self.out, self._fd = out, fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):   # still locked: nobody else can be using the file
            os.unlink(os.path.join(self.out, LOCK))
        with contextlib.suppress(OSError):
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _make_dir(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"--out {out}: is a file, not a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        raise RunDirError(f"--out {out}: cannot create the directory: a part of the path is a file, "
                          "not a directory") from None
    except OSError as e:
        raise RunDirError(f"--out {out}: cannot create the directory ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"--out {out}: the directory is not writable")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def lock_run_dir(out: str | os.PathLike[str]) -> RunDirLock:
    """Check and create ``out``, lock it for this process, clean its temporaries; see the module docstring.

    Raises ``RunDirError`` when ``out`` cannot be a run directory and ``RunDirBusyError`` when
    another run holds it.
    """
    out = os.fspath(out)
    _make_dir(out)
    if fcntl is None:               # pragma: no cover - not POSIX
        remove_temporaries(out)
        return RunDirLock(out, None)
    path = os.path.join(out, LOCK)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise RunDirError(f"--out {out}: cannot create the lock file {LOCK} "
                              f"({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunDirBusyError(out, pid) from None
        except OSError as e:        # e.g. a file system without flock
            os.close(fd)
            raise RunDirError(f"--out {out}: cannot lock {LOCK} ({e.strerror or e})") from None
        # The holder before us removes the file before it unlocks it: a lock on a file no longer
        # at ``path`` locks nothing, so open the file now there and try again.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    lock = RunDirLock(out, fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        remove_temporaries(out)
    except BaseException:
        lock.release()
        raise
    return lock


@contextlib.contextmanager
def locked_run_dir(out: str | os.PathLike[str], enabled: bool = True) -> Iterator[RunDirLock]:
    """``lock_run_dir(out)`` for the ``with`` block (nothing at all when not ``enabled``)."""
    lock = lock_run_dir(out) if enabled else RunDirLock(os.fspath(out), None)
    try:
        yield lock
    finally:
        lock.release()
