"""Recipes: declarative TOML files, one per experiment, found by name (``deeprecipes list``).

Each file opens with its source and published number, then the data, model, optimizer, schedule and training
settings. ``deeprecipes run NAME --set section.key=value`` and ``deeprecipes.run(NAME, key=value)`` override them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RecipeConfig, bind_arguments, load_config, read_toml
from ..errors import ConfigError
from ..registry import AGENTS, DATASETS, MODELS, RECIPES

__all__ = ["recipe_path", "recipe_text", "load_recipe", "recipe_summary", "check_builders"]


def recipe_path(name: str | Path) -> Path:
    """The TOML file of a shipped recipe, or ``name`` itself when it is a path to a .toml file."""
    p = Path(name)
    if p.suffix == ".toml":
        if not p.is_file():
            raise ConfigError(f"recipe file {p} does not exist")
        return p
    return Path(str(RECIPES.get(str(name))))


def recipe_text(name: str | Path) -> str:
    return recipe_path(name).read_text(encoding="utf-8")


def load_recipe(name: str | Path, overrides: dict[str, Any] | None = None) -> RecipeConfig:
    """Read recipe ``name`` and apply dotted-key ``overrides`` (``{"train.epochs": 5}``); checks every key."""
    path = recipe_path(name)
    raw = read_toml(path)
    raw.setdefault("name", path.stem)
    cfg = load_config(raw, overrides)
    check_builders(cfg)
    return cfg


def check_builders(cfg: RecipeConfig) -> RecipeConfig:
    """Check a config's model, dataset and optimizer arguments against what their builders accept; ``cfg``."""
    # imported here, not above: ``deeprecipes list`` and ``show`` read recipes without loading torch
    from ..training.layerwise import pretrain_plan
    from ..training.optim import check_optimizer_args

    if cfg.model.name:
        bind_arguments(MODELS.get(cfg.model.name), cfg.model.args, f"model '{cfg.model.name}'", MODELS.prefix)
    bind_arguments(DATASETS.get(cfg.data.name), cfg.data.args, f"dataset '{cfg.data.name}'", DATASETS.prefix)
    if cfg.agent.name:
        bind_arguments(AGENTS.get(cfg.agent.name), cfg.agent.args, f"agent '{cfg.agent.name}'", AGENTS.prefix)
    elif cfg.env.id:
        raise ConfigError(f"env.id is '{cfg.env.id}' but agent.name is not set; agents: {', '.join(AGENTS.names())}")
    for name, (opt, _) in cfg.optimizer_plan().items():
        check_optimizer_args(opt.name, opt.args, where=f"optimizers.{name}" if cfg.optimizers else "optimizer")
        bad = {k: v for k, v in opt.lr_scale.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
        if bad:
            raise ConfigError(f"optimizer lr_scale factors must be numbers >= 0, got {bad}")
    if cfg.pretrain.epochs or cfg.pretrain.layers:
        for s in pretrain_plan(cfg.pretrain, len(cfg.pretrain.layers)):
            check_optimizer_args(s.optimizer, s.optimizer_args)
    return cfg


def recipe_summary(name: str) -> dict[str, Any]:
    """Name, description, model, dataset and published target, read from the TOML without building anything."""
    raw = read_toml(recipe_path(name))
    target = raw.get("target", {})
    return {
        "name": name,
        "description": raw.get("description", ""),
        "model": raw.get("model", {}).get("name", ""),
        "data": raw.get("data", {}).get("name", ""),
        "metric": target.get("metric", ""),
        "published": target.get("value"),
        "source": target.get("source", ""),
    }
