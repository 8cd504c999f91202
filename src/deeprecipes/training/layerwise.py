"""Greedy layer-wise pretraining: train a stack's blocks one at a time, each on the codes of the frozen ones below.

Any model with ``pretrain_blocks()`` (its blocks, bottom first) and ``pretrain_inputs(k, x)`` (``x`` through the
blocks below ``k``, without gradients) can be pretrained; each block trains on the ordinary engine with its own
optimizer, so a block's own ``compute_loss`` (autoencoders) or ``train_step`` (RBM contrastive divergence) defines
what pretraining means for it. ::

    model = create_model("stacked-denoising-classifier")
    pretrain(model, x_train, epochs=15, lr=0.01, batch_size=20)     # then fit() the whole model as usual

With ``directory`` every layer gets ``layer-<k>/`` holding ``metrics.jsonl``, ``checkpoints/`` and, once finished,
``done.json``; ``resume=True`` skips finished layers (loading their weights) and continues an unfinished one from its
last checkpoint, so a killed run ends exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from ..data.batches import Batches
from ..errors import CheckpointError, ConfigError
from ..fileio import read_json
from .callbacks import Checkpointer, MetricsLog
from .checkpoint import atomic_write_text, load_checkpoint, read_index
from .setup import make_engine

__all__ = ["LayerSettings", "pretrain", "pretrain_blocks", "layer_settings", "pretrain_plan"]

log = logging.getLogger("deeprecipes")


@dataclass
class LayerSettings:
    """How one block is pretrained."""

    epochs: int = 15
    lr: float = 0.001
    optimizer: str = "sgd"
    batch_size: int = 20
    shuffle: bool = True
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    schedule: str = "constant"
    precision: str = "auto"


def layer_settings(n_layers: int, base: LayerSettings, layers: Sequence[Mapping[str, Any]] = ()) -> list[LayerSettings]:
    """``base`` for every layer, with ``layers[k]``'s keys replacing it for layer ``k``."""
    if len(layers) > n_layers:
        raise ConfigError(f"pretrain.layers has {len(layers)} entries but the model has {n_layers} layers")
    names = {f.name for f in fields(LayerSettings)}
    out = []
    for k in range(n_layers):
        over = dict(layers[k]) if k < len(layers) else {}
        unknown = sorted(set(over) - names)
        if unknown:
            raise ConfigError(f"unknown key 'pretrain.layers[{k}].{unknown[0]}'; allowed: {', '.join(sorted(names))}")
        s = replace(base, **over)
        if s.epochs < 0 or s.lr < 0 or s.batch_size < 1:
            raise ConfigError(f"pretrain.layers[{k}]: epochs and lr must be >= 0 and batch_size >= 1, got {over}")
        out.append(s)
    return out


def pretrain_plan(cfg: Any, n_layers: int) -> list[LayerSettings]:
    """Per-layer settings from a recipe's ``[pretrain]`` section (:class:`deeprecipes.config.PretrainConfig`)."""
    base = LayerSettings(**{f.name: getattr(cfg, f.name) for f in fields(LayerSettings)})
    return layer_settings(n_layers, base, cfg.layers)


def pretrain_blocks(model: Any) -> list[Any]:
    """The blocks of a model that can be pretrained layer by layer, bottom first; a ConfigError for others."""
    if not (hasattr(model, "pretrain_blocks") and hasattr(model, "pretrain_inputs")):
        raise ConfigError(
            f"model {type(model).__name__} cannot be pretrained layer by layer (it has no pretrain_blocks())"
        )
    return list(model.pretrain_blocks())


