"""IDX files (the MNIST / Fashion-MNIST format), gzipped or raw, read and validated.

The one reader of the harness: the data sets (``datasets.py``), the analyses and the benchmark
all read IDX files through :func:`read_idx`.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError

__all__ = ["read_idx"]

# type code -> the stored (big-endian) element type
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _decompress(path: Path, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"file {path} is not a valid gzip file (corrupt or incomplete download): "
            f"expected a complete gzip stream, found {type(exc).__name__}: {exc}"
        ) from None


def _header(path: Path, raw: bytes) -> tuple[int, tuple[int, ...]]:
    """The type code and the dimensions of an IDX file's header, validated."""
    if len(raw) < 4:
        raise DatasetError(
            f"file {path} is too short to be an IDX file: expected at least a 4-byte magic number, "
            f"found {len(raw)} bytes"
        )
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in _IDX_DTYPES or ndim == 0:
        codes = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DatasetError(
            f"file {path} has a bad IDX magic number: expected two zero bytes, a type code in ({codes}) "
            f"and at least one dimension, found 0x{raw[:4].hex().upper()}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(
            f"file {path} is truncated: expected a {header}-byte header for {ndim} dimensions, "
            f"found {len(raw)} bytes"
        )
    return code, tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read and validate an IDX file (the MNIST/Fashion-MNIST format), gzipped or raw.

    The file is treated as gzip when its name ends in ``.gz`` or it starts with the gzip magic bytes.
    The header must be two zero bytes, a known type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
    ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions and then one big-endian
    uint32 per dimension; the payload must hold exactly the product of the dimensions in elements.

    Returns a tensor of the stored shape and type (``torch.uint8`` for images and labels) that owns
    its memory. Raises :class:`DatasetError` for corrupt gzip data, a bad magic number, a truncated
    file or trailing bytes, and :class:`FileNotFoundError` when the file does not exist.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if path.name.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        raw = _decompress(path, raw)
    code, dims = _header(path, raw)
    header = 4 + 4 * len(dims)
    stored = _IDX_DTYPES[code]
    count = math.prod(dims)
    expected, found = count * stored.itemsize, len(raw) - header
    if found != expected:
        what = "is truncated" if found < expected else f"has {found - expected} trailing bytes"
        raise DatasetError(
            f"file {path} {what}: expected {expected} bytes of data, found {found} "
            f"(shape {dims}, {stored.name})"
        )
    data = np.frombuffer(raw, dtype=stored, count=count, offset=header).reshape(dims)
    return torch.from_numpy(data.astype(stored.newbyteorder("="), copy=True))
