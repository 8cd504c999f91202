"""Weight averaging over the last epochs of a run (stochastic weight averaging, Izmailov et al. 2018).

``[train] average_tail = 0.15`` keeps the running mean of the weights at the end of each of the last 15% of the
epochs, and the run's model is that mean: its final evaluation, ``load_run``, ``eval``, ``figures``, ``sample`` and
export all see the average. Training itself goes on from the live weights, so the checkpoints keep them as the
model's weights and the mean (with its count) as this callback's state; a resume continues both exactly. Floating
point buffers (batch-norm statistics) are averaged with the parameters, as ``torch.optim.swa_utils.AveragedModel``
does with ``use_buffers=True``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from .callbacks import Callback

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["WeightAverage", "first_averaged_epoch", "averaged_weights", "holds_average"]

log = logging.getLogger("deeprecipes")


def first_averaged_epoch(epochs: int, tail: float) -> int:
    """The first epoch (counted from 1) whose end-of-epoch weights enter the mean of the last ``tail`` of
    ``epochs`` epochs: 2,789 for the last 0.15 of 3,280. Always the last epoch at least."""
    return min(epochs, math.floor(round(epochs * (1.0 - tail), 6)) + 1)


class WeightAverage(Callback):
    """The mean of the model's floating-point weights at the end of each epoch from epoch ``first`` (counted from
    1) on. When fit ends, the model holds the mean; the next fit begins from the live weights again."""

    def __init__(self, first: int) -> None:
        if first < 1:
            raise ValueError(f"the first averaged epoch counts from 1, got {first}")
        self.first = first
        self.n = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.saved_first = first  # the first epoch of the mean a checkpoint held (another run length moves it)
        self.live: dict[str, torch.Tensor] | None = None  # the training weights while the model holds the mean

    @staticmethod
    def _floats(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    def on_fit_begin(self, engine: Engine) -> None:
        if self.live is not None:  # a fit after a fit: train on from the live weights, not the mean
            engine.model.load_state_dict(self.live, strict=False)
            self.live = None
        device = engine.device
        self.mean = {k: v.to(device) for k, v in self.mean.items()}  # a checkpoint's tensors load on the CPU
        if self.n and self.saved_first != self.first:
            if engine.epoch < self.first:
                log.info("weight averaging now begins at epoch %d (a new run length); the mean restarts", self.first)
                self.n, self.mean = 0, {}
            else:
                log.warning(
                    "the weight average began at epoch %d, not at epoch %d as this run length gives; it goes on",
                    self.saved_first,
                    self.first,
                )

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if engine.epoch < self.first:  # engine.epoch counts the epochs done
            return
        current = self._floats(engine.model)
        if not self.n:
            self.mean = {k: v.detach().clone() for k, v in current.items()}
            self.saved_first = self.first
        else:
            weight = 1.0 / (self.n + 1)
            for k, m in self.mean.items():
                m.lerp_(current[k].detach(), weight)
        self.n += 1

    def on_fit_end(self, engine: Engine) -> None:
        if not self.n:
            return
        self.live = {k: v.detach().clone() for k, v in self._floats(engine.model).items()}
        engine.model.load_state_dict(self.mean, strict=False)

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.saved_first if self.n else self.first, "n": self.n, "mean": dict(self.mean)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state.get("n", 0)
        mean = state.get("mean", {})
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or not isinstance(mean, dict) or (n and not mean):
            raise ValueError(f"the weight average's state is damaged (n = {n!r}, {len(mean)} tensors)")
        self.n, self.saved_first, self.live = n, state.get("first", self.first), None
        self.mean = {k: v.clone() for k, v in mean.items()}


def averaged_weights(
    weights: Mapping[str, torch.Tensor], state: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], int]:
    """The weights a run's model ends with, from a checkpoint's model weights and engine state, and how many
    end-of-epoch weights they are the mean of: the weight average in place of the live weights where the run keeps
    one (``train.average_tail``), else the weights as they are and 0."""
    saved = state.get("callbacks", {}).get(WeightAverage.__name__) if isinstance(state, Mapping) else None
    if not saved or not saved.get("n"):
        return dict(weights), 0
    return {**weights, **saved["mean"]}, int(saved["n"])


def holds_average(engine: Engine) -> bool:
    """Whether ``engine``'s model holds a weight average now (its fit has ended with one): the epoch logs were
    measured on the live weights, so a report evaluates the model again."""
    return any(isinstance(cb, WeightAverage) and cb.live is not None for cb in engine.callbacks)
