"""Evaluation metrics as reducers: ``update`` with each batch, ``compute`` at the end, a state that sums across
processes and goes into checkpoints.

A model's ``eval_step`` returns per-sample values; each becomes a :class:`Mean` over the evaluated rows, or a
:class:`Sum` for the names in the model's ``summed_metrics``. Whole-set metrics (AUC, FID, episode returns) come
from the model's ``reducers()``: name -> Reducer, fed with the ``eval_step`` value of the same name. Reduction
across ranks goes through the strategy, so one process and N processes share one path::

    reducers = make_reducers(model, first_step_output)
    for batch in data: for k, r in reducers.items(): r.update(values[k], rows)
    reduce_all(reducers, strategy); {k: r.compute() for k, r in reducers.items()}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .strategy import Single, Strategy

__all__ = ["Reducer", "Mean", "Sum", "Collect", "make_reducers", "reduce_all", "evaluate"]


class Reducer:
    """One metric over a whole evaluation set."""

    def update(self, value: torch.Tensor, rows: int) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError

    def reduce(self, strategy: Strategy) -> None:
        """Combine this reducer's state with the other ranks' (a no-op in one process)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class Sum(Reducer):
    """The total of every value over the set (a summed cost)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None

    def update(self, value: torch.Tensor, rows: int) -> None:
        s = value.float().sum()
        self.total = s if self.total is None else self.total + s

    def compute(self) -> float:
        return 0.0 if self.total is None else self.total.item()

    def reduce(self, strategy: Strategy) -> None:
        if self.total is not None and strategy.world_size > 1:
            strategy.all_reduce(self.total)

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.total = state.get("total")


class Mean(Sum):
    """The sum of the values divided by the rows evaluated (a per-sample mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def update(self, value: torch.Tensor, rows: int) -> None:
        super().update(value, rows)
        self.rows += rows

    def compute(self) -> float:
        return super().compute() / max(self.rows, 1)

    def reduce(self, strategy: Strategy) -> None:
        if self.total is not None and strategy.world_size > 1:
            both = torch.stack([self.total, self.total.new_tensor(float(self.rows))])
            strategy.all_reduce(both)
            self.total, self.rows = both[0], int(both[1].item())

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "rows": self.rows}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.total, self.rows = state.get("total"), int(state.get("rows", 0))


class Collect(Reducer):
    """Keeps every value and computes ``fn(all values)`` at the end: AUC, a median, an FID from features."""

    def __init__(self, fn: Callable[[torch.Tensor], float]) -> None:
        self.fn = fn
        self.parts: list[torch.Tensor] = []

    def update(self, value: torch.Tensor, rows: int) -> None:
        self.parts.append(value.detach().float().cpu())

    def compute(self) -> float:
        return float(self.fn(torch.cat(self.parts))) if self.parts else float("nan")

    def reduce(self, strategy: Strategy) -> None:
        if strategy.world_size > 1:
            gathered = strategy.all_gather_object(torch.cat(self.parts) if self.parts else torch.empty(0))
            self.parts = [g for g in gathered if g.numel()]

    def state_dict(self) -> dict[str, Any]:
        return {"values": torch.cat(self.parts) if self.parts else torch.empty(0)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        values = state.get("values")
        self.parts = [values] if values is not None and values.numel() else []


def make_reducers(model: Any, names: Any) -> dict[str, Reducer]:
    """A reducer per metric name: the model's own (``model.reducers()``), else Sum for ``summed_metrics``, else
    Mean."""
    own = model.reducers() if callable(getattr(model, "reducers", None)) else {}
    summed = getattr(model, "summed_metrics", frozenset())
    return {k: own[k] if k in own else (Sum() if k in summed else Mean()) for k in names}


def reduce_all(reducers: Mapping[str, Reducer], strategy: Strategy) -> dict[str, float]:
    """Reduce every reducer across ranks and compute it."""
    for r in reducers.values():
        r.reduce(strategy)
    return {k: r.compute() for k, r in reducers.items()}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: Any,
    *,
    autocast: Callable[[], Any] | None = None,
    strategy: Strategy | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` over every batch of ``data`` (a source: ``data.epoch(0)`` yields batches); with a
    data-parallel strategy each rank evaluates its share of every batch and the metrics are reduced."""
    strategy = strategy or Single()
    was_training = model.training
    model.eval()
    reducers: dict[str, Reducer] = {}
    with autocast() if autocast is not None else contextlib.nullcontext():
        for batch in data.epoch(0):
            if strategy.world_size > 1:
                batch = strategy.shard(batch)
            values = model.eval_step(batch)
            if not reducers:
                reducers = make_reducers(model, values)
            for k, v in values.items():
                reducers[k].update(v, len(batch[0]))
    model.train(was_training)
    return reduce_all(reducers, strategy)
