"""Shared machinery of the scikit-learn estimators: parameter checks, the input funnel, fit under a seeded
generator, float64 inference in chunks. Each model family's estimators subclass :class:`_TorchEstimator`."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, check_scalar

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator: BaseEstimator, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from ..data.batches import Batches
from ..training.callbacks import Callback
from ..training.engine import Engine
from ..training.optim import OPTIMIZERS, build_optimizer

_CHUNK = 4096  # rows per forward pass in transform / predict
_DTYPES = [np.float64, np.float32]  # kept as given; anything else becomes float64


# ----------------------------------------------------------------------------------------------------------------
# parameter checks (run in fit; __init__ only stores)


def _check_choice(value: Any, name: str, options: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")


def _check_int(value: Any, name: str, min_val: int) -> None:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    check_scalar(value, name, numbers.Integral, min_val=min_val)


def _check_real(value: Any, name: str, min_val: float | None = None, max_val: float | None = None, **kw: Any) -> None:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    check_scalar(value, name, numbers.Real, min_val=min_val, max_val=max_val, **kw)


def _check_level(value: Any, name: str) -> None:
    """A noise level: a number in [0, 1]."""
    _check_real(value, name, 0.0, 1.0)


def _check_sizes(value: Any, name: str) -> list[int]:
    """An int or a non-empty sequence of positive ints -> list of int."""
    sizes = [value] if isinstance(value, numbers.Integral) else value
    ok = isinstance(sizes, Sequence | np.ndarray) and len(sizes) > 0
    ok = ok and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in sizes)
    if not ok:
        raise ValueError(f"{name} must be a positive integer or a non-empty sequence of them, got {value!r}")
    return [int(n) for n in sizes]


def _check_unit_interval(X: np.ndarray, why: str) -> None:
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        what = "Negative values in data passed to X" if lo < 0.0 else "X has values above 1"
        raise ValueError(
            f"{what} (min {lo:.4g}, max {hi:.4g}), but {why} needs X in [0, 1]; scale X (e.g. with MinMaxScaler)"
        )


class _PrintEpochs(Callback):
    """``verbose=True``: one line per epoch on stdout."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        shown = " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
        print(f"{self.prefix} {shown}", flush=True)


# ----------------------------------------------------------------------------------------------------------------
# the common machinery


class _TorchEstimator(TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseEstimator):
    """Fit/transform plumbing shared by every estimator here.

    Subclasses define ``_check_params()``, ``_fit_model(x, y, seed)`` (build ``self.model_``, train it, return the
    history), ``_encode(model, x)`` and ``_n_features_out``; they may define ``_check_X(X)`` for extra input checks.
    Inference hooks get the model to use (a float64 copy of ``model_``) as first argument.
    """

    # -- hooks ----------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        raise NotImplementedError

    def _check_X(self, X: np.ndarray) -> None:
        """Extra checks of the training inputs (after scikit-learn's validation)."""
        if self._unit_interval_only():
            _check_unit_interval(X, "loss='bce'")

    def _unit_interval_only(self) -> bool:
        """Whether the current parameters need X in [0, 1] (cross-entropy losses)."""
        return getattr(self, "loss", None) == "bce"

    def _fit_model(self, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model.encode(x)

    # -- shared helpers -------------------------------------------------------------------------------------------
    def _check_common(self) -> None:
        _check_choice(self.optimizer, "optimizer", list(OPTIMIZERS))
        _check_real(self.lr, "lr", 0.0, include_boundaries="neither")
        _check_int(self.batch_size, "batch_size", 1)
        if not isinstance(self.verbose, bool | numbers.Integral):
            raise TypeError(f"verbose must be a bool, got {self.verbose!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {self.device!r}") from e

    def _callbacks(self, prefix: str) -> list[Callback]:
        return [_PrintEpochs(f"[{type(self).__name__}] {prefix}")] if self.verbose else []

    def _train(
        self,
        model: torch.nn.Module,
        tensors: Sequence[torch.Tensor],
        *,
        epochs: int,
        lr: float,
        optimizer: str,
        seed: int,
        prefix: str = "",
    ) -> list[dict[str, Any]]:
        """Train ``model`` on ``tensors`` with the engine (every parameter that requires a gradient)."""
        if epochs == 0:
            return []
        params = [p for p in model.parameters() if p.requires_grad]
        engine = Engine(model, optimizers=build_optimizer(optimizer, params, lr), callbacks=self._callbacks(prefix))
        batches = Batches(*tensors, batch_size=self.batch_size, shuffle=True, seed=seed)
        model.train()
        return engine.fit(batches, epochs=epochs)

    @torch.no_grad()
    def _apply(self, fn: Callable[[Any, torch.Tensor], torch.Tensor], X: np.ndarray) -> np.ndarray:
        """``fn(model, x)`` over the rows of X in chunks with a float64 copy of the model in eval mode; floating
        results come back as numpy arrays of X's dtype."""
        model = copy.deepcopy(self.model_).double().eval()
        device = next(model.parameters()).device
        out = torch.cat(
            [
                fn(model, torch.tensor(X[i : i + _CHUNK], dtype=torch.float64, device=device))
                for i in range(0, len(X), _CHUNK)
            ]
        )
        out = out.cpu().numpy()
        return out.astype(X.dtype, copy=False) if out.dtype.kind == "f" else out

    def _validated(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return _validate_data(self, X, dtype=_DTYPES, reset=False)

    # -- fitting --------------------------------------------------------------------------------------------------
    def _fit(self, X: Any, y: Any = None, *, supervised: bool = False) -> None:
        """Check the parameters and the data, then build and train ``model_`` under a seeded torch generator."""
        self._check_params()
        if supervised:
            X, y = _validate_data(self, X, y, dtype=_DTYPES)
        else:
            X = _validate_data(self, X, dtype=_DTYPES)
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

    # -- transform ------------------------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """The code (top hidden layer) of each row of X, shape (n_samples, n_features_out)."""
        return self._apply(self._encode, self._validated(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.positive_only = self._unit_interval_only()
        return tags


class _SoftmaxOutputs:
    """``predict``, ``predict_proba`` and ``predict_log_proba`` of a classifier estimator whose ``model_`` returns
    class logits (listed before :class:`_TorchEstimator` among the bases)."""

    classes_: np.ndarray

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
