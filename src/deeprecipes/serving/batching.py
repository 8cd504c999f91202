"""Dynamic batching: requests to one model wait (up to ``max_delay`` seconds after the first) to be run together
as one batch of at most ``max_batch`` instances; each gets its own rows of the outputs back.

One :class:`Batcher` per served model; one worker task per batcher takes queued requests, concatenates their
inputs and runs the model in the server's single inference thread (so the event loop keeps taking requests while
the model runs). A request larger than ``max_batch`` runs alone. ``close()`` runs what is queued, then stops the
worker: a graceful shutdown loses no request that was accepted. With batching off, every request runs alone in the
same thread.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import torch

__all__ = ["Batcher", "ShuttingDown"]

Outputs = dict[str, torch.Tensor]


class ShuttingDown(RuntimeError):
    """A request arrived after the batcher was closed."""


class Batcher:
    """Run ``fn(x)`` (x: (n, ...) tensor -> dict of (n, ...) tensors) on batches of queued requests.

    Parameters
    ----------
    fn : callable
        The model on one batch; runs in ``executor``.
    executor : Executor
        Where ``fn`` runs (one thread: inference never runs twice at once).
    max_batch : int
        Most instances in one batch; 1 or less turns batching off.
    max_delay : float
        Seconds the first queued request waits for others; 0 takes what is queued at once.
    on_batch : callable, optional
        Called with each batch's size (a metric).
    on_queue : callable, optional
        Called with the number of instances waiting, whenever it changes (a metric).
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], Outputs],
        executor: Executor,
        *,
        max_batch: int = 32,
        max_delay: float = 0.002,
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.fn, self.executor = fn, executor
        self.max_batch, self.max_delay = max_batch, max(0.0, max_delay)
        self.on_batch = on_batch or (lambda n: None)
        self.on_queue = on_queue or (lambda n: None)
        self._queue: collections.deque[tuple[torch.Tensor, asyncio.Future]] = collections.deque()
        self._rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def start(self) -> None:
        """Start the worker (in the running event loop)."""
        if self.batching and self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._worker())

    async def submit(self, x: torch.Tensor) -> Outputs:
        """The outputs for ``x`` (n, ...), once its batch has run."""
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        loop = asyncio.get_running_loop()
        if not self.batching or self._task is None:
            self.on_batch(len(x))
            return await loop.run_in_executor(self.executor, self.fn, x)
        fut = loop.create_future()
        self._queue.append((x, fut))
        self._rows += len(x)
        self.on_queue(self._rows)
        assert self._wake is not None
        self._wake.set()
        return await fut

    async def close(self) -> None:
        """Run every queued request, then stop the worker."""
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            await self._task
            self._task = None

    async def _worker(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            deadline = loop.time() + self.max_delay
            while self._rows < self.max_batch and not self._closing:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    break
            await self._run(self._take(), loop)

    def _take(self) -> list[tuple[torch.Tensor, asyncio.Future]]:
        items = [self._queue.popleft()]
        rows = len(items[0][0])
        while self._queue and rows + len(self._queue[0][0]) <= self.max_batch:
            item = self._queue.popleft()
            items.append(item)
            rows += len(item[0])
        self._rows -= rows
        self.on_queue(self._rows)
        return items

    async def _run(self, items: list[tuple[torch.Tensor, asyncio.Future]], loop: Any) -> None:
        xs = [x for x, _ in items]
        batch = xs[0] if len(xs) == 1 else torch.cat(xs)
        self.on_batch(len(batch))
        try:
            out = await loop.run_in_executor(self.executor, self.fn, batch)
        except Exception as e:  # the model failed: every request of the batch gets the error
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(e)
            return
        start = 0
        for x, fut in items:
            end = start + len(x)
            if not fut.done():  # a client that went away cancelled its future
                fut.set_result({k: v[start:end] for k, v in out.items()})
            start = end
