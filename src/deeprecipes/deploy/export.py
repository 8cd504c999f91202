"""Export a trained run to ONNX, TorchScript or ExecuTorch, checked against PyTorch on real test inputs.

    result = export_run("runs/cnn-mnist-fast/...", format="onnx")   # RUN_DIR/deploy/model.onnx (+ .json)
    result.max_abs_diff                                             # largest |exported - PyTorch| seen

- ``onnx``: the current exporter (``torch.onnx.export(..., dynamo=True)``, through ``torch.export``), every input and
  output with a dynamic batch axis; checked with ONNX Runtime.
- ``torchscript``: ``torch.jit.trace`` (deprecated in torch 2.13 in favour of ``torch.export``; kept for clients that
  load ``.pt`` archives with libtorch); checked with ``torch.jit.load``.
- ``executorch``: PyTorch's on-device runtime (the successor of the TF Mobile of cookbook chapter 10): ``torch.export``
  lowered to the XNNPACK backend, a ``.pte`` program with a batch axis of 1 to :data:`MAX_BATCH`; checked with
  ExecuTorch's Python runtime.

The export is written to a temporary file, loaded back by its runtime and run on the first inputs of the run's test
split (and on one of them, so the batch axis is checked too); the file is renamed into place only when the largest
absolute difference from PyTorch is at most :data:`TOLERANCE`. Beside it, ``<file>.json`` holds what a client needs
to prepare inputs and read outputs: input and output names, shapes and dtypes, the training input range and the
run's data transform state (scaling statistics, vocabulary, class names), from the run's ``model.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..fileio import atomic_write_text, writing
from ..runs.rundir import run_path
from .target import DeployError, Target, as_numpy, check_positive, first_line, load_target

__all__ = ["FORMATS", "TOLERANCE", "MAX_BATCH", "ExportResult", "export_run", "export_target", "ort_session"]

#: format -> file suffix
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "executorch": ".pte"}
#: largest absolute difference from PyTorch an export may show on the test inputs
TOLERANCE = 1e-4
#: ONNX operators whose weights the exporter reorders at run time
RECURRENT_OPS = {"LSTM", "GRU", "RNN"}
#: the largest batch an ExecuTorch program takes (its memory is planned for it)
MAX_BATCH = 1024

Feeds = dict[str, torch.Tensor]


@dataclass
class ExportResult:
    """An exported model: its file, the JSON beside it, and how close it came to PyTorch."""

    path: Path
    format: str
    sidecar: Path
    max_abs_diff: float
    checked_on: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> str:
        """What ``deeprecipes export`` prints."""
        shapes = lambda specs: ", ".join(f"{s['name']} {s['dtype']}{s['shape']}" for s in specs)  # noqa: E731
        return "\n".join(
            [
                f"{self.format}: {self.path} ({self.path.stat().st_size:,} bytes)",
                f"  inputs:  {shapes(self.inputs)}",
                f"  outputs: {shapes(self.outputs)}",
                f"  transform state: {self.sidecar}",
                f"  max abs diff vs PyTorch: {self.max_abs_diff:.3g} on {self.checked_on} (tolerance {TOLERANCE:g})",
            ]
        )


def export_run(
    run_dir: str | Path,
    *,
    format: str = "onnx",
    out: str | Path | None = None,
    which: str = "latest",
    data_dir: str | Path | None = None,
    samples: int = 256,
) -> ExportResult:
    """Export a saved run's model (its export view) and check it against PyTorch on real test inputs.

    Parameters
    ----------
    run_dir : path
    format : {"onnx", "torchscript", "executorch"}
    out : path, optional
        The model file (default ``RUN_DIR/deploy/model.onnx``, ``.pt`` or ``.pte``); ``<out>.json`` goes beside it.
    which : {"latest", "best"}
        The checkpoint.
    data_dir : path, optional
        Where the run's data files are looked for first (else ``$DEEPRECIPES_DATA``).
    samples : int
        Test inputs the export is checked on.
    """
    check_format(format)
    check_positive("samples", samples)
    target = load_target(run_dir, which=which, data_dir=data_dir)
    return export_target(target, format, out, samples)


def check_format(format: Any) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use one of: {', '.join(FORMATS)}")


def export_target(target: Target, format: str, out: str | Path | None = None, samples: int = 256) -> ExportResult:
    """:func:`export_run` for a loaded :class:`Target`."""
    check_format(format)
    path = target.run_dir / "deploy" / f"model{FORMATS[format]}" if out is None else run_path(out, "out")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    n = min(samples, len(target.x), MAX_BATCH if format == "executorch" else samples)
    feeds = target.sample(n)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with writing(path):
            WRITERS[format](target, feeds, tmp)
        diff = max_abs_diff(target.module, LOADERS[format](tmp), [feeds, _first(feeds)])
        if not diff <= TOLERANCE:
            raise DeployError(
                f"the {format} export of model '{target.name}' differs from PyTorch by {diff:.3g} on {n} "
                f"{target.split} inputs (more than {TOLERANCE:g})"
            )
        with writing(path):
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar = path.with_name(path.name + ".json")
    record = describe(target, format, path, feeds, diff, f"{n} {target.split} inputs (batch {n} and batch 1)")
    atomic_write_text(sidecar, json.dumps(record, indent=1))
    return ExportResult(path, format, sidecar, diff, record["checked_on"], record["inputs"], record["outputs"])


def _first(feeds: Feeds) -> Feeds:
    return {k: v[:1] for k, v in feeds.items()}


def max_abs_diff(module: nn.Module, runner: Callable[[Feeds], list[np.ndarray]], batches: list[Feeds]) -> float:
    """The largest |runner - module| over every output of every batch of feeds."""
    worst = 0.0
    for feeds in batches:
        with torch.no_grad():
            expected = as_numpy(module(*feeds.values()))
        try:
            got = runner(feeds)
        except Exception as e:  # a runtime refusing the exported program: one line
            n = len(next(iter(feeds.values())))
            raise DeployError(f"the exported model fails on {n} inputs: {first_line(e)}") from None
        if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
            shapes = [tuple(g.shape) for g in got], [tuple(e.shape) for e in expected]
            raise DeployError(f"the exported model's outputs have shapes {shapes[0]}, PyTorch's {shapes[1]}")
        for g, e in zip(got, expected):
            if e.size:
                worst = max(worst, float(np.abs(g.astype(np.float64) - e.astype(np.float64)).max()))
    return worst


def describe(target: Target, format: str, path: Path, feeds: Feeds, diff: float, checked_on: str) -> dict[str, Any]:
    """The JSON beside an exported model: what it takes and gives, and the run's data transform state."""
    with torch.no_grad():
        outs = as_numpy(target.module(*feeds.values()))
    run = target.run
    return {
        "format": format,
        "file": path.name,
        "recipe": run.config.name,
        "model": run.name,
        "run_dir": str(target.run_dir),
        "checkpoint": None if run.checkpoint is None else f"{run.checkpoint.parent.name}/{run.checkpoint.name}",
        "inputs": [_spec(k, v.numpy()) for k, v in feeds.items()],
        "outputs": [_spec(k, v) for k, v in zip(target.outputs, outs)],
        "max_batch": MAX_BATCH if format == "executorch" else None,
        "input": run.input,
        "data": run.data,
        "max_abs_diff": diff,
        "checked_on": checked_on,
        "torch": torch.__version__,
    }


