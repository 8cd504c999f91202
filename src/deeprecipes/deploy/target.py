"""What every deployment step starts from: a run's export view and real inputs of its data.

:func:`load_target` rebuilds the trained model through :func:`deeprecipes.load_run` (model.json, config.json, a
checkpoint) and asks it for its export view (:meth:`deeprecipes.models.base.Model.export_module`: the model itself,
a VAE's decoder, a GAN's generator, one step of a language model). The inputs that exports are checked on, int8
models calibrated and scored with, and latencies measured on come from the run's own dataset, prepared as
``deeprecipes eval`` prepares it (:func:`deeprecipes.runs.parts.load_data`): the test split, else the validation
split. Nothing here reads training data for training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError, DeepRecipesError
from ..models.base import Classifier
from ..runs.api import load_run_and_data
from ..runs.rundir import LoadedRun, run_path

__all__ = ["DeployError", "Target", "load_target", "as_numpy", "first_line", "check_positive"]


class DeployError(DeepRecipesError, RuntimeError):
    """A model that cannot be exported, checked or quantized, or a deployment package that is missing; one line
    naming the model and the format."""


@dataclass
class Target:
    """A trained run's export view and the split of its data that deployment uses."""

    run_dir: Path
    run: LoadedRun
    module: nn.Module
    outputs: list[str]
    x: torch.Tensor  # inputs of the split (what the model takes, not yet its export inputs)
    y: torch.Tensor | None  # their labels, when the split has them
    split: str
    calibration_x: torch.Tensor  # inputs to calibrate int8 activations with: another split when there is one

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def is_classifier(self) -> bool:
        """Whether the export view returns class logits that ``y`` scores (accuracy applies)."""
        return isinstance(self.run.model, Classifier) and self.y is not None and self.module is self.run.model

    def inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named inputs of the export view made from model inputs ``x``."""
        with torch.no_grad():
            return self.run.model.export_inputs(x)

    def sample(self, n: int, start: int = 0) -> dict[str, torch.Tensor]:
        """Export inputs made from ``n`` inputs of the split, from ``start`` on."""
        return self.inputs(self.x[start : start + n])


def load_target(run_dir: str | Path, *, which: str = "latest", data_dir: str | Path | None = None) -> Target:
    """The export view of a saved run and its data's test split (else its validation split), on the CPU.

    Parameters
    ----------
    run_dir : path
    which : {"latest", "best"}
        The checkpoint.
    data_dir : path, optional
        Where data files are looked for first (else ``$DEEPRECIPES_DATA``).
    """
    run_dir = run_path(run_dir)
    run, data = load_run_and_data(run_dir, which, data_dir, torch.device("cpu"))
    splits = data.splits()
    split = next((name for name in ("test", "val") if name in splits and len(splits[name])), None)
    if split is None:
        raise DataError(f"{run_dir}: dataset '{run.config.data.name}' has no test or validation split to check on")
    part = splits[split]
    calib = next((splits[n].x for n in ("val", "train") if n != split and n in splits and len(splits[n])), part.x)
    return Target(
        run_dir=run_dir,
        run=run,
        module=run.model.export_module().eval(),
        outputs=list(run.model.export_outputs()),
        x=part.x,
        y=part.y,
        split=split,
        calibration_x=calib,
    )


def as_numpy(outputs: Any) -> list[np.ndarray]:
    """A module's output (a tensor, or a tuple or list of them) as a list of numpy arrays."""
    parts = outputs if isinstance(outputs, tuple | list) else (outputs,)
    return [p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in parts]


def first_line(error: BaseException, limit: int = 300) -> str:
    """The gist of an exception's message on one line: exporters write pages, colour codes and an "Exception
    summary" section, whose first line is the reason; cut to ``limit`` characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(error).__name__)
    line = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>: ", r"\1: ", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_positive(name: str, value: Any) -> None:
    """An int option >= 1 (batch, runs, samples), or one ConfigError line naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
