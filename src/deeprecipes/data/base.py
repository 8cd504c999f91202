"""In-memory data containers shared by every dataset: arrays plus their named splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["ArrayData", "DataSplits"]


@dataclass
class ArrayData:
    """Features and (optional) targets held as tensors.

    Attributes
    ----------
    x : Tensor, shape (n, ...)
        Features, float32 (images scaled to [0, 1]).
    y : Tensor, shape (n,) or (n, k), or None
        Targets: int64 class labels, or float32 regression targets.
    clean : Tensor, shape like x, or None
        The uncorrupted features when ``x`` holds a noisy copy drawn once (denoising autoencoders); it comes last
        in ``tensors()``.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    clean: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"features have {len(self.x)} rows but targets have {len(self.y)}")

    def __len__(self) -> int:
        return len(self.x)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(t for t in (self.x, self.y, self.clean) if t is not None)

    def _map(self, fn: Any) -> ArrayData:
        return ArrayData(*(None if t is None else fn(t) for t in (self.x, self.y, self.clean)))

    def to(self, device: torch.device | str) -> ArrayData:
        return self._map(lambda t: t.to(device))

    def subset(self, n: int) -> ArrayData:
        """The first ``n`` rows (all of them when ``n`` is 0 or larger than the set)."""
        if n <= 0 or n >= len(self):
            return self
        return self._map(lambda t: t[:n])


@dataclass
class DataSplits:
    """A dataset cut into named splits.

    Attributes
    ----------
    name, split : str
        Dataset name ("mnist") and split scheme ("tf", "theano", "full").
    train, test : ArrayData
    val : ArrayData or None
    meta : dict
        Plain JSON facts: ``num_classes``, ``shape`` (of one sample, e.g. [28, 28]), ``classes``, ``files``.
    """

    name: str
    split: str
    train: ArrayData
    test: ArrayData
    val: ArrayData | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def splits(self) -> dict[str, ArrayData]:
        out = {"train": self.train}
        if self.val is not None:
            out["val"] = self.val
        out["test"] = self.test
        return out

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits().items()}
