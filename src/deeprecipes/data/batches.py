"""Mini-batches over in-memory tensors on the run's device: no per-sample Python, seedable, resumable.

The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run can jump straight to batch ``k`` of
epoch ``e`` and see exactly the batches an uninterrupted run would have seen. ``state_dict`` holds what fixes
that order, and the engine checkpoints it with its own state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = ["Batches"]


class Batches:
    """Iterate over aligned tensors in mini-batches.

    Parameters
    ----------
    *tensors : Tensor
        Tensors with the same first dimension (e.g. images and labels), already on the target device.
    batch_size : int
    shuffle : bool
        Draw a fresh permutation every epoch (as ``mnist.train.next_batch`` did); else sequential order.
    drop_last : bool
        Drop the final partial batch (blog 000 dropped the last 88 of 55,000 images).
    seed : int
        Seed of the per-epoch permutation.

    Examples
    --------
    >>> b = Batches(x, y, batch_size=128, shuffle=True, seed=0)
    >>> for xb, yb in b.epoch(0): ...
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if not tensors:
            raise ValueError("Batches needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor | None:
        """The permutation used in ``epoch`` (None when not shuffling)."""
        if not self.shuffle:
            return None
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
        return torch.randperm(self.n, generator=gen).to(self.tensors[0].device)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield the batches of ``epoch``, beginning at batch index ``start``."""
        perm = self.order(epoch)
        stop = len(self) * self.batch_size if self.drop_last else self.n
        for lo in range(start * self.batch_size, stop, self.batch_size):
            hi = min(lo + self.batch_size, self.n)
            if perm is None:
                yield tuple(t[lo:hi] for t in self.tensors)
            else:
                idx = perm[lo:hi]
                yield tuple(t.index_select(0, idx) for t in self.tensors)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.epoch(0)

    def state_dict(self) -> dict[str, Any]:
        """What fixes the batches of every epoch; the order itself is a function of it, so nothing else is kept."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seed,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Check that a checkpoint's batches are these; a resumed run on other data would silently diverge."""
        mine = self.state_dict()
        diff = [f"{k} {state[k]} -> {mine[k]}" for k in mine if k in state and state[k] != mine[k]]
        if diff:
            raise ValueError(f"the training batches differ from the checkpoint's: {', '.join(diff)}")
