"""One registry type for models, datasets and recipes (the timm pattern).

Builders register under a name with a decorator; ``create_model("name", **overrides)`` is the one way in::

    @register_model("tied-denoising-autoencoder")
    def tied_dae(n_visible: int = 784, n_hidden: int = 500, ...) -> nn.Module: ...

Model and dataset modules are imported lazily, on the first lookup, so ``import deeprecipes`` stays fast.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

__all__ = [
    "Registry",
    "MODELS",
    "DATASETS",
    "RECIPES",
    "register_model",
    "register_dataset",
    "create_model",
    "create_dataset",
    "list_models",
    "list_datasets",
    "list_recipes",
]


class Registry:
    """Name -> builder mapping with helpful errors.

    Parameters
    ----------
    kind : str
        What is registered ("model", "dataset"), used in messages.
    modules : tuple of str
        Modules imported on first lookup; importing them runs their ``@register`` decorators.
    """

    def __init__(
        self, kind: str, modules: tuple[str, ...] = (), loader: Callable[[Registry], None] | None = None
    ) -> None:
        self.kind = kind
        self._modules = modules
        self._loader = loader
        self._loaded = not (modules or loader)
        self._items: dict[str, Any] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__.replace("_", "-")
            if key in self._items and self._items[key] is not fn:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = fn
            return fn

        return decorator

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)
            if self._loader is not None:
                self._loader(self)

    def add(self, name: str, item: Any) -> None:
        """Register a non-callable item (a recipe file) under ``name``."""
        if name in self._items and self._items[name] != item:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def get(self, name: str) -> Any:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}") from None

    def signature(self, name: str) -> inspect.Signature:
        return inspect.signature(self.get(name))

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build ``name`` with ``kwargs``; ``None`` values are dropped so builder defaults apply."""
        from .config import bind_arguments

        fn = self.get(name)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return fn(**bind_arguments(fn, kwargs, where=f"{self.kind} '{name}'"))


def _find_recipes(registry: Registry) -> None:
    from importlib.resources import files

    for entry in sorted(files("deeprecipes.recipes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            registry.add(entry.name[: -len(".toml")], entry)


MODELS = Registry("model", ("deeprecipes.models",))
DATASETS = Registry("dataset", ("deeprecipes.data",))
RECIPES = Registry("recipe", loader=_find_recipes)

register_model = MODELS.register
register_dataset = DATASETS.register


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model, e.g. ``create_model("lstm-classifier", hidden_size=64)``."""
    return MODELS.create(name, **kwargs)


def create_dataset(name: str, **kwargs: Any) -> Any:
    """Load a registered dataset, e.g. ``create_dataset("mnist", split="tf")``."""
    return DATASETS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def list_recipes(pattern: str = "*") -> list[str]:
    return RECIPES.names(pattern)
