"""Checkpoints that hold only tensors (safetensors) and plain JSON: loading one never executes data.

Layout of ``<run>/checkpoints/``::

    ckpt-e0003-s001287/      one directory per checkpoint
        model.safetensors    model weights
        state.safetensors    every other tensor: optimizer moments, RNG states, running sums
        state.json           the rest as JSON; tensors appear as {"__tensor__": key} references
    index.json               {"latest": ..., "previous": ..., "best": ..., "best_value": ...}

A checkpoint is written into a temporary directory, fsynced, renamed into place, and only then is ``index.json``
replaced (write to a temp file, fsync, ``os.replace``). A process killed at any moment leaves the previous index
pointing at complete checkpoints; the latest and the one before it are kept, so a damaged newest copy falls back.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..fileio import atomic_write_text, file_mode, fsync_dir, read_json

__all__ = [
    "encode",
    "decode",
    "atomic_write_text",
    "save_checkpoint",
    "load_checkpoint",
    "passed_over",
    "make_latest",
    "read_index",
    "rng_state",
    "set_rng_state",
]

FORMAT = 1

log = logging.getLogger("deeprecipes")


# ----------------------------------------------------------------------------------------------------------------
# nested state <-> (JSON, tensors)


def encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Turn nested dicts/lists/tuples of numbers, strings and tensors into JSON, moving tensors to ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = prefix
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": encode(torch.from_numpy(obj.copy()), tensors, prefix)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {
            "__items__": [
                [encode(k, tensors, f"{prefix}.k{i}"), encode(v, tensors, f"{prefix}.{i}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (at {prefix})")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            try:
                return tensors[obj["__tensor__"]]
            except KeyError:
                raise CheckpointError(f"checkpoint refers to a missing tensor '{obj['__tensor__']}'") from None
        if "__ndarray__" in obj:
            return decode(obj["__ndarray__"], tensors).numpy()
        if "__items__" in obj:
            return {decode(k, tensors): decode(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        return {k: decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    return obj


# ----------------------------------------------------------------------------------------------------------------
# RNG


def rng_state() -> dict[str, Any]:
    """Every global random generator's state (torch CPU and CUDA, numpy, Python)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": list(np.random.get_state()),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(tuple(state["numpy"]))  # type: ignore[arg-type]
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------------
# files


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


INDEX_KEYS = ("latest", "previous", "best")


def _check_index(raw: Any, path: Path) -> dict[str, Any]:
    """``index.json`` as read, checked: an object whose checkpoint names are plain folder names inside the
    checkpoints directory (never a path out of it) and whose ``best_value`` is a number."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a checkpoint index (a JSON object), got {type(raw).__name__}")
    for key in INDEX_KEYS:
        name = raw.get(key)
        if name is None:
            continue
        if not isinstance(name, str) or name.startswith(".") or Path(name).name != name or "\\" in name:
            raise CheckpointError(f"{path}: '{key}' must name a checkpoint folder in {path.parent}, got {name!r}")
    value = raw.get("best_value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise CheckpointError(f"{path}: 'best_value' must be a number, got {value!r}")
    return raw


def _step_of(name: str) -> tuple[int, str]:
    try:
        return int(name.rsplit("-s", 1)[1]), name
    except (IndexError, ValueError):
        return -1, name


def _folders(ckpt_dir: Path) -> list[Path]:
    """The checkpoint folders of ``ckpt_dir``, fewest steps first (temporary ``.ckpt-*.tmp`` ones left out)."""
    return sorted((d for d in Path(ckpt_dir).glob("ckpt-*") if d.is_dir()), key=lambda d: _step_of(d.name))


def rebuild_index(ckpt_dir: Path, reason: str = "was missing", old: dict[str, Any] | None = None) -> dict[str, Any]:
    """An index for a checkpoints directory whose ``index.json`` is missing (or names no latest checkpoint): the
    checkpoint folders that verify, the one with the most steps as latest and the next as previous; ``best`` only
    when ``old`` names one that verifies. Written back when the directory is writable; logged as a warning either
    way. Checkpoint folders of which none verifies are an error: nothing is started over in silence."""
    ckpt_dir = Path(ckpt_dir)
    folders = _folders(ckpt_dir)
    good, errors = [], []
    for folder in folders:
        try:
            _load_dir(folder)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        good.append(folder.name)
    path = ckpt_dir / "index.json"
    if not good:
        if errors:
            raise CheckpointError(
                f"{path} {reason}, and none of the {len(errors)} checkpoint folder(s) in {ckpt_dir} loads "
                f"({errors[-1]}); move {ckpt_dir} away to start the run over"
            )
        return {}
    index: dict[str, Any] = {"latest": good[-1], "previous": good[-2] if len(good) > 1 else None}
    if old and old.get("best") in good:
        index.update(best=old["best"], best_value=old.get("best_value"))
    log.warning(
        "%s %s: rebuilt it from the %d checkpoint folder(s) that load; latest %s",
        *(path, reason, len(good), good[-1]),
    )
    try:
        atomic_write_text(path, json.dumps(index, indent=2))
    except OSError:
        pass
    return index


def read_index(ckpt_dir: Path) -> dict[str, Any]:
    """The checkpoint index of ``ckpt_dir`` (empty when there is none yet), checked; rebuilt from the checkpoint
    folders when ``index.json`` is missing, or names no latest checkpoint, while checkpoint folders are there."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / "index.json"
    if not path.exists():
        return rebuild_index(ckpt_dir) if ckpt_dir.is_dir() else {}
    index = _check_index(read_json(path, "checkpoint index"), path)
    if index.get("latest") or not _folders(ckpt_dir):
        return index
    return rebuild_index(ckpt_dir, "names no latest checkpoint", index)


