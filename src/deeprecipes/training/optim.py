"""Optimizers and learning-rate schedules by name: the ones the TensorFlow tutorials used, mapped to torch.

``build_optimizer("rmsprop", params, lr=1e-3, alpha=0.9)`` and ``build_schedule(optimizer, cfg, steps_per_epoch)``.
Schedules are one multiplicative factor of the global step (a ``LambdaLR`` stepped after every optimizer step), so
their whole state is an integer and checkpoints hold no code.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from ..errors import ConfigError

__all__ = [
    "OPTIMIZERS",
    "TFRMSprop",
    "build_optimizer",
    "build_optimizers",
    "check_optimizer_args",
    "fused_kernel",
    "describe_optimizer",
    "load_keeping_kernel",
    "lr_factor",
    "iwae_stage",
    "build_schedule",
]


class TFRMSprop(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1 computed it (``tf.train.RMSPropOptimizer``).

    Differences from ``torch.optim.RMSprop``: the mean-square accumulator starts at 1.0, not 0, and epsilon
    (1e-10) goes inside the square root::

        ms <- decay * ms + (1 - decay) * g**2
        mom <- momentum * mom + lr * g / sqrt(ms + eps)
        w <- w - mom
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        decay: float = 0.9,
        momentum: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)
                    state["mom"] = torch.zeros_like(p)
                ms, mom = state["ms"], state["mom"]
                ms.mul_(group["decay"]).addcmul_(p.grad, p.grad, value=1 - group["decay"])
                mom.mul_(group["momentum"]).addcdiv_(p.grad, (ms + group["eps"]).sqrt_(), value=group["lr"])
                p.sub_(mom)
        return loss


# name -> (class, fixed defaults that make the named variant)
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "adadelta": (torch.optim.Adadelta, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "rmsprop-tf": (TFRMSprop, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
}
_NOT_USER_ARGS = {"params", "self", "lr", "foreach", "capturable", "differentiable", "maximize"}


def _allowed_args(name: str) -> list[str]:
    cls, _ = OPTIMIZERS[name]
    return [p for p in inspect.signature(cls.__init__).parameters if p not in _NOT_USER_ARGS]


def check_optimizer_args(name: str, args: dict[str, Any], where: str = "optimizer") -> None:
    """Raise ConfigError for an unknown optimizer or an argument it does not take (``where`` names the section)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}'; known: {', '.join(OPTIMIZERS)}")
    allowed = _allowed_args(name)
    for key, value in args.items():
        if key not in allowed:
            raise ConfigError(f"unknown argument '{where}.{key}' for {name}; allowed: lr, {', '.join(allowed)}")
        if key == "betas":
            ok = isinstance(value, (list, tuple)) and len(value) == 2
            if not ok or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in value):
                raise ConfigError(f"{where}.betas must be two numbers in [0, 1), got {value!r}")
        elif key in ("nesterov", "fused"):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise ConfigError(f"{where}.{key} must be a number >= 0, got {value!r}")


def build_optimizer(
    name: str, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float, **args: Any
) -> torch.optim.Optimizer:
    """Create optimizer ``name`` over ``params``; ``args`` override the variant's defaults."""
    check_optimizer_args(name, args)
    cls, defaults = OPTIMIZERS[name]
    kwargs = {**defaults, **args}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    params = [_listed(p) for p in params]  # generators are read once: the check must not use them up
    tensors = [t for p in params for t in (p["params"] if isinstance(p, Mapping) else [p])]
    if kwargs.get("fused") and not _fusable(tensors):
        raise ConfigError(f"fused = true: torch's fused {name} needs dense floating-point weights on the CPU or CUDA")
    if "fused" not in kwargs and fused_kernel(cls, tensors, kwargs):
        kwargs["fused"] = True
    return cls(params, lr=lr, **kwargs)


def _listed(p: Any) -> Any:
    if isinstance(p, Mapping):
        ps = p["params"]
        return {**p, "params": [ps] if isinstance(ps, torch.Tensor) else list(ps)}
    return p


def _fusable(tensors: Sequence[torch.Tensor]) -> bool:
    return bool(tensors) and all(
        t.is_floating_point() and t.layout == torch.strided and t.device.type in ("cpu", "cuda") for t in tensors
    )


def fused_kernel(cls: type[torch.optim.Optimizer], tensors: Sequence[torch.Tensor], kwargs: Mapping[str, Any]) -> bool:
    """Whether ``cls`` over ``tensors`` runs torch's fused kernel (one pass over every tensor per step) by default.

    torch's default runs the update as several elementwise passes (tensor by tensor on the CPU, ``foreach`` on
    CUDA), which on the CPU made Adam's update about ten times slower than the fused kernel (17.9 against 1.8 ms
    for a 3.3M-weight CNN's update alone, 1 thread; whole steps in ``benchmarks/optimizers.py``). The fused kernel
    computes the same update (equal to about 1e-6 after 20 steps). Used where torch has it (Adam, AdamW, Adagrad,
    SGD with momentum) and every tensor is a dense floating-point one on the CPU or CUDA; plain SGD is one pass
    already and keeps the default. A recipe's ``fused = false`` (or ``true``) in its optimizer table decides instead.
    """
    if "fused" not in inspect.signature(cls.__init__).parameters:
        return False
    if cls is torch.optim.SGD and not kwargs.get("momentum"):
        return False
    return _fusable(tensors)