def _spec(name: str, value: np.ndarray) -> dict[str, Any]:
    return {"name": name, "shape": ["batch", *value.shape[1:]], "dtype": str(value.dtype)}


# ----------------------------------------------------------------------------------------------------------------
# writers: (target, feeds, path) -> None, and loaders: path -> runner(feeds) -> outputs


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters warn, log and print at length (deprecations, skipped torchvision ops, graph dumps of a model that
    does not trace): keep the command's output to its own lines. Their errors still reach the caller."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _batch_dims(feeds: Feeds, max_batch: int | None = None) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch", min=1, max=max_batch) if max_batch else torch.export.Dim("batch", min=1)
    return tuple({0: batch} for _ in feeds)


def _failed(target: Target, format: str, error: Exception) -> DeployError:
    return DeployError(f"model '{target.name}' does not export to {format}: {first_line(error)}")


def _write_onnx(target: Target, feeds: Feeds, path: Path) -> None:
    optimizer = _need("onnxscript.optimizer")
    try:
        with quiet():
            program = torch.onnx.export(
                target.module,
                tuple(feeds.values()),
                dynamo=True,
                input_names=list(feeds),
                output_names=target.outputs,
                dynamic_shapes=_batch_dims(feeds),
                verbose=False,
            )
            # the exporter leaves a recurrent layer's gate-reordered weights (Slice, Concat) to run time: fold them,
            # whatever their size. Not elsewhere: folding a tied autoencoder's W.T would store W twice
            if {node.op_type for node in program.model.graph} & RECURRENT_OPS:
                optimizer.optimize(program.model, input_size_limit=2**31 - 1, output_size_limit=2**31 - 1)
    except Exception as e:  # the exporter raises many kinds: each is one line naming the model
        raise _failed(target, "onnx", e) from None
    program.save(str(path))


