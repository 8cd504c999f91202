"""Typed parameters: a parameter's bounds or choices written once, in its annotation, and checked from there.

A model annotates its ``__init__`` with :class:`Interval` and :class:`OneOf` inside ``typing.Annotated``; the
scikit-learn estimators (:mod:`deeprecipes.estimators.base`) annotate theirs with the same aliases, so a choice such
as the autoencoder's losses is spelled in one place::

    Loss = Annotated[str, OneOf("mse", "sse", "bce")]
    Level = Annotated[float, Interval(0.0, 1.0)]

    class Autoencoder(Model):
        def __init__(self, n_hidden: PositiveInt = 256, loss: Loss = "mse", corruption_level: Level = 0.0) -> None:
            check_arguments(Autoencoder.__init__, locals())    # ConfigError "model.loss must be one of ..."

Every registered builder is checked against these annotations before it is called:
:func:`deeprecipes.config.check_value` reads ``Annotated`` (lists of bounded items too, ``list[PositiveInt]``), so
``create_model("mlp", hidden_sizes=[0])`` and ``--set model.n_inputs=-784`` are one ConfigError line naming the
argument and its bound. A model's own ``check_arguments`` call covers direct construction (``MLP(...)``).
"""

from __future__ import annotations

import functools
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from .errors import ConfigError

__all__ = [
    "Interval",
    "OneOf",
    "Spec",
    "specs",
    "choices",
    "check_arguments",
    "with_defaults",
    "bound_problem",
    "is_int",
    "PositiveInt",
    "NonNegativeInt",
    "Positive",
    "NonNegative",
    "Probability",
    "Rate",
    "Seed",
]

_BRACKETS = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}


