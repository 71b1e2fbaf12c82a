"""Atomic file writes: everything the harness writes goes through a temporary file and a rename.

A reader never sees a half-written file: the data are written to a temporary file in the same
directory, flushed and ``fsync``ed, renamed over the target with ``os.replace`` (atomic on POSIX),
and the directory is ``fsync``ed so that the rename itself survives a crash. After a crash
(``kill -9`` or power loss included) the file is either the old one or the new one; the temporary
file a killed writer leaves behind is named ``.tmp-<name>.<8 random characters>`` and
``remove_temporaries`` removes such leftovers (the run directory's owner calls it at start, once
it holds the directory's lock).

The final file gets the mode a plain ``open(path, "w")`` would give it (``0o666`` less the umask):
the temporary file is created with ``os.open(..., 0o666)``, so the kernel applies the umask.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
from collections.abc import Callable
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "is_temporary", "remove_temporaries"]

_TMP_PREFIX = ".tmp-"
_TMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TMP_SUFFIX_LEN = 8
# Exactly the names ``_create_temporary`` makes: ".tmp-" + the target's name + "." + 8 characters.
_TMP_NAME = re.compile(r"\.tmp-.+\.[a-z0-9_]{" + str(_TMP_SUFFIX_LEN) + "}", re.DOTALL)
_random = random.SystemRandom()


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` (no directory) is one of ``atomic_write``'s temporaries."""
    return _TMP_NAME.fullmatch(name) is not None


def remove_temporaries(directory: str | os.PathLike[str]) -> list[str]:
    """Remove the temporaries that killed writers left in ``directory`` (not its subdirectories).

    Only the caller may be writing into ``directory`` (it holds the directory's lock): a
    temporary of a live writer would be removed too. Returns the names removed.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if is_temporary(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return sorted(removed)


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    """Create and open a new temporary file for ``name`` in ``directory``; mode 0o666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        suffix = "".join(_random.choice(_TMP_CHARS) for _ in range(_TMP_SUFFIX_LEN))
        tmp = os.path.join(directory, f"{_TMP_PREFIX}{name}.{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {name} in {directory}")


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform or file system that cannot open directories: nothing to sync
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(f)`` on a binary file and make it ``path`` atomically (parents are created).

    On any error, ``KeyboardInterrupt`` included, the temporary file is removed and ``path`` is
    left as it was. A full disk is an ``OSError(ENOSPC)`` naming the file being written,
    ``No space left on device writing <name>``, with ``filename`` ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"No space left on device writing {os.path.basename(path)}",
                          path) from None
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """``obj`` as indented JSON with sorted keys and a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
