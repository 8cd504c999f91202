"""Reader for the IDX format of MNIST, Fashion-MNIST and their relatives, gzip-compressed or raw.

An IDX file is a 4-byte magic number (two zero bytes, a data-type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order, big-endian. Reading checks everything that can go wrong with a
downloaded or hand-copied file (wrong format, truncated or trailing bytes, a broken gzip stream, a checksum that does
not match) and raises :class:`~deeprecipes.errors.DataError` with one line naming the file and the fault.
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np

from ..errors import DataError
from .reading import GZIP_MAGIC, gunzip, read_bytes

__all__ = ["IDX_DTYPES", "parse_idx", "read_idx"]

# type code -> (numpy dtype as stored, name used in messages)
IDX_DTYPES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype("u1"), "ubyte"),
    0x09: (np.dtype("i1"), "byte"),
    0x0B: (np.dtype(">i2"), "int16"),
    0x0C: (np.dtype(">i4"), "int32"),
    0x0D: (np.dtype(">f4"), "float32"),
    0x0E: (np.dtype(">f8"), "float64"),
}
_KNOWN = ", ".join(f"0x{code:02X} {name}" for code, (_, name) in IDX_DTYPES.items())


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Decode the (already decompressed) bytes of an IDX file.

    Parameters
    ----------
    data : bytes
        The whole file content.
    where : str
        Name used in error messages (usually the file path).

    Returns
    -------
    ndarray, shape as in the header
        A new, writable, native-endian array.

    Raises
    ------
    DataError
        Wrong magic number, unknown type code, bad number of dimensions, truncated header or payload, or
        trailing bytes.
    """
    if len(data) == 0:
        raise DataError(f"{where}: empty file")
    if len(data) < 4:
        raise DataError(f"{where}: truncated: {len(data)} bytes, shorter than the 4-byte IDX magic number")
    magic = data[:4]
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{where}: not an IDX file: magic bytes {magic.hex(' ')} (expected 00 00 <type code> <dimensions>)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{where}: unknown IDX data type code 0x{code:02X} (known: {_KNOWN})")
    if not 1 <= ndim <= 4:
        raise DataError(f"{where}: bad IDX header: {ndim} dimensions (expected 1 to 4)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{where}: truncated: the header of {ndim} dimensions needs {header} bytes, file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code][0]
    expected = math.prod(shape) * dtype.itemsize
    have = len(data) - header
    if have < expected:
        raise DataError(f"{where}: truncated: header says {expected} bytes of data, file has {have}")
    if have > expected:
        raise DataError(
            f"{where}: {have - expected} trailing bytes after the {expected} bytes of data the header describes "
            f"(shape {'x'.join(map(str, shape))})"
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike[str], *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (told apart by the gzip magic bytes, not the file name).

    Parameters
    ----------
    path : str or path-like
        The file, e.g. ``train-images-idx3-ubyte.gz``.
    sha256 : str, optional
        Expected SHA-256 (hex) of the *decompressed* content; checked when given.

    Returns
    -------
    ndarray, shape as in the header
        E.g. uint8 of shape (60000, 28, 28) for MNIST training images, (60000,) for its labels. Multi-byte types
        are converted from big-endian to native byte order.

    Raises
    ------
    DataError
        One line naming the file and the fault: unreadable, corrupt or truncated gzip stream, not IDX, truncated,
        trailing bytes, or checksum mismatch.

    Examples
    --------
    >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")
    >>> images.shape, images.dtype
    ((60000, 28, 28), dtype('uint8'))
    """
    where = os.fspath(path)
    raw = read_bytes(path, "an IDX file")
    data = gunzip(raw, where) if raw[:2] == GZIP_MAGIC else raw
    del raw
    arr = parse_idx(data, where)
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.strip().lower():
            raise DataError(
                f"{where}: checksum mismatch: SHA-256 of the decompressed content is {digest}, expected {sha256} "
                "(the file is corrupt or a different version)"
            )
    return arr
