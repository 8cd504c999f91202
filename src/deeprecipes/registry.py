"""One registry type for models, datasets and recipes (the timm pattern).

A model registers its class, whose ``__init__`` is the signature a recipe's ``[model]`` section is checked against;
a preset registers the same class (or another registered entry) with other defaults, and may fix arguments so that
they are no longer settable. ``create_model("name", **overrides)`` is the one way in::

    @register_model("rbm")
    class RBM(Model):
        def __init__(self, n_visible: int = 784, n_hidden: int = 500, visible: str = "bernoulli", ...) -> None: ...

    register_preset("gaussian-rbm", RBM, fixed={"visible": "gaussian"}, doc="Gaussian-Bernoulli RBM ...")

Datasets register builder functions the same way (``@register_dataset("mnist")``). Model and dataset modules are
imported lazily, on the first lookup, so ``import deeprecipes`` stays fast.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import types
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any

from .config import bind_arguments
from .errors import ConfigError

__all__ = [
    "Registry",
    "MODELS",
    "DATASETS",
    "RECIPES",
    "AGENTS",
    "register_model",
    "register_dataset",
    "register_preset",
    "Builder",
    "create_model",
    "create_dataset",
    "list_models",
    "list_datasets",
    "list_recipes",
]


class Builder:
    """A registered class (or function) and the defaults a preset gives it: callable with keyword arguments, with
    the signature a recipe may set (``inspect.signature`` and ``typing.get_type_hints`` read it).

    Parameters
    ----------
    target : class or callable
        What is built; a class's signature is its ``__init__``'s without ``self``.
    name : str
        The registered name.
    defaults : mapping, optional
        New defaults of some of the target's parameters (shown in the signature).
    fixed : mapping, optional
        Arguments always passed and left out of the signature (a preset's choices a recipe may not change).
    doc : str, optional
        What the entry is; default: the target's docstring.
    """

    def __init__(
        self,
        target: Callable[..., Any],
        name: str,
        defaults: Mapping[str, Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
        doc: str | None = None,
    ) -> None:
        if isinstance(target, Builder):  # a preset of a preset: its defaults and fixed arguments underneath
            defaults, fixed = {**target.defaults, **(defaults or {})}, {**target.fixed, **(fixed or {})}
            doc, target = doc or target.__doc__, target.target
        self.target, self.defaults, self.fixed = target, dict(defaults or {}), dict(fixed or {})
        fn = target.__init__ if isinstance(target, type) else target
        params = list(inspect.signature(fn).parameters.values())[1 if isinstance(target, type) else 0 :]
        unknown = [k for k in (*self.defaults, *self.fixed) if k not in {p.name for p in params}]
        if unknown:
            raise TypeError(f"{name}: {getattr(target, '__name__', target)} takes no argument {', '.join(unknown)}")
        kept = [p.replace(default=self.defaults.get(p.name, p.default)) for p in params if p.name not in self.fixed]
        self.__signature__ = inspect.Signature(kept)
        source = inspect.unwrap(getattr(fn, "__func__", fn))
        annotations = getattr(source, "__annotations__", {})
        self.__annotations__ = {p.name: annotations[p.name] for p in kept if p.name in annotations}
        self.__wrapped__ = source  # where typing.get_type_hints resolves the annotations
        self.__name__ = self.__qualname__ = name.replace("-", "_")
        self.__module__ = target.__module__
        self.__doc__ = doc or target.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = self.__signature__.bind(*args, **kwargs)
        arguments = dict(self.defaults)
        for key, value in bound.arguments.items():
            if self.__signature__.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[key] = value
        return self.target(**arguments, **self.fixed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Builder):
            return NotImplemented
        return (self.target, self.defaults, self.fixed) == (other.target, other.defaults, other.fixed)

    def __hash__(self) -> int:
        return hash((self.target, tuple(self.defaults), tuple(self.fixed)))

    def __repr__(self) -> str:
        what = f"{self.target.__module__}.{getattr(self.target, '__qualname__', self.target)}"
        extra = "".join(f", {k}={v!r}" for k, v in {**self.defaults, **self.fixed}.items())
        return f"Builder({what}{extra})"


class Registry:
    """Name -> builder mapping with helpful errors.

    Parameters
    ----------
    kind : str
        What is registered ("model", "dataset"), used in messages.
    modules : tuple of str
        Modules imported on first lookup; importing them runs their ``@register`` decorators.
    loader : callable, optional
        Called once on first lookup to add entries (the recipe files).
    prefix : str
        How a bad argument is named in errors: ``prefix + key`` (``model.hidden_size``, as a recipe spells it).
    """

    def __init__(
        self,
        kind: str,
        modules: tuple[str, ...] = (),
        loader: Callable[[Registry], None] | None = None,
        prefix: str = "",
    ) -> None:
        self.kind = kind
        self.prefix = prefix  # the recipe section an argument's errors name it by ("model." + key)
        self._modules = modules
        self._loader = loader
        self._loaded = not (modules or loader)
        self._items: dict[str, Any] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register a builder function, or a class or other callable (kept in a :class:`Builder`),
        under ``name`` (default: the function's name with dashes); returns it unchanged."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__.replace("_", "-")
            self.add(key, fn if isinstance(fn, types.FunctionType) else Builder(fn, key))
            return fn

        return decorator

    def register_preset(
        self,
        name: str,
        base: Callable[..., Any] | str,
        /,
        *,
        doc: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        **defaults: Any,
    ) -> Builder:
        """Register ``base`` (a class, a callable such as a class's alternative constructor, or the name of an entry
        registered before) under ``name`` with other ``defaults``; ``fixed`` arguments are always passed and leave
        the signature. Returns the entry."""
        target = self._items[base] if isinstance(base, str) else base
        entry = Builder(target, name, defaults, fixed, doc)
        self.add(name, entry)
        return entry

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)
            if self._loader is not None:
                self._loader(self)

    def add(self, name: str, item: Any) -> None:
        """Register ``item`` (a builder, a recipe file) under ``name``; a second, different one is an error."""
        if name in self._items and self._items[name] is not item and self._items[name] != item:
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

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Build ``name`` with ``kwargs``; ``None`` values are dropped so builder defaults apply."""
        fn = self.get(name)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return fn(**bind_arguments(fn, kwargs, where=f"{self.kind} '{name}'", prefix=self.prefix))


def _find_recipes(registry: Registry) -> None:
    for entry in sorted(files("deeprecipes.recipes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            registry.add(entry.name[: -len(".toml")], entry)


MODELS = Registry("model", ("deeprecipes.models",), prefix="model.")
DATASETS = Registry("dataset", ("deeprecipes.data",), prefix="data.")
RECIPES = Registry("recipe", loader=_find_recipes)
AGENTS = Registry("agent", ("deeprecipes.rl",), prefix="agent.")  # reinforcement-learning algorithms

register_model = MODELS.register
register_preset = MODELS.register_preset
register_dataset = DATASETS.register


def create_model(name: str, /, **kwargs: Any) -> Any:
    """Build a registered model, e.g. ``create_model("lstm-classifier", hidden_size=64)``."""
    return MODELS.create(name, **kwargs)


def create_dataset(name: str, /, **kwargs: Any) -> Any:
    """Load a registered dataset, e.g. ``create_dataset("mnist", split="tf")``."""
    return DATASETS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def list_recipes(pattern: str = "*") -> list[str]:
    return RECIPES.names(pattern)