def save_checkpoint(
    ckpt_dir: Path,
    name: str,
    model_state: dict[str, torch.Tensor],
    state: dict[str, Any],
    *,
    best_value: float | None = None,
) -> Path:
    """Write checkpoint ``name`` atomically and make it the latest (and the best, when ``best_value`` is given)."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / name
    tmp = ckpt_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": FORMAT, **encode(state, tensors, "s")}
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model_state.items()}
    try:
        tmp.mkdir()
        save_file(weights, str(tmp / "model.safetensors"))
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta), encoding="utf-8")
        for f in tmp.iterdir():
            f.chmod(file_mode())
            _fsync_file(f)
        fsync_dir(tmp)
    except (OSError, SafetensorError) as e:  # a full disk: the previous checkpoint and the index stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"cannot write checkpoint {final}: {getattr(e, 'strerror', None) or e}") from None
    index = read_index(ckpt_dir)
    if final.exists():  # left by a run killed after the rename and before the index update
        if index.get("best") == name:  # never touch what the index points at
            index.pop("best")
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(ckpt_dir)

    new_index = dict(index)
    if index.get("latest") != name:
        new_index["previous"] = index.get("latest")
    new_index["latest"] = name
    if best_value is not None:
        new_index["best"] = name
        new_index["best_value"] = best_value
    atomic_write_text(ckpt_dir / "index.json", json.dumps(new_index, indent=2))

    keep = {new_index.get(k) for k in INDEX_KEYS}
    for old in ckpt_dir.iterdir():
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
        elif old.name.startswith(".index.json.") and old.name.endswith(".tmp"):  # left by a killed index write
            old.unlink(missing_ok=True)
    return final


def _load_dir(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        weights = load_file(str(path / "model.safetensors"))
        tensors = load_file(str(path / "state.safetensors"))
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, SafetensorError, json.JSONDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: damaged checkpoint (state.json is not a JSON object)")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    meta.pop("format")
    try:
        return weights, decode(meta, tensors)
    except (CheckpointError, TypeError, ValueError, AttributeError, KeyError) as e:  # a hand-edited state.json
        raise CheckpointError(f"{path}: damaged checkpoint (state.json: {e})") from None


def load_checkpoint(ckpt_dir: Path, which: str = "latest") -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Load ``which`` ("latest" or "best") from a checkpoints directory. A damaged latest falls back to the previous
    one with a warning line that names both (the returned path says which was used).

    Returns
    -------
    (model_state, state, path)
    """
    ckpt_dir = Path(ckpt_dir)
    index = read_index(ckpt_dir)
    candidates = [index.get(which)] + ([index.get("previous")] if which == "latest" else [])
    errors = []
    for name in candidates:
        if not name:
            continue
        try:
            weights, state = _load_dir(ckpt_dir / name)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            log.warning("%s; using the previous checkpoint, %s, instead", errors[0], ckpt_dir / name)
        return weights, state, ckpt_dir / name
    if errors:
        raise CheckpointError("; ".join(errors))
    raise CheckpointError(f"{ckpt_dir}: no {which} checkpoint")


def passed_over(ckpt_dir: Path, which: str, used: Path) -> str | None:
    """The checkpoint folder that the index names as ``which`` when :func:`load_checkpoint` had to use another one
    (``used``) because it was damaged; None when the named one was used. Runs and evaluations record it."""
    named = read_index(Path(ckpt_dir)).get(which)
    return named if named and named != used.name else None


def make_latest(ckpt_dir: Path, name: str) -> None:
    """Point the index's ``latest`` at checkpoint ``name`` (a resume that passed over a damaged latest one): the
    next save then keeps ``name`` as its previous checkpoint, and the damaged one goes."""
    ckpt_dir = Path(ckpt_dir)
    index = dict(read_index(ckpt_dir))
    index["latest"] = name
    index.pop("previous", None)
    atomic_write_text(ckpt_dir / "index.json", json.dumps(_check_index(index, ckpt_dir / "index.json"), indent=2))
