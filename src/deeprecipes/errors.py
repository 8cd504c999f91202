"""User-facing errors: one clear line naming what is wrong.

Every failure a user can cause (bad data file, bad config key, NaN loss, unwritable path) raises a subclass of
:class:`DeepRecipesError`. The command line prints ``error: <message>`` and exits with status 2, no traceback.
"""

from __future__ import annotations

__all__ = [
    "DeepRecipesError",
    "ConfigError",
    "DataError",
    "TrainingError",
    "Collapsed",
    "CheckpointError",
    "WriteError",
    "Interrupted",
]


class DeepRecipesError(Exception):
    """Base class for errors whose message is meant for the user, on one line."""


class ConfigError(DeepRecipesError, ValueError):
    """A recipe, ``--set`` override or keyword argument is unknown, mistyped or out of range."""


class DataError(DeepRecipesError, ValueError):
    """A data file is missing, truncated, corrupt or inconsistent."""


class TrainingError(DeepRecipesError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class Collapsed(TrainingError):
    """Training runs but has failed: a GAN's discriminator wins outright (its loss pinned at 0), so the checkpoints
    written before the stop may be collapsed too."""


class CheckpointError(DeepRecipesError, RuntimeError):
    """A run directory or checkpoint is missing, incomplete or does not match its config."""


class WriteError(DeepRecipesError, OSError):
    """A file of the run could not be written (a full disk, a folder without write permission); names the path."""


class Interrupted(KeyboardInterrupt):
    """A run or resume stopped by Ctrl-C; the message says how to continue it. A KeyboardInterrupt, so that
    ``except DeepRecipesError`` never swallows one."""
