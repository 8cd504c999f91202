"""Shared machinery of the scikit-learn estimators: parameters derived from the models' signatures and checked from
their annotations, the input funnel, fit under a seeded generator, training through
:func:`deeprecipes.training.setup.make_engine`, float64 inference in chunks. Each model family's estimators subclass
:class:`TorchEstimator` (or :class:`BaseTorchEstimator`, for a model with no ``transform``, such as a GAN).

An estimator's parameters are written once, in its model's signature. :func:`estimator_init` builds the
estimator's ``__init__`` from the names it takes: each is the model's parameter of that name (its annotation, and its
default unless the estimator gives another) or, when the model has none, one of the training settings of
:func:`settings` (``optimizer``, ``lr``, ``epochs``, ``batch_size``, ``random_state``, ``device``, ``verbose``, ...).
The result has a real signature, which scikit-learn's ``get_params`` and ``clone`` read, and only stores what it is
given (scikit-learn's rule); ``fit`` checks each parameter from its annotation (:func:`check_params`) with
scikit-learn's one-line messages ("lr == 0.0, must be > 0.")::

    class Autoencoder(TorchEstimator):
        __init__ = estimator_init("Autoencoder", ae.Autoencoder, "n_hidden loss lr epochs", lr=0.01)
"""

from __future__ import annotations

import copy
import inspect
import numbers
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Self

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_scalar

from ..data.batches import Batches
from ..params import (
    Interval,
    NonNegative,
    NonNegativeInt,
    OneOf,
    Positive,
    PositiveInt,
    Spec,
    is_int,
    specs,
)
from ..training.callbacks import Callback
from ..training.engine import Engine
from ..training.layerwise import pretrain
from ..training.optim import OPTIMIZERS
from ..training.setup import make_engine

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator: BaseEstimator, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


__all__ = [
    "CHUNK",
    "DTYPES",
    "OptimizerName",
    "Verbose",
    "Device",
    "validate_data",
    "settings",
    "estimator_init",
    "init_with_defaults",
    "estimator_preset",
    "check_params",
    "check_sizes",
    "check_levels",
    "check_unit_interval",
    "PrintEpochs",
    "BaseTorchEstimator",
    "TorchEstimator",
    "SoftmaxOutputs",
    "Decoding",
    "LayerwiseEstimator",
]

CHUNK = 4096  # rows per forward pass in transform / predict
DTYPES = [np.float64, np.float32]  # kept as given; anything else becomes float64

OptimizerName = Annotated[str, OneOf(*OPTIMIZERS)]
Verbose = bool | int
Device = str | torch.device


# ----------------------------------------------------------------------------------------------------------------
# parameters: derived from the models' signatures, stored in __init__, checked in fit from the annotations


def settings(
    optimizer: OptimizerName = "adam",
    lr: Positive = 0.01,
    epochs: PositiveInt = 10,
    batch_size: PositiveInt = 100,
    weight_decay: NonNegative = 0.0,
    hidden_layer_sizes: Any = (256, 256),
    pretrain_epochs: NonNegativeInt = 5,
    pretrain_lr: Positive = 0.01,
    pretrain_optimizer: OptimizerName = "adam",
    finetune_epochs: NonNegativeInt = 20,
    corruption_levels: Any = None,
    max_iter: PositiveInt = 300,
    collapse_steps: NonNegativeInt = 1000,
    random_state: Any = None,
    device: Device = "cpu",
    verbose: Verbose = False,
) -> None:
    """The estimators' own parameters, those no model takes: how they train (``optimizer``, ``lr``, ``epochs``,
    ``batch_size``, ``weight_decay``), the layer-wise ones (``hidden_layer_sizes``, ``pretrain_*``,
    ``finetune_epochs``, ``corruption_levels``), ``max_iter``, a GAN's ``collapse_steps``, and scikit-learn's
    ``random_state``, ``device`` and ``verbose``. :func:`estimator_init` takes the names an estimator lists from
    here, with these defaults unless it gives others."""


