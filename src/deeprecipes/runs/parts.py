"""The typed set of parts one run is made of, and the one function that builds them from a recipe.

:func:`build_parts` seeds the generators, loads and prepares the data, builds the model, its training and
evaluation sources, the optimizers it declares and the engine with its callbacks. Every phase of a run
(:mod:`deeprecipes.runs.phases`) works on the same :class:`RunParts`; nothing in them depends on which phases run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RecipeConfig, changed_settings
from ..data import Batches
from ..errors import ConfigError
from ..registry import DATASETS, create_dataset, create_model
from ..training.averaging import WeightAverage, first_averaged_epoch
from ..training.callbacks import (
    Callback,
    Checkpointer,
    EarlyStopping,
    MetricsLog,
    MonitorCheck,
    ProgressLogger,
    SampleGrids,
    TensorBoardLogger,
    WallClock,
)
from ..training.engine import Engine
from ..training.setup import declared_optimizers, make_engine
from ..training.strategy import Single, Strategy
from .device import RunMachine

__all__ = ["RunParts", "build_parts", "load_data", "clean_inputs"]


@dataclass
class RunParts:
    """Everything a run's phases share: the recipe, where it writes, the machine and process layout, the prepared
    data, the model, its sources and the engine of the fit phase."""

    cfg: RecipeConfig
    run_dir: Path | None
    machine: RunMachine
    strategy: Strategy
    data: Any
    model: Any
    train: Batches
    eval_sets: dict[str, Batches]
    sample: tuple[torch.Tensor, ...]
    engine: Engine
    clock: WallClock
    progress: bool | None = None
    train_x: torch.Tensor | None = None
    val_x: torch.Tensor | None = None
    results: dict[str, Any] = field(default_factory=dict)  # what each phase reports, by phase name
    resumed_from: dict[str, Any] | None = None  # the checkpoint a resume started from, and any it passed over
    env: Any = None  # reinforcement learning (a recipe with [env]): the environment source
    agent: Any = None  # ... the agent
    network_args: dict[str, Any] = field(default_factory=dict)  # ... the network's arguments, sizes included

    @property
    def device(self) -> torch.device:
        return self.machine.device


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def load_data(cfg: RecipeConfig, data_dir: str | None, device: torch.device) -> tuple[Any, Any]:
    """The recipe's dataset and a new model, the data as ``model.prepare_data`` leaves them (noise drawn once,
    vocabularies built), in the order a run draws its random numbers: seed, dataset, model, preparation."""
    seed_everything(cfg.train.seed)
    data_args = dict(cfg.data.args)
    if data_dir is not None and "data_dir" in DATASETS.signature(cfg.data.name).parameters:
        data_args["data_dir"] = str(data_dir)
    data = create_dataset(cfg.data.name, **data_args)
    model = create_model(cfg.model.name, **cfg.model.args).to(device)
    return model.prepare_data(data), model


def clean_inputs(part: Any) -> torch.Tensor:
    """The uncorrupted inputs of a split (noise drawn once keeps them in ``clean``)."""
    return part.x if part.clean is None else part.clean


def eval_sources(cfg: RecipeConfig, data: Any, device: torch.device) -> dict[str, Batches]:
    t = cfg.train
    splits = data.splits()
    # train, val and test are evaluated when the dataset has them (the default asks for val and test); any other
    # name is a typo
    unknown = [name for name in t.eval_on if name not in splits and name not in ("train", "val", "test")]
    if unknown:
        raise ConfigError(
            f"train.eval_on names {unknown}, but dataset '{cfg.data.name}' has the splits {', '.join(splits)}"
        )
    return {
        name: Batches(
            *splits[name].subset(t.eval_subset).to(device).tensors(), batch_size=t.eval_batch_size, shuffle=False
        )
        for name in t.eval_on
        if name in splits
    }


def check_no_optimizer(cfg: RecipeConfig, model: Any) -> None:
    """One line when the recipe sets ``[optimizer]``, ``[schedule]`` or a gradient setting (``train.grad_clip``,
    ``l1``, ``l2``) for a model that learns without gradient steps (k-means, SOM, PCA), which would ignore it."""
    if declared_optimizers(model) or cfg.optimizers:  # named sections are matched against the model's own
        return
    changed = [f"{s}.{k}" for s in ("optimizer", "schedule") for k in changed_settings(getattr(cfg, s))]
    changed += [f"train.{k}" for k in changed_settings(cfg.train) if k in ("grad_clip", "l1", "l2")]
    if changed:
        section, key = changed[0].split(".")
        raise ConfigError(
            f"{changed[0]} = {getattr(getattr(cfg, section), key)!r}: model '{cfg.model.name}' learns without "
            f"gradient steps and has no optimizer, so the setting would be ignored; remove it"
        )


def _callbacks(
    cfg: RecipeConfig, run_dir: Path | None, sample: Any, steps: int, progress: bool | None, extra: Sequence[Callback]
) -> list[Callback]:
    """Progress, the caller's own, early stopping, then (with a run directory) the writers; checkpointing last."""
    t = cfg.train
    monitor, mode = cfg.monitor
    out: list[Callback] = [ProgressLogger(t.epochs, steps, t.max_steps, live=progress), *extra]
    if t.monitor and (t.early_stopping or (run_dir is not None and t.keep_best)):
        out.append(MonitorCheck(monitor))
    if t.early_stopping:
        out.append(EarlyStopping(monitor, mode, t.early_stopping))
    if t.average_tail:  # before the writers: the checkpoint stores the mean with the live weights
        out.append(WeightAverage(first_averaged_epoch(t.epochs, t.average_tail)))
    if run_dir is not None:
        grids = SampleGrids(run_dir / "figures" / "samples", t.sample_every) if t.sample_every else None
        if grids is not None:
            out.append(grids)
        out += [
            MetricsLog(run_dir / "metrics.jsonl"),
            TensorBoardLogger(run_dir / "tb", sample=sample, histograms=t.histograms, images=t.images, grids=grids),
            Checkpointer(
                run_dir / "checkpoints",
                monitor=monitor,
                mode=mode,
                every_steps=t.checkpoint_every,
                keep_best=t.keep_best,
            ),
        ]
    return out


