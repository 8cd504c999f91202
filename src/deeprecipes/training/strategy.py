"""How many processes train one model, hidden behind one small interface (the Lightning strategy pattern).

:class:`Single` is one process. :class:`DataParallel` is one process per rank under ``torchrun``: gloo on the CPU,
NCCL on CUDA. Each rank takes its share of every global batch, gradients are averaged across ranks after each
backward (weighted by the rows each rank saw, so a short last batch counts right), floating-point buffers (batch
norm statistics) are averaged at each epoch's end, and evaluation metrics are reduced. The engine asks the strategy;
it never looks at the process count itself::

    strategy = current_strategy()       # Single(), or DataParallel() when torchrun started this process
    strategy.is_main                     # rank 0: the one that writes files
    strategy.all_reduce(t)               # sum over ranks, in place
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..errors import DeepRecipesError

__all__ = ["Strategy", "Single", "DataParallel", "current_strategy", "launched_by_torchrun", "shard_range"]


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or another launcher setting RANK and WORLD_SIZE) started."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a batch of ``n`` rows that ``rank`` of ``world`` takes: contiguous, in rank order,
    the first ``n % world`` ranks one row more."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class Strategy:
    """The process layout a run trains under. Subclasses override what differs from one process."""

    rank = 0
    world_size = 1
    name = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        return requested

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place; returns it."""
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return obj

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank, in place; returns it."""
        return tensor

    def barrier(self) -> None: ...

    def sync_gradients(self, params: Iterable[torch.Tensor], rows: int) -> None:
        """Make every rank's gradients the mean over the global batch (``rows`` is this rank's share)."""

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers (batch-norm running statistics) over ranks."""

    def shard(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """This rank's rows of a global batch."""
        return tuple(batch)

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name, "world_size": self.world_size}


class Single(Strategy):
    """One process: every call is the identity."""


class DataParallel(Strategy):
    """Data-parallel training over ``torch.distributed``; one process per rank, started by torchrun."""

    name = "data-parallel"

    def __init__(self, backend: str | None = None, timeout_s: float = 1800.0) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        self.backend = backend
        if not dist.is_initialized():
            try:
                dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
            except (RuntimeError, ValueError) as e:
                raise DeepRecipesError(f"cannot join the torchrun job as rank {self.rank}: {e}") from None

    def device(self, requested: torch.device) -> torch.device:
        if requested.type == "cuda":
            if self.backend != "nccl":
                return requested
            dev = torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
            torch.cuda.set_device(dev)
            return dev
        if self.backend == "nccl":
            raise DeepRecipesError("the NCCL backend needs CUDA devices; run on the CPU with gloo")
        return requested

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        self.dist.all_reduce(tensor)
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        self.dist.broadcast(tensor, src=0)
        return tensor

    def barrier(self) -> None:
        self.dist.barrier()

    def sync_gradients(self, params: Iterable[torch.Tensor], rows: int) -> None:
        """One all-reduce of every gradient times this rank's rows, plus the rows: sum(g_r * n_r) / sum(n_r) is the
        gradient of the mean loss over the global batch, whatever the split."""
        params = [p for p in params if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) * rows for p in params] + [params[0].grad.new_tensor([float(rows)])])
        self.dist.all_reduce(flat)
        total = flat[-1]
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_((flat[offset : offset + n] / total).view_as(p.grad))
            offset += n

    def sync_buffers(self, module: torch.nn.Module) -> None:
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        if not bufs:
            return
        flat = torch.cat([b.reshape(-1) for b in bufs])
        self.dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for b in bufs:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()

    def shard(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        start, stop = shard_range(len(batch[0]), self.rank, self.world_size)
        return tuple(t[start:stop] for t in batch)

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name, "world_size": self.world_size, "backend": self.backend}


def current_strategy() -> Strategy:
    """DataParallel when torchrun started this process with more than one rank, else Single."""
    if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        return DataParallel()
    return Single()