def _parameters(source: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The parameters of ``source`` (a class: its ``__init__``) by name, with their annotations resolved."""
    init = source.__init__ if isinstance(source, type) else source
    hints = typing.get_type_hints(init, include_extras=True)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return {
        p.name: inspect.Parameter(p.name, kind, default=p.default, annotation=hints.get(p.name, Any))
        for p in inspect.signature(init).parameters.values()
        if p.name != "self"
    }


def _parameter(entry: str, tables: Sequence[tuple[str, dict[str, inspect.Parameter]]]) -> inspect.Parameter:
    """The estimator parameter ``entry`` (or ``name=model_name``: the model's ``model_name`` under another name) from
    the first of the sources' ``tables`` (source name, its parameters) that has it."""
    name, _, source_name = entry.partition("=")
    source_name = source_name or name
    for _, params in tables:
        if source_name in params:
            return params[source_name].replace(name=name)
    names = " nor ".join(source for source, _ in tables)
    raise TypeError(f"no estimator parameter {name!r}: neither {names} takes {source_name!r}")


def _storing_init(signature: inspect.Signature, qualname: str, module: str) -> Callable[..., None]:
    """An ``__init__`` with ``signature`` that stores each argument as the attribute of its name, as given."""

    def __init__(self: BaseEstimator, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature  # type: ignore[attr-defined]  # what inspect and scikit-learn read
    __init__.__annotations__ = {p.name: p.annotation for p in list(signature.parameters.values())[1:]}
    __init__.__qualname__, __init__.__module__ = qualname, module
    return __init__


def estimator_init(
    name: str,
    model: Callable[..., Any] | Sequence[Callable[..., Any]] | None,
    names: str,
    *,
    annotations: Mapping[str, Any] | None = None,
    **defaults: Any,
) -> Callable[..., None]:
    """The ``__init__`` of estimator ``name``. Its parameters are ``names`` (space-separated, in order), each the
    parameter of that name of ``model`` (of the first of several models that takes it) or else a setting of
    :func:`settings`; ``n_components=n_hidden`` is the model's ``n_hidden`` under another name. ``defaults`` and
    ``annotations`` (bounds) replace the source's for some. It only stores its arguments; ``fit`` checks them from
    the annotations::

        __init__ = estimator_init("RBM", rbm.RBM, "n_components=n_hidden k lr epochs random_state", lr=0.1)
    """
    models = [] if model is None else list(model) if isinstance(model, Sequence) else [model]
    sources = [*models, settings]
    tables = [(getattr(s, "__qualname__", repr(s)), _parameters(s)) for s in sources]
    params = [_parameter(entry, tables) for entry in names.split()]
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    module = sys._getframe(1).f_globals.get("__name__", __name__)  # the caller's, as namedtuple finds it
    init = _storing_init(inspect.Signature([self, *params]), f"{name}.__init__", module)
    return init_with_defaults(init, f"{name}.__init__", annotations, **defaults)


def init_with_defaults(
    init: Callable[..., None], qualname: str, /, annotations: Mapping[str, Any] | None = None, **defaults: Any
) -> Callable[..., None]:
    """``init`` (an :func:`estimator_init` ``__init__``) with other ``defaults`` and, where given, other
    ``annotations`` (bounds) for some of its parameters. List defaults become tuples: scikit-learn wants immutable
    ones."""
    signature = inspect.signature(init)
    annotations = dict(annotations or {})
    unknown = sorted({*defaults, *annotations} - set(signature.parameters))
    if unknown:
        raise TypeError(f"{qualname}: {init.__qualname__} takes no parameter {', '.join(unknown)}")
    params = []
    for p in signature.parameters.values():
        default = defaults.get(p.name, p.default)
        default = tuple(default) if isinstance(default, list) else default
        params.append(p.replace(default=default, annotation=annotations.get(p.name, p.annotation)))
    return _storing_init(signature.replace(parameters=params), qualname, init.__module__)


def estimator_preset(base: type, name: str, doc: str, **defaults: Any) -> type:
    """A subclass ``name`` of ``base`` whose parameters are ``base``'s with other ``defaults``: the model registry's
    ``register_preset``, for estimators::

        SparseAutoencoder = estimator_preset(Autoencoder, "SparseAutoencoder", "...", sparsity_target=0.02)
    """
    init = init_with_defaults(base.__init__, f"{name}.__init__", **defaults)
    return type(name, (base,), {"__init__": init, "__doc__": doc, "__module__": base.__module__, "__qualname__": name})


_KINDS = {bool: "a bool", int: "an integer", float: "a number", str: "a string"}


def _fits(value: Any, tp: type) -> bool:
    if tp is bool:
        return isinstance(value, bool | np.bool_)
    if tp is int:
        return is_int(value)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    return isinstance(value, tp)


def _check_one(name: str, value: Any, spec: Spec) -> None:
    if spec.options is not None:
        if not isinstance(value, str) or value not in spec.options:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, spec.options))}; got {value!r}")
    elif spec.interval is not None:
        if isinstance(value, bool | np.bool_):
            raise TypeError(f"{name} must be {_KINDS[spec.base]}, got {value!r}")
        target = numbers.Integral if spec.base is int else numbers.Real
        low, high, closed = spec.interval.low, spec.interval.high, spec.interval.closed
        check_scalar(value, name, target, min_val=low, max_val=high, include_boundaries=closed)
    else:
        kinds = spec.members or (spec.base,)
        if all(tp in _KINDS for tp in kinds) and not any(_fits(value, tp) for tp in kinds):
            raise TypeError(f"{name} must be {' or '.join(_KINDS[tp] for tp in kinds)}, got {value!r}")