def ort_session(path: Path, threads: int | None = None, profile_prefix: str | None = None) -> Any:
    """An ONNX Runtime CPU session over ``path`` with ``threads`` intra-op threads (default: torch's)."""
    ort = _need("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # an ONNX file ONNX Runtime cannot load
        raise DeployError(f"{path}: ONNX Runtime cannot load it ({first_line(e)})") from None


def _load_onnx(path: Path) -> Callable[[Feeds], list[np.ndarray]]:
    session = ort_session(path)
    return lambda feeds: session.run(None, {k: v.numpy() for k, v in feeds.items()})


def _write_torchscript(target: Target, feeds: Feeds, path: Path) -> None:
    try:
        with quiet():
            traced = torch.jit.trace(target.module, tuple(feeds.values()), check_trace=False)
    except Exception as e:
        raise _failed(target, "torchscript", e) from None
    with quiet():
        torch.jit.save(traced, str(path))


def _load_torchscript(path: Path) -> Callable[[Feeds], list[np.ndarray]]:
    with quiet():
        module = torch.jit.load(str(path))

    def run(feeds: Feeds) -> list[np.ndarray]:
        with torch.no_grad(), quiet():
            return as_numpy(module(*feeds.values()))

    return run


def _write_executorch(target: Target, feeds: Feeds, path: Path) -> None:
    with quiet():  # importing executorch (and torchao) logs and prints about kernels this machine lacks
        _need("executorch")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    try:
        with quiet():
            program = torch.export.export(
                target.module, tuple(feeds.values()), dynamic_shapes=_batch_dims(feeds, MAX_BATCH)
            )
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as e:
        raise _failed(target, "executorch", e) from None
    path.write_bytes(lowered.buffer)


def _load_executorch(path: Path) -> Callable[[Feeds], list[np.ndarray]]:
    from executorch.runtime import Runtime

    try:
        # from bytes: executorch 1.5.1 loading a .pte by its path ran XNNPACK kernels into a segfault on a tied
        # autoencoder (the same program loaded from bytes runs)
        program = Runtime.get().load_program(path.read_bytes())
        method = program.load_method("forward")
    except Exception as e:
        raise DeployError(f"{path}: the ExecuTorch runtime cannot load it ({first_line(e)})") from None

    def run(feeds: Feeds) -> list[np.ndarray]:
        # the method runs in the program's memory: the closure keeps the program alive (freed, it crashes)
        return as_numpy(program and method.execute([v.contiguous() for v in feeds.values()]))

    return run


def _need(module: str) -> Any:
    """Import an optional deployment package, or fail with one line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DeployError(
            f"this needs the '{module}' package: pip install 'deeprecipes[deploy]' (or pip install {module})"
        ) from None


WRITERS: dict[str, Callable[[Target, Feeds, Path], None]] = {
    "onnx": _write_onnx,
    "torchscript": _write_torchscript,
    "executorch": _write_executorch,
}
LOADERS: dict[str, Callable[[Path], Callable[[Feeds], list[np.ndarray]]]] = {
    "onnx": _load_onnx,
    "torchscript": _load_torchscript,
    "executorch": _load_executorch,
}