def pretrain(
    model: Any,
    x: torch.Tensor,
    *,
    val: torch.Tensor | None = None,
    layers: Sequence[Mapping[str, Any]] = (),
    seed: int = 0,
    directory: str | Path | None = None,
    resume: bool = False,
    callbacks: Callable[[int, Any], Sequence[Any]] | None = None,
    **settings: Any,
) -> list[list[dict[str, Any]]]:
    """Pretrain ``model``'s blocks bottom-up on ``x`` (and report ``val_*`` metrics on ``val``).

    Parameters
    ----------
    model : a model with ``pretrain_blocks()`` and ``pretrain_inputs(k, x)``
    x, val : Tensor
        Training (and validation) inputs, on the model's device.
    layers : sequence of dict
        Per-layer overrides of the settings, e.g. ``[{"lr": 0.01}, {}, {"epochs": 5}]``.
    seed : int
        Block ``k`` trains with the global RNG seeded from ``(seed, k)`` and its own batch order.
    directory : path, optional
        Per-layer metrics, checkpoints and completion markers (see the module docs).
    resume : bool
        Continue from what ``directory`` holds.
    callbacks : callable(k, block) -> callbacks, optional
        Extra callbacks for layer ``k`` (progress bar, TensorBoard, the run's wall clock).
    **settings
        Fields of :class:`LayerSettings` for every layer: ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ...

    Returns
    -------
    list of per-layer histories (lists of epoch logs).
    """
    blocks = pretrain_blocks(model)
    plan = layer_settings(len(blocks), LayerSettings(**settings), layers)
    root = Path(directory) if directory is not None else None
    histories: list[list[dict[str, Any]]] = []
    for k, (block, s) in enumerate(zip(blocks, plan)):
        where = root / f"layer-{k + 1}" if root is not None else None
        done = where / "done.json" if where is not None else None
        history = _finished_history(done) if resume and done is not None and done.exists() else None
        if history is not None:
            weights, _, path = load_checkpoint(where / "checkpoints")
            _load_layer(block, k, path, weights)
            histories.append(history)
            continue
        if s.epochs == 0:
            histories.append([])
            continue
        extra = list(callbacks(k, block)) if callbacks is not None else []
        history = _train_layer(model, k, block, s, x, val, seed=seed, where=where, resume=resume, callbacks=extra)
        if done is not None:
            atomic_write_text(done, json.dumps({"layer": k + 1, "settings": s.__dict__, "history": history}))
        histories.append(history)
    return histories


def _finished_history(done: Path) -> list[dict[str, Any]] | None:
    """The history a finished layer recorded in ``done.json``; None, with a warning, when the file is damaged (the
    layer then continues from its checkpoint, which ends at once when it holds the last epoch)."""
    try:
        record = read_json(done, "layer record")
    except CheckpointError as e:
        log.warning("%s; continuing that layer from its checkpoint", e)
        return None
    history = record.get("history") if isinstance(record, dict) else None
    if isinstance(history, list) and all(isinstance(h, dict) for h in history):
        return history
    log.warning(
        "%s: not a finished layer's record (no list of epoch logs); continuing that layer from its checkpoint", done
    )
    return None


def _load_layer(block: Any, k: int, path: Path, weights: Any, engine: Any = None, state: Any = None) -> None:
    """Weights (and the engine's state) of layer ``k`` from checkpoint ``path``; one line when they do not fit."""
    try:
        block.load_state_dict(weights)
        if engine is not None:
            engine.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
        reason = " ".join(str(e).split())
        raise CheckpointError(f"{path}: does not fit layer {k + 1} of the model ({reason})") from None


def _train_layer(
    model: Any,
    k: int,
    block: Any,
    s: LayerSettings,
    x: torch.Tensor,
    val: torch.Tensor | None,
    *,
    seed: int,
    where: Path | None,
    resume: bool,
    callbacks: list[Any],
) -> list[dict[str, Any]]:
    """Train block ``k`` on the codes of the blocks below it, continuing from ``where``'s checkpoint on resume."""
    torch.manual_seed(seed * 1000 + k + 1)
    inputs = model.pretrain_inputs(k, x)
    if hasattr(block, "check_data"):
        block.check_data(inputs)
    train = Batches(inputs, batch_size=s.batch_size, shuffle=s.shuffle, seed=seed * 1000 + k + 1)
    evals = {} if val is None else {"val": Batches(model.pretrain_inputs(k, val), batch_size=1000, shuffle=False)}
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
        callbacks = callbacks + [
            MetricsLog(where / "metrics.jsonl"),
            Checkpointer(where / "checkpoints", monitor="train_loss", keep_best=False),
        ]
    engine = make_engine(
        block,
        optimizer=s.optimizer,
        lr=s.lr,
        optimizer_args=s.optimizer_args,
        schedule=s.schedule,
        steps_per_epoch=len(train),
        epochs=s.epochs,
        callbacks=callbacks,
        model_name=f"layer {k + 1}",
        precision=s.precision,
    )
    if resume and where is not None and read_index(where / "checkpoints").get("latest"):
        weights, state, path = load_checkpoint(where / "checkpoints")
        _load_layer(block, k, path, weights, engine, state)
    block.train()
    return engine.fit(train, epochs=s.epochs, eval_sets=evals)
