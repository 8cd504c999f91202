"""Where a run trains: the device it asked for, checked; its precisions; threads and denormals held for its length.

``on_machine(cfg)`` resolves all of it before any work, logs the run's first line, and yields a :class:`RunMachine`
and what was applied; ``device_info`` and ``versions`` are what the summary records of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__, machine
from ..config import RecipeConfig
from ..errors import ConfigError, DeepRecipesError
from ..training.strategy import Single, Strategy

__all__ = ["RunMachine", "resolve_device", "on_machine", "device_info", "versions"]

log = logging.getLogger("deeprecipes")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else MPS when present, else CPU; anything else is checked: a device type
    deeprecipes runs on (cpu, cuda, cuda:N, mps) that this machine has."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if has_mps:
            return torch.device("mps")
        return torch.device("cpu")
    allowed = "use auto, cpu, cuda, cuda:N or mps"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeepRecipesError(f"train.device '{name}' is not a device; {allowed}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeepRecipesError(f"train.device '{name}': deeprecipes does not run on {dev.type} devices; {allowed}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeepRecipesError(f"train.device '{name}' asked for CUDA, but torch sees no CUDA device here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise DeepRecipesError(f"train.device '{name}': the machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    if dev.type == "mps" and not has_mps:
        raise DeepRecipesError(f"train.device '{name}' asked for MPS (Apple GPUs), but torch sees no MPS device here")
    return dev


def versions() -> dict[str, str]:
    import numpy

    return {
        "deeprecipes": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def device_info(device: torch.device, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The device, its name, the threads and denormal flushing the run used, and the machine it ran on."""
    info: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), **settings}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        cpu = machine.cpu_info()
        info["name"] = cpu["model"]
        info["capability"] = cpu["capability"]
        info["cpu_count"] = os.cpu_count()
    return info


@dataclass
class RunMachine:
    """What a run resolved about its machine before any work: device, precisions (fit and pretraining)."""

    device: torch.device
    precision: machine.Precision
    pretrain_precision: machine.Precision | None = None

    @classmethod
    def resolve(cls, cfg: RecipeConfig, *, training: bool = False) -> RunMachine:
        """Device and precisions for ``cfg``; for a run that will train (``training``), also whether
        ``train.compile`` can work here (evaluating, drawing or playing a compiled run compiles nothing)."""
        device = resolve_device(cfg.train.device)
        train = machine.resolve_precision(cfg.train.precision, device)
        p = cfg.pretrain
        pre = machine.resolve_precision(p.precision, device) if (p.epochs or p.layers) else None
        if training and cfg.train.compile and (problem := machine.compile_problem(device)):
            raise ConfigError(f"train.compile: {problem}; install g++ or clang++, or set train.compile = false")
        return cls(device, train, pre)

    def log(self, cfg: RecipeConfig, run_dir: Path | None) -> None:
        """The run's first log line (where, on what, in which precision and why), then a warning per explicit
        precision that runs in float32 instead."""
        where = f"{cfg.name} in {run_dir}" if run_dir is not None else cfg.name
        pre = ""
        if self.pretrain_precision is not None and self.pretrain_precision != self.precision:
            pre = f"; pretraining precision {self.pretrain_precision}"
        log.info("%s on %s; precision %s%s", where, machine.summary_line(self.device), self.precision, pre)
        machine.warn_if_downgraded(self.precision, "train.precision")
        if self.pretrain_precision is not None:
            machine.warn_if_downgraded(self.pretrain_precision, "pretrain.precision")

    def summary(self) -> dict[str, Any]:
        out = {"train": self.precision.as_dict()}
        if self.pretrain_precision is not None:
            out["pretrain"] = self.pretrain_precision.as_dict()
        return out


@contextlib.contextmanager
def on_machine(
    cfg: RecipeConfig, run_dir: Path | None, strategy: Strategy | None = None, *, training: bool = False
) -> Iterator[tuple[RunMachine, dict[str, Any]]]:
    """Resolve device and precision, log the run's first line (on rank 0), and hold the run's threads and denormal
    flushing (restored afterwards). A data-parallel rank trains on its own GPU (``strategy.device``)."""
    strategy = strategy or Single()
    mach = RunMachine.resolve(cfg, training=training)
    mach.device = strategy.device(mach.device)
    with machine.machine_settings(cfg.train.threads, cfg.train.flush_denormal, mach.device) as applied:
        if strategy.is_main:
            mach.log(cfg, run_dir)
        yield mach, applied
