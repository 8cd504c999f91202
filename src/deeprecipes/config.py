"""Recipe configuration: TOML files resolved into typed dataclasses, with strict keys and layered overrides.

Layers, later winning: section defaults < recipe TOML < keyword arguments / ``--set key=value``. An unknown key,
a value of the wrong type or one out of range stops the run before any work, with one line naming the key and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .params import bound_problem

__all__ = [
    "RecipeConfig",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TargetConfig",
    "SourceConfig",
    "EnvConfig",
    "AgentConfig",
    "load_config",
    "parse_override",
    "apply_overrides",
    "bind_arguments",
    "changed_settings",
]

# ----------------------------------------------------------------------------------------------------------------
# value checking


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "true/false"}.get(
            tp.__name__, tp.__name__
        )
    return str(tp).replace("typing.", "")


def check_value(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to annotation ``tp`` (int -> float is allowed), or raise ConfigError."""
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:  # a bound or choices (deeprecipes.params) on the base type
        base, *metadata = typing.get_args(tp)
        value = check_value(value, base, where)
        problem = None if value is None else bound_problem(value, tuple(metadata), base)
        if problem is not None:
            raise ConfigError(f"{where} {problem}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(value, arg, where)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:  # Optional[X]: X's own message ("must be > 0")
            raise errors[0]
        allowed = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise ConfigError(f"{where} must be {allowed}, got {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, choices))}; got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if value != value:
            raise ConfigError(f"{where} must be a number, got nan")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    if value is None:
        return
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        if lo is not None and value < lo:
            raise ConfigError(f"{where} must be >= {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise ConfigError(f"{where} must be <= {hi}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")


def bind_arguments(fn: Callable[..., Any], kwargs: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """Check ``kwargs`` against ``fn``'s signature and annotations (types, and the bounds and choices of
    :mod:`deeprecipes.params`) without calling it. A value's errors name it as ``PREFIX + key`` when a prefix is
    given (``model.hidden_size``, the recipe key), else as ``WHERE argument 'key'``."""
    sig = inspect.signature(fn)
    params = {
        n: p
        for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not n.startswith("_")
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: skip type checks
        hints = {}
    out = {}
    for key, value in kwargs.items():
        if key not in params:
            if takes_any:
                out[key] = value
                continue
            raise ConfigError(f"unknown argument '{key}' for {where}; allowed: {', '.join(params) or 'none'}")
        out[key] = check_value(value, hints.get(key, Any), f"{prefix}{key}" if prefix else f"{where} argument '{key}'")
    return out


# ----------------------------------------------------------------------------------------------------------------
# sections


def _f(default: Any, help: str = "", **meta: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class SourceConfig:
    """Where the recipe comes from."""

    title: str = _f("", "the tutorial, blog post or book section")
    url: str = _f("", "where to read it")
    notes: str = _f("", "what differs from the source, and why")


@dataclass
class TargetConfig:
    """The published number this recipe reproduces."""

    metric: str = _f("", "metric name in result.json, e.g. test_accuracy")
    value: float | None = _f(None, "the published value")
    mode: str = _f("max", "whether higher (max) or lower (min) is better", choices=("max", "min"))
    source: str = _f("", "who published it")


@dataclass
class DataConfig:
    """Which dataset and split; extra keys go to the dataset builder (checked against its signature)."""

    name: str = _f("mnist", "registered dataset name")
    args: dict[str, Any] = _f({}, "keyword arguments of the dataset builder")


@dataclass
class ModelConfig:
    """Which model; extra keys go to the model builder (checked against its signature)."""

    name: str = _f("", "registered model name")
    args: dict[str, Any] = _f({}, "keyword arguments of the model builder")


@dataclass
class OptimizerConfig:
    """The optimizer; extra keys go to it (checked against the optimizer's own arguments)."""

    name: str = _f(
        "sgd",
        "optimizer",
        choices=("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "rmsprop-tf", "adam", "adamw"),
    )
    lr: float = _f(0.01, "learning rate", min=0.0)
    lr_scale: dict[str, float] = _f(
        {}, "learning-rate factor per parameter group the model names, e.g. {body = 0.1} to fine-tune it slowly"
    )
    args: dict[str, Any] = _f({}, "other optimizer arguments (momentum, betas, eps, weight_decay, ...)")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, as a factor on the optimizer's rate, applied every step."""

    name: str = _f("constant", "schedule", choices=("constant", "exponential", "step", "cosine", "iwae"))
    gamma: float = _f(1.0, "decay factor per period (exponential, step)", min=0.0, max=1.0)
    every: int = _f(0, "period in steps; 0 = one epoch", min=0)
    staircase: bool = _f(True, "decay in whole periods (exponential)")
    delay: int = _f(0, "periods at the full rate before the decay starts (exponential, step)", min=0)
    min_factor: float = _f(0.0, "final factor (cosine)", min=0.0, max=1.0)
    warmup_steps: int = _f(0, "linear warm-up from 0 over this many steps", min=0)


@dataclass
class PretrainConfig:
    """Greedy layer-wise pretraining before training (models built on a layer stack); per-layer keys in `layers`."""

    epochs: int = _f(0, "epochs per layer (0 = no pretraining)", min=0)
    optimizer: str = _f(
        "sgd",
        "optimizer for every layer",
        choices=("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "rmsprop-tf", "adam", "adamw"),
    )
    lr: float = _f(0.001, "learning rate", min=0.0)
    batch_size: int = _f(20, "batch size", min=1)
    shuffle: bool = _f(True, "reshuffle every epoch")
    optimizer_args: dict[str, Any] = _f({}, "other optimizer arguments (momentum, betas, ...)")
    schedule: str = _f("constant", "learning-rate schedule per layer", choices=("constant", "cosine"))
    precision: str = _f(
        "auto",
        "auto (bf16 where the device runs it natively, else fp32), fp32, bf16, or fp16 (CUDA)",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    layers: list[dict[str, Any]] = _f([], "per-layer overrides, e.g. [{lr = 0.01}, {}, {epochs = 5}]")


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: int = _f(10, "passes over the training split", min=1)
    max_steps: int = _f(
        0, "stop after this many optimizer steps (environment steps in a recipe with [env]; 0 = no limit)", min=0
    )
    batch_size: int = _f(128, "training batch size", min=1)
    eval_batch_size: int = _f(1000, "evaluation batch size", min=1)
    shuffle: bool = _f(True, "reshuffle the training split every epoch")
    drop_last: bool = _f(False, "drop the last partial batch")
    train_subset: int = _f(0, "use only the first N training samples (0 = all)", min=0)
    eval_subset: int = _f(0, "evaluate on only the first N samples of each split (0 = all: the full test set)", min=0)
    eval_on: list[str] = _f(["val", "test"], "splits evaluated after every epoch (those the dataset has)")
    grad_clip: float = _f(0.0, "clip the global gradient norm to this (0 = off)", min=0.0)
    l1: float = _f(0.0, "L1 penalty on weight matrices", min=0.0)
    l2: float = _f(0.0, "L2 penalty (sum of squares) on weight matrices", min=0.0)
    early_stopping: int = _f(0, "stop after this many epochs without improvement of `monitor` (0 = off)", min=0)
    monitor: str = _f("", "metric watched by early stopping and the best checkpoint (default: the target)")
    monitor_mode: str = _f("auto", "min or max for `monitor` (auto: the target's mode)", choices=("auto", "min", "max"))
    checkpoint_every: int = _f(0, "also checkpoint every N steps inside an epoch (0 = once per epoch)", min=0)
    keep_best: bool = _f(True, "keep a copy of the best checkpoint by `monitor`")
    average_tail: float = _f(
        0.0,
        "average the weights at the end of each of the last fraction of the epochs (stochastic weight averaging); "
        "the run's model is that mean (0 = off)",
        min=0.0,
        max=1.0,
    )
    seed: int = _f(0, "random seed", min=0, max=2**32 - 1)
    device: str = _f("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = _f(0, "CPU threads for torch (0 = $OMP_NUM_THREADS, else the cores this process may use)", min=0)
    precision: str = _f(
        "auto",
        "auto (bf16 autocast where the device runs it natively, else fp32), fp32, bf16, or fp16 (CUDA, grad scaler)",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    compile: bool = _f(False, "torch.compile the model's call and its compute_loss")
    flush_denormal: bool = _f(
        True, "flush denormal floats to zero on a CPU device (saturated sigmoids get slow otherwise)"
    )
    log_every: int = _f(50, "steps between progress updates", min=1)
    histograms: bool = _f(True, "write weight histograms to TensorBoard every epoch")
    images: bool = _f(True, "write image summaries to TensorBoard every epoch (models that have images)")
    sample_every: int = _f(
        0, "every N steps, an 8x8 grid of samples from fixed noise to figures/samples/ and TensorBoard (0 = off)", min=0
    )
    collapse_steps: int = _f(
        1000, "GANs: stop with one line when d_loss stays below 0.001 for this many steps in a row (0 = off)", min=0
    )


@dataclass
class EnvConfig:
    """The environment of a reinforcement-learning recipe (``id`` empty: not one); extra keys go to ``gym.make``."""

    id: str = _f("", "Gymnasium environment id, e.g. CartPole-v1 or ALE/Pong-v5 (empty: a supervised recipe)")
    wrappers: str = _f(
        "none",
        "none, or atari (noop reset, frame skip 4, 84x84 grey, stack 4, clipped rewards, episodic life)",
        choices=("none", "atari"),
    )
    max_episode_steps: int = _f(0, "cut episodes at this many steps (0 = the environment's own limit)", min=0)
    episodes: int = _f(0, "stop after this many training episodes (0 = no limit; train.max_steps limits steps)", min=0)
    num_envs: int = _f(1, "environments stepped together (gymnasium.vector), for agents that act on a batch", min=1)
    eval_episodes: int = _f(10, "greedy evaluation episodes at the end of the run (eval_return_mean, _std)", min=0)
    eval_every: int = _f(0, "also evaluate greedily every N environment steps (0 = off), keeping the best", min=0)
    eval_during: int = _f(10, "episodes of each evaluation every eval_every steps", min=1)
    use_best: bool = _f(True, "end with the weights of the best periodic evaluation (when eval_every is set)")
    gif: bool = _f(True, "save a GIF of one greedy episode at the end of the run (figures/episode.gif)")
    args: dict[str, Any] = _f({}, "keyword arguments of gym.make")


@dataclass
class AgentConfig:
    """The learning algorithm of a reinforcement-learning recipe; extra keys go to the agent (checked)."""

    name: str = _f("", "registered agent: dqn, reinforce, a2c, rbf-q-learning, random, random-search")
    args: dict[str, Any] = _f({}, "keyword arguments of the agent (gamma, buffer_size, ...)")


SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "target": TargetConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "pretrain": PretrainConfig,
    "train": TrainConfig,
    "env": EnvConfig,
    "agent": AgentConfig,
}
TOP_KEYS = ("name", "description")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
OPEN_SECTIONS = ("data", "model", "optimizer", "env", "agent")  # unknown keys are builder arguments


@dataclass
class RecipeConfig:
    """A whole recipe, resolved."""

    name: str = ""
    description: str = ""
    source: SourceConfig = field(default_factory=SourceConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    #: ``[optimizers.NAME]`` tables (each with its own ``schedule``) for models that declare several optimizers;
    #: empty when the recipe has only ``[optimizer]`` and ``[schedule]``, the short form of "main"
    optimizers: dict[str, OptimizerConfig] = field(default_factory=dict)
    schedules: dict[str, ScheduleConfig] = field(default_factory=dict)

    def optimizer_plan(self) -> dict[str, tuple[OptimizerConfig, ScheduleConfig]]:
        """Optimizer name -> (its settings, its schedule), as the recipe names them."""
        if not self.optimizers:
            return {"main": (self.optimizer, self.schedule)}
        return {name: (opt, self.schedules.get(name, ScheduleConfig())) for name, opt in self.optimizers.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict; builder arguments are flattened back into their section."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        for section in SECTIONS:
            out[section] = _section_dict(getattr(self, section))
        if self.optimizers:
            del out["optimizer"], out["schedule"]
            out["optimizers"] = {
                name: {**_section_dict(opt), "schedule": _section_dict(sched)}
                for name, (opt, sched) in self.optimizer_plan().items()
            }
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @property
    def monitor(self) -> tuple[str, str]:
        """(metric, mode) watched by early stopping and the best checkpoint."""
        metric = self.train.monitor or self.target.metric or "test_loss"
        mode = self.train.monitor_mode
        if mode == "auto":
            if metric == self.target.metric:
                mode = self.target.mode
            else:
                mode = "max" if "acc" in metric else "min"
        return metric, mode


def changed_settings(section: Any) -> list[str]:
    """The fields of a config section (``cfg.train``, ``cfg.optimizer``, ...) set to other than their defaults."""
    default = type(section)()
    return [f.name for f in dataclasses.fields(section) if getattr(section, f.name) != getattr(default, f.name)]


def _section_dict(section: Any) -> dict[str, Any]:
    d = dataclasses.asdict(section)
    args = d.pop("args", None)
    if args:
        d.update(args)
    return d


def _build_section(name: str, raw: Mapping[str, Any], where: str = "") -> Any:
    cls = SECTIONS[name]
    where = where or name
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key in fields and key != "args":
            v = check_value(value, hints[key], f"{where}.{key}")
            _check_range(v, fields[key].metadata, f"{where}.{key}")
            kwargs[key] = v
        elif name in OPEN_SECTIONS:
            extra[key] = value
        else:
            allowed = ", ".join(f for f in fields if f != "args")
            raise ConfigError(f"unknown key '{where}.{key}'; allowed: {allowed}")
    if "args" in fields:
        kwargs["args"] = {**raw.get("args", {}), **extra} if isinstance(raw.get("args"), dict) else extra
    return cls(**kwargs)


def config_from_dict(raw: Mapping[str, Any]) -> RecipeConfig:
    """Build and check a RecipeConfig from a nested dict (as read from TOML or JSON): keys, types and ranges.
    :func:`deeprecipes.recipes.check_builders` then checks the arguments against the model, dataset and
    optimizers they go to."""
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TOP_KEYS:
            kwargs[key] = check_value(value, str, key)
            if key == "name" and not RUN_NAME.fullmatch(kwargs[key]):
                raise ConfigError(
                    f"recipe name {kwargs[key]!r} must be letters, digits, '.', '_' or '-' (it names the folder "
                    "runs/<name>/), starting with a letter or digit"
                )
        elif key in SECTIONS or key == "optimizers":
            if not isinstance(value, Mapping):
                raise ConfigError(f"'{key}' must be a table of keys, got {value!r}")
            if key != "optimizers":
                kwargs[key] = _build_section(key, value)
        else:
            allowed = ", ".join((*TOP_KEYS, *SECTIONS, "optimizers"))
            raise ConfigError(f"unknown section or key '{key}'; allowed: {allowed}")
    if "optimizers" in raw:
        kwargs["optimizers"], kwargs["schedules"] = _named_optimizers(raw)
    return RecipeConfig(**kwargs)


def _named_optimizers(raw: Mapping[str, Any]) -> tuple[dict[str, OptimizerConfig], dict[str, ScheduleConfig]]:
    """``[optimizers.NAME]`` tables (with ``[optimizers.NAME.schedule]``); ``[optimizer]`` and ``[schedule]``, when
    given beside them, are the one called "main"."""
    tables = dict(raw["optimizers"])
    if "optimizer" in raw or "schedule" in raw:
        if "main" in tables:
            raise ConfigError("[optimizer] is the short form of [optimizers.main]: give one of them, not both")
        tables["main"] = {**raw.get("optimizer", {}), "schedule": raw.get("schedule", {})}
    optimizers, schedules = {}, {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"'optimizers.{name}' must be a table of keys, got {table!r}")
        table = dict(table)
        sched = table.pop("schedule", {})
        if not isinstance(sched, Mapping):
            raise ConfigError(f"'optimizers.{name}.schedule' must be a table of keys, got {sched!r}")
        optimizers[name] = _build_section("optimizer", table, f"optimizers.{name}")
        schedules[name] = _build_section("schedule", sched, f"optimizers.{name}.schedule")
    return optimizers, schedules


def parse_override(item: str) -> tuple[str, Any]:
    """Parse ``key=value`` where value is a TOML literal (``0.1``, ``true``, ``[1, 2]``) or a bare string."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like section.key=value")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of the nested dict ``raw`` with dotted keys (``train.epochs``) replaced."""
    out = json.loads(json.dumps(raw))
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if len(parts) == 1 and parts[0] in TOP_KEYS:
            out[parts[0]] = value
            continue
        if len(parts) < 2 or parts[0] not in (*SECTIONS, "optimizers"):
            raise ConfigError(
                f"unknown key '{dotted}'; keys look like section.key with section one of "
                f"{', '.join((*SECTIONS, 'optimizers'))}"
            )
        node: Any = out
        for depth, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"cannot set '{dotted}': '{where}' is the value {node!r}, not a table of keys")
        node[parts[-1]] = value
    return out


def _check_toml_values(node: Any, where: str) -> None:
    """TOML dates and times have no place in a recipe (and no JSON form): one line naming the key."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_toml_values(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_toml_values(v, f"{where}[{i}]")
    elif isinstance(node, datetime.date | datetime.time):
        raise ConfigError(f"'{where}' is a TOML date or time ({node}); recipe values are numbers, strings, lists")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    _check_toml_values(raw, "")
    return raw


def load_config(raw: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> RecipeConfig:
    return config_from_dict(apply_overrides(raw, overrides or {}))
