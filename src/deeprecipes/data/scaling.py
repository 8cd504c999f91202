"""Scalers fitted on one part of a dataset (the training part) and applied to any part, with JSON-safe state.

:class:`Standardizer` subtracts the mean and divides by the standard deviation; :class:`MinMaxScaler` maps the
fitted range to [0, 1]. Both work on (n, d) feature matrices and on (n,) targets, in float64; ``state()`` gives
the fitted statistics as plain lists and floats, as they are kept in a dataset's ``meta`` (and so in a run's files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MinMaxScaler", "Standardizer"]


@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / std`` with the fitted part's column statistics; a constant column keeps std 1 (so it is 0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        std = x.std(axis=0)
        std[std == 0] = 1.0  # constant columns (e.g. the border pixels of digits) stay at 0
        return cls(x.mean(axis=0), std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def state(self) -> dict[str, Any]:
        """``{"mean": ..., "std": ...}`` as lists (floats for a target)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


@dataclass(frozen=True)
class MinMaxScaler:
    """``(x - min) / (max - min)`` with the fitted part's range; a constant column is only shifted (span 1).

    Values of other parts may fall a little outside [0, 1].
    """

    min: np.ndarray
    max: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> MinMaxScaler:
        return cls(x.min(axis=0), x.max(axis=0))

    @property
    def constant(self) -> bool:
        """True when every fitted column held a single value."""
        return bool(np.all(self.max == self.min))

    def transform(self, x: np.ndarray) -> np.ndarray:
        span = np.where(self.max > self.min, self.max - self.min, 1.0)
        return (x - self.min) / span

    def state(self) -> dict[str, Any]:
        """``{"min": ..., "max": ...}`` as lists, or as floats for a target."""
        return {"min": self.min.tolist(), "max": self.max.tolist()}