def build_parts(
    cfg: RecipeConfig,
    run_dir: Path | None,
    mach: RunMachine,
    *,
    data_dir: str | None,
    progress: bool | None,
    strategy: Strategy | None = None,
    extra_callbacks: Sequence[Callback] = (),
) -> RunParts:
    """Seeds, data, model, sources, optimizers, callbacks and engine for ``cfg`` on ``mach``'s device (inside
    :func:`deeprecipes.runs.device.on_machine`, which holds threads and denormal flushing)."""
    t = cfg.train
    strategy = strategy or Single()
    data, model = load_data(cfg, data_dir, mach.device)
    check_no_optimizer(cfg, model)
    train = data.train.subset(t.train_subset).to(mach.device)
    model.check_data(train.x)
    if t.sample_every and not callable(getattr(model, "sample_images", None)):
        raise ConfigError(f"train.sample_every: model '{cfg.model.name}' does not generate images")
    batches = Batches(*train.tensors(), batch_size=t.batch_size, shuffle=t.shuffle, drop_last=t.drop_last, seed=t.seed)
    if t.compile:
        model.compile()
    sample = data.splits()["test"].subset(10).to(mach.device).tensors()
    clock = WallClock()
    callbacks = [clock, *_callbacks(cfg, run_dir, sample, max(len(batches), 1), progress, extra_callbacks)]
    engine = make_engine(
        model,
        plan=cfg.optimizer_plan(),
        steps_per_epoch=len(batches),
        epochs=t.epochs,
        max_steps=t.max_steps,
        callbacks=callbacks,
        model_name=f"model '{cfg.model.name}'",
        grad_clip=t.grad_clip,
        l1=t.l1,
        l2=t.l2,
        collapse_steps=t.collapse_steps,
        precision=mach.precision,
        log_every=t.log_every,
        strategy=strategy,
    )
    if strategy.rank:  # rank 0 draws as a 1-process run does (dropout, noise); the other ranks draw their own
        torch.manual_seed(t.seed + 104729 * strategy.rank)
    return RunParts(
        cfg=cfg,
        run_dir=run_dir,
        machine=mach,
        strategy=strategy,
        data=data,
        model=model,
        train=batches,
        eval_sets=eval_sources(cfg, data, mach.device),
        sample=sample,
        engine=engine,
        clock=clock,
        progress=progress,
        train_x=clean_inputs(train),
        val_x=None if data.val is None else clean_inputs(data.val.subset(t.eval_subset).to(mach.device)),
    )
