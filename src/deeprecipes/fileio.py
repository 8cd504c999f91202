"""Atomic writes (temporary file, fsync, rename) that leave ordinary, readable files; checked JSON reads; the cache
folder.

``atomic_write_text`` is how every JSON file of a run directory and of the data cache is written: a reader sees the
old file or the new one, never a part. ``read_json`` is how one is read back: a file that is missing, cannot be
read, is not UTF-8 or is not JSON is one CheckpointError line naming it. ``tempfile.mkstemp`` and safetensors
create private files (0o600); a file renamed into place gets the mode a plain ``open(path, "w")`` would have given
it (``file_mode``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CheckpointError, WriteError

__all__ = ["file_mode", "atomic_write_text", "read_json", "fsync_dir", "cache_dir", "env_path", "writing"]

ENV_CACHE = "DEEPRECIPES_CACHE"

_FILE_MODE: list[int] = []


def file_mode() -> int:
    """0o666 less the process umask (read once)."""
    if not _FILE_MODE:
        umask = os.umask(0o022)
        os.umask(umask)
        _FILE_MODE.append(0o666 & ~umask)
    return _FILE_MODE[0]


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Writes to ``path``: an OSError (a full disk, no permission) becomes one WriteError line naming it."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part; a failed write
    (a full disk) leaves the old file and no temporary one, and is one WriteError line naming ``path``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """:func:`atomic_write_text` for bytes (a PNG file)."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, file_mode())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def read_json(path: Path | str, what: str = "JSON file") -> Any:
    """The JSON value in ``path`` (UTF-8). A file that is missing, unreadable, not UTF-8 or not
    JSON is one CheckpointError line: ``PATH: unreadable WHAT (reason)``. Callers check the value's shape."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        byte = f"byte 0x{e.object[e.start]:02x} at offset {e.start}"
        raise CheckpointError(f"{path}: unreadable {what} (not UTF-8: {byte})") from None
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable {what} ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path}: unreadable {what} ({e})") from None


def env_path(name: str) -> Path | None:
    """The path an environment variable names (``~`` expanded), or None when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download and probe cache: ``$DEEPRECIPES_CACHE``, else ``$XDG_CACHE_HOME/deeprecipes``, else
    ``~/.cache/deeprecipes``. Not created here."""
    path = env_path(ENV_CACHE)
    if path is not None:
        return path
    xdg = env_path("XDG_CACHE_HOME")
    if xdg is not None and xdg.is_absolute():  # the XDG spec says to ignore relative paths
        return xdg / "deeprecipes"
    return Path.home() / ".cache" / "deeprecipes"
