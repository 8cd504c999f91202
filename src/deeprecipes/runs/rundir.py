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

    run = deeprecipes.load_run("runs/char-rnn-shakespeare/2026-...-s0")
    run.model.generate_text("ROMEO:", length=200)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RecipeConfig, config_from_dict
from ..errors import CheckpointError, DeepRecipesError
from ..recipes import check_builders
from ..registry import MODELS, create_model
from ..training.checkpoint import load_checkpoint, passed_over, read_index

__all__ = ["LoadedRun", "load_run", "read_config", "model_record", "lock_run_dir", "MODEL_FILE", "LOCK_FILE"]

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


def read_config(run_dir: str | Path) -> RecipeConfig:
    """The resolved recipe of a run directory (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a run's config (a JSON object), got {type(raw).__name__}")
    return check_builders(config_from_dict(raw))


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


def load_run(run_dir: str | Path, *, which: str = "best", device: str = "cpu") -> LoadedRun:
    """The trained model of a run directory, in eval mode, and its metadata; reads no dataset.

    Parameters
    ----------
    run_dir : path
    which : {"best", "latest"}
        The checkpoint; ``best`` falls back to ``latest`` when the run kept no best one.
    device : str
        Where the model goes.
    """
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    path = run_dir / MODEL_FILE
    if not path.exists():
        raise CheckpointError(f"{run_dir}: no {MODEL_FILE} (the run stopped before its data were prepared)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        name, args = record["name"], dict(record["args"])
    except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: bad JSON or bad UTF-8
        raise CheckpointError(f"{path}: unreadable ({e!r})") from None
    if which == "best" and not read_index(run_dir / "checkpoints").get("best"):
        which = "latest"
    weights, _, ckpt = load_checkpoint(run_dir / "checkpoints", which)
    model = create_model(name, **args)
    model.restore_data(record.get("data", {}))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt}: weights do not fit the model in {MODEL_FILE} ({e})") from None
    model.to(device).eval()
    skipped = passed_over(run_dir / "checkpoints", which, ckpt)
    return LoadedRun(model, cfg, name, args, record.get("input", {}), record.get("data", {}), ckpt, skipped)


@contextlib.contextmanager
def lock_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold an advisory lock (``fcntl.flock``) on a run directory while a run or resume writes it; a second one
    is refused with one line naming the process that holds it. The lock goes with the process, kill -9 included."""
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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