@dataclass(frozen=True)
class Interval:
    """Bounds of a number: ``low`` and ``high`` (None = unbounded), ``closed`` naming the ends that are allowed
    ("both", "left", "right" or "neither", as scikit-learn's ``include_boundaries``)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def __contains__(self, value: Any) -> bool:
        if value != value:  # NaN is in no interval
            return False
        left, right = _BRACKETS[self.closed]
        if self.low is not None and (value < self.low or (left == "(" and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (right == ")" and value == self.high)))

    def describe(self) -> str:
        """``">= 1"``, ``"> 0"``, ``"in [0, 1)"``."""
        left, right = _BRACKETS[self.closed]
        if self.low is not None and self.high is not None:
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>=' if left == '[' else '>'} {self.low:g}"
        if self.high is not None:
            return f"{'<=' if right == ']' else '<'} {self.high:g}"
        return "a number"


class OneOf:
    """The strings a parameter may take."""

    def __init__(self, *options: str) -> None:
        self.options = tuple(options)

    def __repr__(self) -> str:
        return f"OneOf{self.options!r}"


PositiveInt = Annotated[int, Interval(1)]
NonNegativeInt = Annotated[int, Interval(0)]
Positive = Annotated[float, Interval(0.0, None, "neither")]
NonNegative = Annotated[float, Interval(0.0)]
Probability = Annotated[float, Interval(0.0, 1.0)]
Rate = Annotated[float, Interval(0.0, 1.0, "left")]  # a dropout rate: 1 would drop everything
Seed = Annotated[int, Interval(0, 2**32 - 1)]  # what numpy's and torch's generators take


@dataclass(frozen=True)
class Spec:
    """What an annotation says about one parameter: its base type, bound, choices, and whether None is allowed."""

    base: Any
    interval: Interval | None = None
    options: tuple[str, ...] | None = None
    optional: bool = False
    members: tuple[Any, ...] = ()  # the types of a union without bound or choices (``bool | int``)


def _spec(tp: Any) -> Spec:
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) > 1:
            return Spec(Any, optional=optional, members=tuple(args))
        tp = args[0]
    base, interval, options = tp, None, None
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        for m in meta:
            if isinstance(m, Interval):
                interval = m
            elif isinstance(m, OneOf):
                options = m.options
    return Spec(base, interval, options, optional)


@functools.cache
def specs(fn: Callable[..., Any]) -> dict[str, Spec]:
    """Parameter name -> :class:`Spec`, from the annotations of ``fn`` (a function, or a class's ``__init__``)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    hints.pop("return", None)
    return {name: _spec(tp) for name, tp in hints.items()}


def choices(alias: Any) -> tuple[str, ...]:
    """The options of an ``Annotated[str, OneOf(...)]`` alias, e.g. ``NOISES = choices(Noise)``."""
    options = _spec(alias).options
    if options is None:
        raise TypeError(f"{alias!r} names no choices")
    return options


def is_int(value: Any) -> bool:
    """An integer that is not a bool (numpy integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def bound_problem(value: Any, metadata: tuple[Any, ...], base: Any) -> str | None:
    """Why ``value`` breaks the Interval/OneOf in ``metadata`` (an ``Annotated``'s extras over ``base``), as the
    end of a "... must be ..." line; None when it fits or nothing bounds it."""
    interval = next((m for m in metadata if isinstance(m, Interval)), None)
    options = next((m.options for m in metadata if isinstance(m, OneOf)), None)
    return _problem("", value, Spec(base, interval, options))


def _problem(name: str, value: Any, spec: Spec) -> str | None:
    """Why ``value`` does not fit ``spec``, as the end of a "model.NAME must be ..." line; None when it fits."""
    if spec.options is not None and value not in spec.options:
        return f"must be one of {', '.join(spec.options)}; got {value!r}"
    if spec.interval is None:
        return None
    if spec.base is int:
        if not is_int(value) or value not in spec.interval:
            return f"must be an integer {spec.interval.describe()}, got {value!r}"
    elif isinstance(value, bool) or not isinstance(value, numbers.Real) or value not in spec.interval:
        return f"must be {spec.interval.describe()}, got {value}"
    return None


def with_defaults(
    fn: types.FunctionType, qualname: str, /, annotations: Mapping[str, Any] | None = None, **defaults: Any
) -> types.FunctionType:
    """``fn`` (a class's ``__init__``) with other ``defaults`` and, where given, other ``annotations`` (bounds) for
    some of its parameters: the same code, so the same body, under a real signature that ``inspect``, the registry
    and scikit-learn's ``get_params`` read. For a sibling class whose parameters are another's, defaults aside::

        class SequenceTagger(TokenRNN):
            __init__ = with_defaults(TokenRNN.__init__, "SequenceTagger.__init__", cell="gru", num_layers=2)

    A zero-argument ``super()`` in ``fn`` still means the class that defined it, so share ``fn`` with that class's
    subclasses only."""
    code = fn.__code__
    old = fn.__defaults__ or ()
    positional = code.co_varnames[code.co_argcount - len(old) : code.co_argcount]
    keyword = dict(fn.__kwdefaults__ or {})
    unknown = [k for k in [*defaults, *(annotations or {})] if k not in positional and k not in keyword]
    if unknown:
        raise TypeError(f"{qualname}: {fn.__qualname__} takes no default for {', '.join(unknown)}")
    values = tuple(defaults.get(n, d) for n, d in zip(positional, old, strict=True))
    new = types.FunctionType(code, fn.__globals__, fn.__name__, values, fn.__closure__)
    new.__kwdefaults__ = {n: defaults.get(n, d) for n, d in keyword.items()} or None
    new.__annotations__ = {**fn.__annotations__, **(annotations or {})}
    new.__qualname__, new.__module__, new.__doc__ = qualname, fn.__module__, fn.__doc__
    return new


def check_arguments(fn: Callable[..., Any], values: Mapping[str, Any], prefix: str = "model.") -> None:
    """Raise ConfigError naming the first of ``values`` outside its annotated bound or choices in ``fn``
    ("model.k must be an integer >= 1, got 0"); values without one, and None where allowed, pass."""
    for name, spec in specs(fn).items():
        if name not in values or (values[name] is None and spec.optional):
            continue
        problem = _problem(name, values[name], spec)
        if problem is not None:
            raise ConfigError(f"{prefix}{name} {problem}")