def check_params(estimator: BaseEstimator) -> None:
    """Check every parameter of ``estimator`` against the annotation of its ``__init__``: choices
    (``ValueError: loss must be one of 'mse', 'sse', 'bce'; got 'l1'``), bounds (scikit-learn's ``check_scalar``:
    ``n_hidden == 0, must be >= 1.``) and types (``TypeError``); None passes where the annotation allows it."""
    params = estimator.get_params(deep=False)
    for name, spec in specs(type(estimator).__init__).items():
        if name in params and not (params[name] is None and spec.optional):
            _check_one(name, params[name], spec)


_LEVEL = Spec(float, Interval(0.0, 1.0))


def check_sizes(value: Any, name: str) -> list[int]:
    """An int or a non-empty sequence of positive ints -> list of int."""
    sizes = [value] if isinstance(value, numbers.Integral) else value
    ok = isinstance(sizes, Sequence | np.ndarray) and len(sizes) > 0
    ok = ok and all(is_int(n) and n >= 1 for n in sizes)
    if not ok:
        raise ValueError(f"{name} must be a positive integer or a non-empty sequence of them, got {value!r}")
    return [int(n) for n in sizes]


def check_levels(value: Any, name: str, n: int, default: Callable[[int], float]) -> list[float]:
    """Noise levels in [0, 1], one per layer: None (``default(k)`` for layer k), one number for every layer, or a
    sequence of ``n``."""
    if value is None:
        return [default(k) for k in range(n)]
    if isinstance(value, numbers.Real):
        _check_one(name, value, _LEVEL)
        return [float(value)] * n
    if not isinstance(value, Sequence | np.ndarray) or len(value) != n:
        raise ValueError(f"{name} must be None, a number or one number per hidden layer ({n}), got {value!r}")
    for k, v in enumerate(value):
        _check_one(f"{name}[{k}]", v, _LEVEL)
    return [float(v) for v in value]


def check_unit_interval(X: np.ndarray, why: str) -> None:
    """ValueError naming the range of X when it leaves [0, 1] (``why`` says what needs it)."""
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        what = "Negative values in data passed to X" if lo < 0.0 else "X has values above 1"
        raise ValueError(
            f"{what} (min {lo:.4g}, max {hi:.4g}), but {why} needs X in [0, 1]; scale X (e.g. with MinMaxScaler)"
        )


def _check_device(device: Any) -> None:
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from e


