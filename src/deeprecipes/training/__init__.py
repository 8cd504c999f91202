"""Training: one engine with callbacks, optimizers and schedules by name, atomic checkpoints."""

from .callbacks import Callback, EarlyStopping
from .engine import Engine

__all__ = ["Engine", "Callback", "EarlyStopping"]