def load_keeping_kernel(opt: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """``opt.load_state_dict(state)``, keeping the kernel ``opt`` was built with (torch takes the saved groups'
    ``fused`` and ``foreach``): the kernel belongs to this run's machine and config, not to the checkpoint. A run
    saved before fused kernels, or on another device, resumes on the kernel it would start with now."""
    kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in opt.param_groups]
    opt.load_state_dict(state)  # type: ignore[arg-type]
    for group, kernel in zip(opt.param_groups, kernels, strict=True):
        group.update(kernel)
        if kernel.get("fused"):  # the fused kernel keeps its step count as a float32 tensor beside the weights
            for p in group["params"]:
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor):
                    opt.state[p]["step"] = step.to(device=p.device, dtype=torch.float32)


def describe_optimizer(opt: torch.optim.Optimizer) -> str:
    """``"Adam, fused"``: the class and the kernel that runs its update, for the run's summary."""
    group = opt.param_groups[0]
    if group.get("fused"):
        kernel = "fused"
    elif group.get("foreach") or all(p.is_cuda for g in opt.param_groups for p in g["params"]):
        kernel = "foreach"
    else:
        kernel = "tensor by tensor"
    return f"{type(opt).__name__}, {kernel}"


def lr_factor(
    step: int,
    *,
    name: str = "constant",
    steps_per_epoch: int = 1,
    total_steps: int = 1,
    gamma: float = 1.0,
    every: int = 0,
    staircase: bool = True,
    delay: int = 0,
    min_factor: float = 0.0,
    warmup_steps: int = 0,
) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps.

    exponential: ``gamma ** (step / period)`` (whole periods when ``staircase``), TF's ``exponential_decay``;
    step: ``gamma ** (step // period)``; cosine: from 1 down to ``min_factor`` over ``total_steps``; iwae: the IWAE
    paper's stages (:func:`iwae_stage`; ``period`` is one pass over the data);
    warm-up: a linear ramp over the first ``warmup_steps`` multiplies any of them. ``period`` is ``every`` steps,
    or one epoch when ``every`` is 0. ``delay`` periods pass at the full rate before exponential or step decay
    starts (TF PTB: ``0.5 ** max(epoch - 4, 0)`` is ``gamma=0.5, delay=4``).
    """
    period = every or steps_per_epoch
    if name == "constant":
        f = 1.0
    elif name == "exponential":
        f = gamma ** max((step // period if staircase else step / period) - delay, 0)
    elif name == "step":
        f = gamma ** max(step // period - delay, 0)
    elif name == "cosine":
        t = min(step, total_steps) / max(total_steps, 1)
        f = min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    elif name == "iwae":
        f = 10 ** (-iwae_stage(step // period) / 7)
    else:
        raise ConfigError(f"unknown schedule '{name}'; known: constant, exponential, step, cosine, iwae")
    if warmup_steps and step < warmup_steps:
        f *= (step + 1) / warmup_steps
    return f


def iwae_stage(epoch: int) -> int:
    """The stage i of the IWAE paper's schedule (Burda et al. 2015, section 5) that epoch ``epoch`` (from 0) is in:
    stage i lasts 3**i passes at a rate of 10**(-i/7) times the first, i = 0..7 (3,280 passes in all)."""
    stage, end = 0, 1
    while epoch >= end and stage < 7:
        stage += 1
        end += 3**stage
    return stage


def build_schedule(
    optimizer: torch.optim.Optimizer, *, steps_per_epoch: int, total_steps: int, **kwargs: Any
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR driven by :func:`lr_factor`; call ``.step()`` after each optimizer step."""

    def factor(step: int) -> float:
        return lr_factor(step, steps_per_epoch=steps_per_epoch, total_steps=total_steps, **kwargs)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_optimizers(
    declared: Mapping[str, Sequence[Mapping[str, Any]]],
    plan: Mapping[str, tuple[Any, Any]],
    *,
    steps_per_epoch: int,
    total_steps: int,
    model_name: str = "the model",
) -> tuple[dict[str, torch.optim.Optimizer], dict[str, torch.optim.lr_scheduler.LambdaLR]]:
    """The optimizers a model declares (``Model.configure_optimizers``), built from the recipe's settings.

    ``declared`` maps an optimizer name to its parameter groups (dicts with ``params`` and optionally ``name``);
    ``plan`` maps the names the recipe gives to ``(OptimizerConfig, ScheduleConfig)``
    (:meth:`deeprecipes.config.RecipeConfig.optimizer_plan`). A group named in the optimizer's ``lr_scale`` gets
    that factor on its learning rate; its schedule scales every group alike. Names that do not match on both sides
    are one ConfigError.
    """
    missing = [n for n in declared if n not in plan]
    extra = [n for n in plan if n not in declared and not (n == "main" and len(plan) == 1)]
    if missing or extra:
        want = ", ".join(f"[optimizers.{n}]" for n in declared) or "no optimizer"
        raise ConfigError(
            f"{model_name} trains {want}; the recipe names {', '.join(plan)}"
            + (" (it needs no optimizer section)" if not declared else "")
        )
    optimizers, schedules = {}, {}
    for name, groups in declared.items():
        opt_cfg, sched_cfg = plan[name]
        names = {g.get("name") for g in groups}
        unknown = [k for k in opt_cfg.lr_scale if k not in names]
        if unknown:
            known = ", ".join(sorted(n for n in names if n)) or "none"
            raise ConfigError(f"optimizer '{name}' lr_scale names groups {unknown}; {model_name}'s groups: {known}")
        scale = opt_cfg.lr_scale
        param_groups = [{**g, "lr": opt_cfg.lr * scale[g["name"]]} if g.get("name") in scale else g for g in groups]
        optimizers[name] = build_optimizer(opt_cfg.name, param_groups, opt_cfg.lr, **opt_cfg.args)
        s = dataclasses.asdict(sched_cfg)
        if s["name"] != "constant" or s["warmup_steps"]:
            schedules[name] = build_schedule(
                optimizers[name], steps_per_epoch=steps_per_epoch, total_steps=total_steps, **s
            )
    return optimizers, schedules