class PrintEpochs(Callback):
    """``verbose=True``: one line per epoch on stdout."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        shown = " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
        print(f"{self.prefix} {shown}", flush=True)


# ----------------------------------------------------------------------------------------------------------------
# the common machinery


class BaseTorchEstimator(BaseEstimator):
    """Fit plumbing shared by every estimator here: ``fit(X)`` (unsupervised; classifiers take
    :class:`SoftmaxOutputs`' ``fit(X, y)``) under a seeded generator, training on the engine, float64 inference.
    :class:`TorchEstimator` adds ``transform``; a model with no code to give (a GAN) stops here.

    Subclasses define ``_fit_model(x, y, seed)`` (build ``self.model_``, train it, return the history); they may
    extend ``_check_params()`` (the annotations' checks run first) and define ``_check_X(X)`` for extra input checks.
    Inference hooks get the model to use (a float64 copy of ``model_``) as first argument.
    """

    # -- hooks ----------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Every parameter against its annotation, and ``device``."""
        check_params(self)
        _check_device(self.device)

    def _check_X(self, X: np.ndarray) -> None:
        """Extra checks of the training inputs (after scikit-learn's validation)."""
        if self._unit_interval_only():
            check_unit_interval(X, "loss='bce'")

    def _unit_interval_only(self) -> bool:
        """Whether the current parameters need X in [0, 1] (cross-entropy losses)."""
        return getattr(self, "loss", None) == "bce"

    def _fit_model(self, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- shared helpers -------------------------------------------------------------------------------------------
    def shared_args(self, model: Callable[..., Any]) -> dict[str, Any]:
        """This estimator's parameters that ``model`` (a class or function) takes by the same name, as plain Python
        numbers (int, float, bool, by the estimator's annotations)."""
        takes = inspect.signature(model).parameters
        casts = {int: int, float: float, bool: bool}
        out = {}
        for name, spec in specs(type(self).__init__).items():
            if name in takes:
                value = getattr(self, name)
                cast = casts.get(spec.base)
                out[name] = cast(value) if cast is not None and value is not None else value
        return out

    def _callbacks(self, prefix: str) -> list[Callback]:
        return [PrintEpochs(f"[{type(self).__name__}] {prefix}")] if self.verbose else []

    def _train(
        self,
        model: torch.nn.Module,
        tensors: Sequence[torch.Tensor],
        *,
        epochs: int,
        seed: int,
        prefix: str = "",
        batch_size: int | None = None,
        shuffle: bool = True,
        **engine_args: Any,
    ) -> list[dict[str, Any]]:
        """Train ``model`` on ``tensors`` for ``epochs`` with the engine :func:`make_engine` sets up from the
        optimizers the model declares (``optimizer``, ``lr`` and settings such as ``l2`` in ``engine_args``)."""
        if epochs == 0:
            return []
        batches = Batches(*tensors, batch_size=batch_size or self.batch_size, shuffle=shuffle, seed=seed)
        engine = make_engine(
            model, steps_per_epoch=len(batches), epochs=epochs, callbacks=self._callbacks(prefix), **engine_args
        )
        model.train()
        return engine.fit(batches, epochs=epochs)

    def _train_model(self, model: Any, x: torch.Tensor, seed: int, **engine_args: Any) -> list[dict[str, Any]]:
        """``model_`` = ``model`` on x's device, checked against x, then trained on x for ``epochs`` with
        ``optimizer`` and ``lr`` (and settings such as ``l2`` in ``engine_args``): a one-phase unsupervised fit."""
        self.model_ = model.to(x.device)
        self.model_.check_data(x)
        return self._train(
            self.model_, (x,), epochs=self.epochs, seed=seed, optimizer=self.optimizer, lr=self.lr, **engine_args
        )

    @torch.no_grad()
    def _apply(self, fn: Callable[[Any, torch.Tensor], torch.Tensor], X: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """``fn(model, x)`` over the rows of X in chunks of ``chunk`` with a float64 copy of the model in eval mode;
        floating results come back as numpy arrays of X's dtype."""
        model = copy.deepcopy(self.model_).double().eval()
        device = next(model.parameters()).device
        out = torch.cat(
            [
                fn(model, torch.tensor(X[i : i + chunk], dtype=torch.float64, device=device))
                for i in range(0, len(X), chunk)
            ]
        )
        out = out.cpu().numpy()
        return out.astype(X.dtype, copy=False) if out.dtype.kind == "f" else out

    def _validated(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return validate_data(self, X, dtype=DTYPES, reset=False)

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> Self:
        """Train on X (n_samples, n_features); y is ignored."""
        self._fit(X)
        return self

    def _fit(self, X: Any, y: Any = None, *, supervised: bool = False) -> None:
        """Check the parameters and the data, then build and train ``model_`` under a seeded torch generator."""
        self._check_params()
        if supervised:
            X, y = validate_data(self, X, y, dtype=DTYPES)
        else:
            X = validate_data(self, X, dtype=DTYPES)
        self._check_X(X)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = torch.device(self.device)
        rng_devices = []
        if device.type == "cuda":
            rng_devices = [device.index if device.index is not None else torch.cuda.current_device()]
        # the global torch generator drives weight init and noise: seed it for this fit only
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            x = torch.tensor(X, dtype=torch.float32, device=device)
            self.history_ = self._fit_model(x, y, seed)
        self.model_.eval()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.positive_only = self._unit_interval_only()
        return tags


class TorchEstimator(TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseTorchEstimator):
    """:class:`BaseTorchEstimator` with ``transform`` (``_encode(model, x)``, ``model.encode`` by default),
    ``fit_transform`` and ``score`` (the mean of a subclass's ``score_samples``); ``_n_features_out`` names the
    code's width."""

    def transform(self, X: Any) -> np.ndarray:
        """The code (top hidden layer) of each row of X, shape (n_samples, n_features_out)."""
        return self._apply(self._encode, self._validated(X))

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model.encode(x)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of ``score_samples``; y is ignored."""
        return float(np.mean(self.score_samples(X)))


class Decoding:
    """``inverse_transform`` of an estimator whose codes decode back to the input space through ``_decode(model,
    z)`` (listed before :class:`TorchEstimator` among the bases)."""

    #: what the code's width is called in the message for codes of the wrong width
    code_name = "the code size"

    def _decode(self, model: Any, z: torch.Tensor) -> torch.Tensor:
        return model.decode(z)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codes (n_samples, n_features_out) back to the input space (n_samples, n_features_in_)."""
        check_is_fitted(self, "model_")
        Z = check_array(X, dtype=DTYPES, input_name="X")
        if Z.shape[1] != self._n_features_out:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform is expecting "
                f"{self._n_features_out} features ({self.code_name}) as input."
            )
        return self._apply(self._decode, Z)


class SoftmaxOutputs:
    """``predict``, ``predict_proba`` and ``predict_log_proba`` of a classifier estimator whose ``model_`` returns
    class logits (listed before :class:`TorchEstimator` among the bases), and the labels they are taken from."""

    classes_: np.ndarray

    def fit(self, X: Any, y: Any) -> Self:
        """Train on X (n_samples, n_features) and its class labels y."""
        self._fit(X, y, supervised=True)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return self._apply(lambda model, x: torch.softmax(model(x), dim=1), self._validated(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba` (computed as a log-softmax)."""
        return self._apply(lambda model, x: torch.log_softmax(model(x), dim=1), self._validated(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each row."""
        best = self._apply(lambda model, x: model(x).argmax(1), self._validated(X))
        return self.classes_[best.astype(np.intp)]

    def _label_codes(self, y: Any, device: torch.device) -> torch.Tensor:
        """Set ``classes_`` from the targets y (at least two classes) and return y as class indices."""
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in y to train, got 1 class: {self.classes_[0]!r}"
            )
        return torch.as_tensor(codes.reshape(-1), dtype=torch.long, device=device)


class LayerwiseEstimator(TorchEstimator):
    """Greedy layer-wise pretraining of ``model_``'s stack (``pretrain_epochs``, ``pretrain_lr``,
    ``pretrain_optimizer``), then fine-tuning of the whole model (``finetune_epochs``, ``lr``, ``optimizer``):
    what the stacked autoencoders and the deep belief network share."""

    def _pretrain(self, model: Any, x: torch.Tensor, seed: int) -> list[dict[str, Any]]:
        """Greedy layer-wise pretraining; returns the epoch logs tagged with phase and layer."""
        histories = pretrain(
            model,
            x,
            epochs=int(self.pretrain_epochs),
            lr=float(self.pretrain_lr),
            optimizer=self.pretrain_optimizer,
            batch_size=int(self.batch_size),
            seed=seed,
            callbacks=lambda k, block: self._callbacks(f"pretrain layer {k + 1}"),
        )
        return [{"phase": "pretrain", "layer": k + 1, **log} for k, h in enumerate(histories) for log in h]

    def _finetune(self, model: Any, tensors: Sequence[torch.Tensor], seed: int) -> list[dict[str, Any]]:
        epochs, lr = int(self.finetune_epochs), float(self.lr)
        history = self._train(
            model, tensors, epochs=epochs, seed=seed + 1, prefix="finetune", optimizer=self.optimizer, lr=lr
        )
        return [{"phase": "finetune", **log} for log in history]

    def _pretrain_and_finetune(self, model: Any, x: torch.Tensor, tensors: Sequence[torch.Tensor], seed: int) -> Any:
        self.model_ = model.to(x.device)
        self.model_.check_data(x)
        return self._pretrain(self.model_, x, seed) + self._finetune(self.model_, tensors, seed)

    @property
    def _n_features_out(self) -> int:
        return self.model_.stack.sizes[-1]
