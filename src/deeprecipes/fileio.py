"""File-mode helper for atomic writes (temporary file, then rename) that leave ordinary, readable files.

``tempfile.mkstemp`` and safetensors create private files (0o600); a file renamed into a run directory or the data
cache gets the mode a plain ``open(path, "w")`` would have given it first.
"""

from __future__ import annotations

import os

__all__ = ["file_mode"]

_FILE_MODE: list[int] = []


def file_mode() -> int:
    """0o666 less the process umask (read once)."""
    if not _FILE_MODE:
        umask = os.umask(0o022)
        os.umask(umask)
        _FILE_MODE.append(0o666 & ~umask)
    return _FILE_MODE[0]
