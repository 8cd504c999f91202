"""TensorBoard event files whose write errors are one line: a full disk names the event folder, no thread traceback.

TensorBoard's ``SummaryWriter`` writes from a background thread. When that thread's write fails (``ENOSPC``), the
thread dies with a traceback printed by :func:`threading.excepthook`, and the main thread gets the same ``OSError``
(with no file name) at its next write. :func:`event_writer` opens a writer with the thread's traceback silenced, and
:func:`writing_events` turns the main thread's ``OSError`` into one :class:`~deeprecipes.errors.WriteError` that
names the folder.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from ..fileio import writing

__all__ = ["event_writer", "writing_events", "close_events"]

_WRITER_THREAD = "_AsyncWriterThread"  # tensorboard.summary.writer.event_file_writer
_HOOKED: list[Any] = []


def _quiet_writer_thread(args: Any) -> None:
    """The excepthook: an event writer thread's OSError is left to the main thread, which raises it again."""
    if type(args.thread).__name__ == _WRITER_THREAD and isinstance(args.exc_value, OSError):
        return
    _HOOKED[0](args)


def event_writer(log_dir: Path, **kwargs: Any) -> Any:
    """A ``SummaryWriter`` on ``log_dir``; a folder that cannot be made is one WriteError line."""
    from torch.utils.tensorboard import SummaryWriter

    if not _HOOKED:
        _HOOKED.append(threading.excepthook)
        threading.excepthook = _quiet_writer_thread
    with writing_events(log_dir):
        return SummaryWriter(str(log_dir), **kwargs)


def writing_events(log_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Run writes to the event files of ``log_dir``; an OSError (a full disk) becomes one line naming it."""
    return writing(f"TensorBoard events in {log_dir}")


def close_events(writer: Any) -> None:
    """Close a writer; the error a failed writer raises again on close was already reported (or will be)."""
    with contextlib.suppress(OSError):
        writer.close()
