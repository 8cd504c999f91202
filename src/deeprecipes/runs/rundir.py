"""A run directory rebuilds its model without data: ``model.json`` and :func:`load_run`.

After data preparation a run writes ``RUN_DIR/model.json``:

- ``name`` and ``args``: the registered model and every argument of its builder, resolved (defaults filled in, and
  sizes the data decided, such as a language model's vocabulary, put in by ``Model.data_args``);
- ``input``: what the model takes: per-sample shape, dtype and value range of the training inputs;
- ``data``: the data transform state, the JSON-safe part of the dataset's ``meta`` (vocabulary, tokenisation level,
  scaling statistics, class names), given back to the model by ``Model.restore_data``.

``load_run(RUN_DIR)`` reads that file, ``config.json`` and a checkpoint, and returns the trained model in eval mode
with its metadata: no dataset is read and no network is touched. Sampling and, later, export and serving start
from it.

This module is the one way the runner and its front ends read a run directory: ``config.json``
(:func:`read_config`), ``model.json`` (:func:`read_model_record`), ``metrics.jsonl`` (:func:`read_metrics`),
``summary.json`` (:func:`read_summary`) and the checkpoints (:func:`latest_checkpoint`, :func:`load_latest`,
:func:`load_run`, over :mod:`deeprecipes.training.checkpoint`, which owns their format). Each file is checked as it
is read: a missing, non-UTF-8, non-JSON or wrongly shaped file is one :class:`CheckpointError` line naming it.

    run = deeprecipes.load_run("runs/char-rnn-shakespeare/2026-...-s0")
    run.model.generate_text("ROMEO:", length=200)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RecipeConfig, config_from_dict
from ..errors import CheckpointError, ConfigError, DeepRecipesError, WriteError
from ..fileio import read_json
from ..recipes import check_builders
from ..registry import MODELS, create_model
from ..training.averaging import averaged_weights
from ..training.callbacks import bad_lines, read_metrics_log
from ..training.checkpoint import load_checkpoint, make_latest, passed_over, read_index
from .device import resolve_device

__all__ = [
    "LoadedRun",
    "load_run",
    "run_path",
    "read_config",
    "read_model_record",
    "read_metrics",
    "read_summary",
    "latest_checkpoint",
    "load_latest",
    "make_latest",
    "model_record",
    "lock_run_dir",
    "MODEL_FILE",
    "LOCK_FILE",
]

log = logging.getLogger("deeprecipes")

MODEL_FILE = "model.json"
LOCK_FILE = ".lock"


@dataclass
class LoadedRun:
    """A trained model rebuilt from its run directory, and what the run recorded about its data."""

    model: Any
    config: RecipeConfig
    name: str
    args: dict[str, Any]
    input: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    passed_over: str | None = None  # the damaged checkpoint the index named, when an older one was used instead
    averaged: int = 0  # how many end-of-epoch weights the model's are the mean of (train.average_tail); 0: none


def run_path(value: Any, what: str = "run_dir") -> Path:
    """A path argument of the API (``run_dir``, ``out``), checked: a ``str`` or ``os.PathLike`` that is not blank."""
    if not isinstance(value, str | os.PathLike) or not str(os.fspath(value)).strip():
        raise ConfigError(f"{what} must be a path (a str or pathlib.Path), got {value!r}")
    return Path(value)


def read_config(run_dir: str | Path) -> RecipeConfig:
    """The resolved recipe of a run directory (its ``config.json``), checked as a recipe is; an error names the
    file."""
    run_dir = run_path(run_dir)
    path = run_dir / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json)")
    raw = read_json(path, "run config")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a run's config (a JSON object), got {type(raw).__name__}")
    try:
        cfg = check_builders(config_from_dict(raw))
        if not cfg.model.name:
            raise ConfigError("no model.name: a run's config names its model")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg


def read_model_record(run_dir: str | Path) -> dict[str, Any]:
    """``model.json``, checked: ``name`` a string, ``args``, ``input`` and ``data`` JSON objects."""
    run_dir = run_path(run_dir)
    path = run_dir / MODEL_FILE
    if not path.exists():
        raise CheckpointError(f"{run_dir}: no {MODEL_FILE} (the run stopped before its data were prepared)")
    record = read_json(path, "model record")
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: not a model record (a JSON object), got {type(record).__name__}")
    if not isinstance(record.get("name"), str):
        raise CheckpointError(f"{path}: 'name' must be a registered model's name, got {record.get('name')!r}")
    for key in ("args", "input", "data"):
        if not isinstance(record.setdefault(key, {}), dict):
            raise CheckpointError(f"{path}: '{key}' must be a JSON object, got {type(record[key]).__name__}")
    return record


def read_metrics(path: str | Path, key: str = "epoch") -> list[dict[str, Any]]:
    """The epoch records of a ``metrics.jsonl`` (the run's, or a pretrained layer's; ``key="episode"``: a
    reinforcement-learning run's episodes), in order; lines that are not one (cut short by a kill, damaged) are
    left out with one warning naming the file and the lines."""
    records, bad = read_metrics_log(Path(path), key)
    if bad:
        log.warning("%s: left out %s", path, bad_lines(bad, key))
    return records


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """``summary.json``, checked: a JSON object with a ``metrics`` object."""
    path = run_path(run_dir) / "summary.json"
    summary = read_json(path, "run summary")
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise CheckpointError(f"{path}: not a run summary (a JSON object with 'metrics')")
    return summary


def latest_checkpoint(ckpt_dir: Path) -> str | None:
    """The folder name of the latest checkpoint in ``ckpt_dir`` (a run's ``checkpoints/`` or a pretrained layer's),
    or None before the first one; the index is checked, and rebuilt when it is missing (see
    :func:`deeprecipes.training.checkpoint.read_index`)."""
    return read_index(ckpt_dir).get("latest")


def load_latest(ckpt_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Path, str | None]:
    """What a resume starts from: the weights and state of the latest checkpoint that loads, its folder, and the
    damaged one the index named instead (None when the latest loaded; a warning names both)."""
    weights, state, path = load_checkpoint(ckpt_dir)
    return weights, state, path, passed_over(ckpt_dir, "latest", path)


def _json_safe(meta: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            continue  # tensors, arrays, paths: not part of the transform state
        out[k] = v
    return out


def model_record(cfg: RecipeConfig, model: Any, train_x: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What ``model.json`` holds for ``model``, built from ``cfg`` and trained on inputs ``train_x``."""
    bound = MODELS.signature(cfg.model.name).bind_partial(**cfg.model.args)
    bound.apply_defaults()
    args = {**bound.arguments, **model.data_args()}
    x = train_x.float()
    spec = {
        "shape": list(train_x.shape[1:]),
        "dtype": str(train_x.dtype).removeprefix("torch."),
        "min": float(x.min()) if x.numel() else None,
        "max": float(x.max()) if x.numel() else None,
    }
    return {"name": cfg.model.name, "args": args, "input": spec, "data": _json_safe(meta)}


def load_run(run_dir: str | Path, *, which: str = "best", device: str = "cpu", average: bool = True) -> LoadedRun:
    """The trained model of a run directory, in eval mode, and its metadata; reads no dataset.

    Parameters
    ----------
    run_dir : path
    which : {"best", "latest"}
        The checkpoint; ``best`` falls back to ``latest`` when the run kept no best one.
    device : str
        Where the model goes.
    average : bool
        A run with ``train.average_tail`` ends as the mean of its last epochs' weights: that is its model. False
        gives the checkpoint's live weights, those training goes on from (a run without the setting, to the bit).
    """
    run_dir = run_path(run_dir)
    if which not in ("best", "latest"):
        raise ConfigError(f"which must be 'best' or 'latest', got {which!r}")
    cfg = read_config(run_dir)
    record = read_model_record(run_dir)
    name, args = record["name"], record["args"]
    if which == "best" and not read_index(run_dir / "checkpoints").get("best"):
        which = "latest"
    weights, state, ckpt = load_checkpoint(run_dir / "checkpoints", which)
    weights, averaged = averaged_weights(weights, state) if average else (weights, 0)
    model = _rebuild(run_dir / MODEL_FILE, name, args, record["data"])
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        reason = " ".join(str(e).split())
        raise CheckpointError(f"{ckpt}: weights do not fit the model in {MODEL_FILE} ({reason})") from None
    model.to(resolve_device(str(device))).eval()
    skipped = passed_over(run_dir / "checkpoints", which, ckpt)
    return LoadedRun(model, cfg, name, args, record["input"], record["data"], ckpt, skipped, averaged)


def _rebuild(path: Path, name: str, args: dict[str, Any], data: dict[str, Any]) -> Any:
    """The model ``model.json`` (at ``path``) describes, with its data transform state; errors name the file."""
    try:
        model = create_model(name, **args)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        model.restore_data(data)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{path}: 'data' does not fit model '{name}' ({e!r})") from None
    return model


@contextlib.contextmanager
def lock_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold an advisory lock (``fcntl.flock``) on a run directory while a run or resume writes it; a second one
    is refused with one line naming the process that holds it. The lock goes with the process, kill -9 included."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise WriteError(f"cannot lock {run_dir} ({path}): {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "another process"
            raise DeepRecipesError(
                f"{run_dir} is in use by PID {holder} (a run or resume is writing it); wait for it to end"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
