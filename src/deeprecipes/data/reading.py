"""Reading data files from disk: their bytes, gzip streams and UTF-8 text, every failure a one-line DataError.

Every dataset module reads its files through these, so a missing file, a folder where a file should be, an
unreadable file, a corrupt or truncated ``.gz`` stream and text that is not UTF-8 all end the same way: one line
naming the file and the fault, never a traceback from ``zlib`` or ``open``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from ..errors import DataError

__all__ = ["GZIP_MAGIC", "gunzip", "read_bytes", "read_text"]

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(
    path: str | os.PathLike[str], kind: str = "a file", *, role: str = "", missing: str = "no such file"
) -> bytes:
    """The whole content of ``path``.

    Parameters
    ----------
    kind : str
        What the file should be, with its article, for the message about a folder (``"a CSV file"``).
    role : str, optional
        The argument that named the file (``"src_train"``), added to the messages in brackets.
    missing : str
        The message for a file that does not exist.

    Raises
    ------
    DataError
        ``<path>: <message>`` when the file is missing, is a folder, or cannot be read.
    """
    where = os.fspath(path)
    note = f" ({role})" if role else ""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{where}: {missing}{note}") from None
    except IsADirectoryError:
        raise DataError(f"{where}: is a folder, not {kind}{note}") from None
    except OSError as e:
        raise DataError(f"{where}: cannot read ({e.strerror or e})") from None


def gunzip(raw: bytes, where: str) -> bytes:
    """Decompress a gzip stream; DataError naming ``where`` when it is truncated or corrupt."""
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{where}: truncated gzip stream (the download or copy was cut short)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DataError(f"{where}: corrupt gzip stream ({e})") from None


def read_text(path: str | Path, data: bytes | None = None) -> str:
    """The UTF-8 text of ``path`` (gzip-compressed when it ends in ``.gz``); DataError naming the file (and the line
    of the first bad byte) when it is missing, empty, a corrupt ``.gz`` or not UTF-8. Line ends are normalised to
    ``\\n``. ``data``, when given, is the file's bytes, already read."""
    path = Path(path)
    raw = data if data is not None else read_bytes(path, "a text file", missing="no such text file")
    if path.suffix == ".gz":
        raw = gunzip(raw, str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line})") from None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{path}: the text is empty")
    return text
