"""The one way an engine is set up: optimizers from what the model declares, schedules, callbacks, settings.

The runner, layer-wise pretraining and the scikit-learn estimators all call :func:`make_engine`, so that a model
trains the same way whichever door it came in by::

    engine = make_engine(model, optimizer="adam", lr=1e-3, steps_per_epoch=len(batches), epochs=10)
    engine.fit(batches, epochs=10)

A recipe passes its whole ``plan`` (``RecipeConfig.optimizer_plan()``: name -> (OptimizerConfig, ScheduleConfig))
instead of ``optimizer``/``lr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..config import OptimizerConfig, ScheduleConfig
from .callbacks import Callback, CollapseGuard
from .engine import Engine
from .optim import build_optimizers

__all__ = ["make_engine", "declared_optimizers"]


def declared_optimizers(model: nn.Module) -> dict[str, list[dict[str, Any]]]:
    """``model.configure_optimizers()``, or one "main" optimizer over the trainable parameters of a plain module."""
    configure = getattr(model, "configure_optimizers", None)
    if callable(configure):
        return configure()
    params = [p for p in model.parameters() if p.requires_grad]
    return {"main": [{"params": params}]} if params else {}


def make_engine(
    model: nn.Module,
    *,
    plan: Mapping[str, tuple[OptimizerConfig, ScheduleConfig]] | None = None,
    optimizer: str = "sgd",
    lr: float = 0.01,
    optimizer_args: Mapping[str, Any] | None = None,
    schedule: str | Mapping[str, Any] = "constant",
    steps_per_epoch: int = 1,
    epochs: int = 1,
    max_steps: int = 0,
    callbacks: Sequence[Callback] = (),
    model_name: str | None = None,
    collapse_steps: int = 1000,
    collapse_setting: str = "train.collapse_steps",
    **settings: Any,
) -> Engine:
    """An :class:`Engine` for ``model`` with the optimizers it declares.

    Parameters
    ----------
    plan : mapping, optional
        Optimizer name -> (OptimizerConfig, ScheduleConfig), as a recipe gives it. Without it, every optimizer the
        model declares ("main", or a GAN's "g" and "d") is ``optimizer`` at ``lr`` with ``optimizer_args`` and
        ``schedule`` (a schedule name or the fields of :class:`deeprecipes.config.ScheduleConfig`).
    steps_per_epoch, epochs, max_steps : int
        What the schedules are spread over (``max_steps`` caps the total when set).
    callbacks : sequence of Callback
    collapse_steps : int
        For a model that names a ``collapse_signal`` (the GANs' ``d_loss``), stop with one line when it stays below
        its floor for this many steps in a row (:class:`~deeprecipes.training.callbacks.CollapseGuard`; 0 = off).
    collapse_setting : str
        How the user sets ``collapse_steps``, named in the guard's message (an estimator's own parameter).
    **settings
        The engine's other arguments: ``grad_clip``, ``l1``, ``l2``, ``precision``, ``log_every``, ``strategy``.
    """
    declared = declared_optimizers(model)
    if plan is None:  # the same settings for every optimizer the model declares (a GAN's "g" and "d" alike)
        sched = {"name": schedule} if isinstance(schedule, str) else dict(schedule)
        each = (OptimizerConfig(optimizer, lr, args=dict(optimizer_args or {})), ScheduleConfig(**sched))
        plan = {name: each for name in declared or ("main",)}
    steps_per_epoch = max(int(steps_per_epoch), 1)
    total = epochs * steps_per_epoch
    if max_steps:
        total = min(total, max_steps)
    optimizers, schedules = build_optimizers(
        declared,
        plan,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        model_name=model_name or f"{type(model).__name__}",
    )
    signal = getattr(model, "collapse_signal", None)
    if collapse_steps and signal is not None:  # first: checkpointing stays last, to store the others' state
        callbacks = [CollapseGuard(*signal, collapse_steps, setting=collapse_setting), *callbacks]
    return Engine(
        model, optimizers=optimizers, schedules=schedules, callbacks=callbacks, max_steps=max_steps, **settings
    )
