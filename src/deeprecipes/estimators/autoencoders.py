"""scikit-learn estimators for the package's autoencoders: fit, transform, pipelines and grid search.

Every estimator trains its deeprecipes model on the one training engine (stacked ones through greedy layer-wise
:func:`deeprecipes.training.layerwise.pretrain` first), so a pipeline step learns exactly what a recipe would::

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from deeprecipes.estimators import StackedDenoisingAutoencoder

    pipe = make_pipeline(StackedDenoisingAutoencoder(hidden_layer_sizes=(64, 32)), LogisticRegression())
    pipe.fit(X_train, y_train).score(X_test, y_test)

Unsupervised estimators (:class:`Autoencoder` and its sparse, denoising and contractive presets,
:class:`StackedDenoisingAutoencoder`, :class:`ConvDenoisingAutoencoder`) offer ``transform`` (the code),
``inverse_transform`` (decode a code), ``score_samples`` (minus the per-sample reconstruction MSE of the clean input:
higher = more normal, for anomaly detection) and ``score`` (its mean). :class:`StackedDenoisingClassifier` pretrains
the same stack, puts a softmax layer on top and fine-tunes everything on the labels.

Training runs in float32. ``transform``, ``predict`` and the scores run a float64 copy of the model, so that a
row's result does not depend on which other rows share its batch (float32 matrix kernels round differently by row
position); their outputs have X's dtype (float32 or float64; anything else becomes float64). ``random_state`` seeds
the weights, the noise and the batch order (the global torch generator is saved and restored around ``fit``), so
the same ``random_state`` gives the same model. The number of torch threads is left as it is.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator: BaseEstimator, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from ..models import autoencoder as _ae
from ..models import conv_autoencoder as _conv
from ..models.stacked import DeepAutoencoder, LayerStack, StackedClassifier
from ..training.layerwise import pretrain
from ..training.optim import OPTIMIZERS
from ._base import (
    _DTYPES,
    _check_choice,
    _check_int,
    _check_level,
    _check_real,
    _check_sizes,
    _check_unit_interval,
    _SoftmaxOutputs,
    _TorchEstimator,
)

__all__ = [
    "Autoencoder",
    "SparseAutoencoder",
    "DenoisingAutoencoder",
    "ContractiveAutoencoder",
    "StackedDenoisingAutoencoder",
    "StackedDenoisingClassifier",
    "ConvDenoisingAutoencoder",
]


class _BaseAutoencoder(_TorchEstimator):
    """Unsupervised autoencoders: fit(X), transform, inverse_transform, score_samples, score.

    Subclasses may redefine ``_decode(model, z)`` and ``_reconstruct(model, x)``.
    """

    def _decode(self, model: Any, z: torch.Tensor) -> torch.Tensor:
        return model.decode(z)

    def _reconstruct(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def fit(self, X: Any, y: Any = None) -> _BaseAutoencoder:
        """Train the autoencoder on X (n_samples, n_features); y is ignored."""
        self._fit(X)
        return self

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codes (n_samples, n_features_out) back to the input space (n_samples, n_features_in_)."""
        check_is_fitted(self, "model_")
        Z = check_array(X, dtype=_DTYPES, input_name="X")
        if Z.shape[1] != self._n_features_out:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform is expecting "
                f"{self._n_features_out} features (the code size) as input."
            )
        return self._apply(self._decode, Z)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the mean squared reconstruction error of each row (clean input, no noise): higher = more normal."""
        X = self._validated(X)
        return self._apply(lambda model, x: -(self._reconstruct(model, x).reshape(x.shape) - x).pow(2).mean(1), X)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples` (minus the mean reconstruction MSE); y is ignored."""
        return float(np.mean(self.score_samples(X)))


# ----------------------------------------------------------------------------------------------------------------
# one hidden layer


class Autoencoder(_BaseAutoencoder):
    """One-hidden-layer autoencoder ``h = sigmoid(x~ W + b)``, ``r = sigmoid(h W_d + c)`` (deeprecipes'
    :class:`deeprecipes.models.autoencoder.Autoencoder`); vanilla, sparse, denoising and contractive are settings.

    Parameters
    ----------
    n_hidden : int
        Code size.
    tied : bool
        Decoder weights are the encoder's transposed.
    loss : {"mse", "sse", "bce"}
        Mean or summed squared error over features, or summed cross-entropy (needs X in [0, 1]).
    corruption : {"none", "masking", "gaussian", "salt-and-pepper"}
    corruption_level : float in [0, 1]
        Masking probability, noise standard deviation or salt-and-pepper fraction, drawn afresh for every batch.
    sparsity_target, sparsity_weight : float
        KL sparsity penalty towards mean activation ``sparsity_target`` (weight 0 = off).
    contractive_weight : float
        Contractive penalty ``||dh/dx||_F^2`` (0 = off).
    init : {"xavier", "glorot-sigmoid", "normal"}
    optimizer : str
        Name from :data:`deeprecipes.training.optim.OPTIMIZERS` ("adam", "sgd", "momentum", "rmsprop", ...).
    lr : float
    epochs : int
    batch_size : int
    random_state : int, RandomState or None
    device : str
        torch device, e.g. "cpu" or "cuda".
    verbose : bool
        Print one line per epoch.

    Attributes
    ----------
    model_ : deeprecipes.models.autoencoder.Autoencoder
    n_features_in_ : int
    feature_names_in_ : ndarray of str (only when X had string column names)
    history_ : list of dict
        The engine's epoch logs (``train_loss``, ...).
    """

    def __init__(
        self,
        n_hidden: int = 256,
        tied: bool = False,
        loss: str = "mse",
        corruption: str = "none",
        corruption_level: float = 0.0,
        sparsity_target: float = 0.05,
        sparsity_weight: float = 0.0,
        contractive_weight: float = 0.0,
        init: str = "xavier",
        optimizer: str = "adam",
        lr: float = 0.01,
        epochs: int = 10,
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.n_hidden = n_hidden
        self.tied = tied
        self.loss = loss
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.sparsity_target = sparsity_target
        self.sparsity_weight = sparsity_weight
        self.contractive_weight = contractive_weight
        self.init = init
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        self._check_common()
        _check_int(self.n_hidden, "n_hidden", 1)
        _check_choice(self.loss, "loss", _ae.LOSSES)
        _check_choice(self.corruption, "corruption", _ae.NOISES)
        _check_level(self.corruption_level, "corruption_level")
        _check_real(self.sparsity_target, "sparsity_target", 0.0, 1.0, include_boundaries="neither")
        _check_real(self.sparsity_weight, "sparsity_weight", 0.0)
        _check_real(self.contractive_weight, "contractive_weight", 0.0)
        _check_choice(self.init, "init", _ae.INITS)
        _check_int(self.epochs, "epochs", 1)

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        self.model_ = _ae.Autoencoder(
            x.shape[1],
            self.n_hidden,
            tied=bool(self.tied),
            loss=self.loss,
            init=self.init,
            corruption=self.corruption,
            corruption_level=float(self.corruption_level),
            sparsity_target=float(self.sparsity_target),
            sparsity_weight=float(self.sparsity_weight),
            contractive_weight=float(self.contractive_weight),
            image_shape=None,
        ).to(x.device)
        self.model_.check_data(x)
        return self._train(self.model_, (x,), epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, seed=seed)

    @property
    def _n_features_out(self) -> int:
        return self.model_.n_hidden


class SparseAutoencoder(Autoencoder):
    """:class:`Autoencoder` with the cookbook's (8.2) KL sparsity penalty: target 0.02, weight 7.5e-5."""

    def __init__(
        self,
        n_hidden: int = 256,
        tied: bool = False,
        loss: str = "mse",
        corruption: str = "none",
        corruption_level: float = 0.0,
        sparsity_target: float = 0.02,
        sparsity_weight: float = 7.5e-5,
        contractive_weight: float = 0.0,
        init: str = "xavier",
        optimizer: str = "adam",
        lr: float = 0.01,
        epochs: int = 10,
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__(
            n_hidden=n_hidden,
            tied=tied,
            loss=loss,
            corruption=corruption,
            corruption_level=corruption_level,
            sparsity_target=sparsity_target,
            sparsity_weight=sparsity_weight,
            contractive_weight=contractive_weight,
            init=init,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )


class DenoisingAutoencoder(Autoencoder):
    """:class:`Autoencoder` trained to reconstruct clean rows from masked ones (30% of the values zeroed, drawn
    afresh for every batch), as deeplearning.net's dA."""

    def __init__(
        self,
        n_hidden: int = 256,
        tied: bool = False,
        loss: str = "mse",
        corruption: str = "masking",
        corruption_level: float = 0.3,
        sparsity_target: float = 0.05,
        sparsity_weight: float = 0.0,
        contractive_weight: float = 0.0,
        init: str = "xavier",
        optimizer: str = "adam",
        lr: float = 0.01,
        epochs: int = 10,
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__(
            n_hidden=n_hidden,
            tied=tied,
            loss=loss,
            corruption=corruption,
            corruption_level=corruption_level,
            sparsity_target=sparsity_target,
            sparsity_weight=sparsity_weight,
            contractive_weight=contractive_weight,
            init=init,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )


class ContractiveAutoencoder(Autoencoder):
    """:class:`Autoencoder` with the contractive penalty ``0.1 * ||dh/dx||_F^2`` (Rifai et al. 2011)."""

    def __init__(
        self,
        n_hidden: int = 256,
        tied: bool = False,
        loss: str = "mse",
        corruption: str = "none",
        corruption_level: float = 0.0,
        sparsity_target: float = 0.05,
        sparsity_weight: float = 0.0,
        contractive_weight: float = 0.1,
        init: str = "xavier",
        optimizer: str = "adam",
        lr: float = 0.01,
        epochs: int = 10,
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__(
            n_hidden=n_hidden,
            tied=tied,
            loss=loss,
            corruption=corruption,
            corruption_level=corruption_level,
            sparsity_target=sparsity_target,
            sparsity_weight=sparsity_weight,
            contractive_weight=contractive_weight,
            init=init,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )


# ----------------------------------------------------------------------------------------------------------------
# stacks


class _StackedBase(_TorchEstimator):
    """A :class:`LayerStack` of one-hidden-layer denoising autoencoders, pretrained greedily with ``pretrain()``."""

    def _check_stack_params(self) -> None:
        self._check_common()
        self._sizes = _check_sizes(self.hidden_layer_sizes, "hidden_layer_sizes")
        _check_choice(self.corruption, "corruption", _ae.NOISES)
        _check_choice(self.loss, "loss", _ae.LOSSES)
        _check_choice(self.init, "init", _ae.INITS)
        _check_int(self.pretrain_epochs, "pretrain_epochs", 0)
        _check_real(self.pretrain_lr, "pretrain_lr", 0.0, include_boundaries="neither")
        _check_choice(self.pretrain_optimizer, "pretrain_optimizer", list(OPTIMIZERS))
        n = len(self._sizes)
        levels = self.corruption_levels
        if levels is None:  # deeplearning.net's SdA: 0.1, 0.2, 0.3, then 0.3 for deeper layers
            levels = [round(min(0.1 * (k + 1), 0.3), 10) for k in range(n)]
        elif isinstance(levels, numbers.Real):
            _check_level(levels, "corruption_levels")
            levels = [levels] * n
        else:
            if not isinstance(levels, Sequence | np.ndarray) or len(levels) != n:
                raise ValueError(
                    f"corruption_levels must be None, a number or one number per hidden layer ({n}), got {levels!r}"
                )
            for k, v in enumerate(levels):
                _check_level(v, f"corruption_levels[{k}]")
        self._levels = [float(v) for v in levels]

    def _stack(self, n_features: int) -> LayerStack:
        block_args = {"tied": bool(self.tied), "loss": self.loss, "init": self.init, "corruption": self.corruption}
        return LayerStack.build([n_features, *self._sizes], "autoencoder", block_args, self._levels)

    def _pretrain(self, model: Any, x: torch.Tensor, seed: int) -> list[dict[str, Any]]:
        """Greedy layer-wise pretraining; returns the epoch logs tagged with phase and layer."""
        histories = pretrain(
            model,
            x,
            epochs=self.pretrain_epochs,
            lr=self.pretrain_lr,
            optimizer=self.pretrain_optimizer,
            batch_size=self.batch_size,
            seed=seed,
            callbacks=lambda k, block: self._callbacks(f"pretrain layer {k + 1}"),
        )
        return [{"phase": "pretrain", "layer": k + 1, **log} for k, h in enumerate(histories) for log in h]

    def _finetune(self, model: Any, tensors: Sequence[torch.Tensor], seed: int) -> list[dict[str, Any]]:
        history = self._train(
            model,
            tensors,
            epochs=self.finetune_epochs,
            lr=self.lr,
            optimizer=self.optimizer,
            seed=seed + 1,
            prefix="finetune",
        )
        return [{"phase": "finetune", **log} for log in history]

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model.stack.encode(x)

    @property
    def _n_features_out(self) -> int:
        return self.model_.stack.sizes[-1]


class StackedDenoisingAutoencoder(_BaseAutoencoder, _StackedBase):
    """Stacked denoising autoencoder: tied denoising blocks pretrained one at a time (each on the codes of the ones
    below), then optionally fine-tuned end to end, unrolled (encoders up, decoders down) on clean reconstruction.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int
        Code sizes bottom-up; the last is the output of ``transform``.
    corruption_levels : None, float or sequence of float in [0, 1]
        Noise level of each block; None = deeplearning.net's 0.1, 0.2, 0.3 (0.3 for deeper layers).
    corruption : {"masking", "gaussian", "salt-and-pepper", "none"}
    tied : bool
    loss : {"mse", "sse", "bce"}
        Of every block and of fine-tuning ("bce" needs X in [0, 1]).
    init : {"glorot-sigmoid", "xavier", "normal"}
    pretrain_epochs, pretrain_lr, pretrain_optimizer
        Greedy layer-wise pretraining of each block (0 epochs = none).
    finetune_epochs, lr, optimizer
        Fine-tuning of the unrolled deep autoencoder (0 epochs = none).
    batch_size, random_state, device, verbose
        As for :class:`Autoencoder`.

    Attributes
    ----------
    model_ : deeprecipes.models.stacked.DeepAutoencoder
        ``model_.stack.blocks`` are the pretrained blocks.
    n_features_in_, feature_names_in_
    history_ : list of dict
        Epoch logs with ``phase`` ("pretrain" or "finetune") and, for pretraining, ``layer`` (1-based).
    """

    def __init__(
        self,
        hidden_layer_sizes: Any = (500, 250),
        corruption_levels: Any = None,
        corruption: str = "masking",
        tied: bool = True,
        loss: str = "mse",
        init: str = "glorot-sigmoid",
        pretrain_epochs: int = 5,
        pretrain_lr: float = 0.01,
        pretrain_optimizer: str = "adam",
        finetune_epochs: int = 0,
        lr: float = 0.001,
        optimizer: str = "adam",
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.corruption_levels = corruption_levels
        self.corruption = corruption
        self.tied = tied
        self.loss = loss
        self.init = init
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_optimizer = pretrain_optimizer
        self.finetune_epochs = finetune_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        self._check_stack_params()
        _check_int(self.finetune_epochs, "finetune_epochs", 0)

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        self.model_ = DeepAutoencoder(self._stack(x.shape[1]), loss=self.loss, image_shape=None).to(x.device)
        self.model_.check_data(x)
        return self._pretrain(self.model_, x, seed) + self._finetune(self.model_, (x,), seed)

    def _decode(self, model: Any, z: torch.Tensor) -> torch.Tensor:
        return model.stack.decode(z)


class StackedDenoisingClassifier(ClassifierMixin, _SoftmaxOutputs, _StackedBase):
    """deeplearning.net's SdA classifier: a stacked denoising autoencoder pretrained layer by layer, a softmax layer
    on its top code, and supervised fine-tuning of everything with cross-entropy.

    Parameters are those of :class:`StackedDenoisingAutoencoder`; ``finetune_epochs`` (>= 1), ``lr`` and
    ``optimizer`` set the supervised fine-tuning. ``transform`` gives the (fine-tuned) top code.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in fit (any type ``numpy.unique`` sorts); predictions are taken from it.
    model_ : deeprecipes.models.stacked.StackedClassifier
    n_features_in_, feature_names_in_, history_
    """

    def __init__(
        self,
        hidden_layer_sizes: Any = (500, 250),
        corruption_levels: Any = None,
        corruption: str = "masking",
        tied: bool = True,
        loss: str = "mse",
        init: str = "glorot-sigmoid",
        pretrain_epochs: int = 5,
        pretrain_lr: float = 0.01,
        pretrain_optimizer: str = "adam",
        finetune_epochs: int = 20,
        lr: float = 0.01,
        optimizer: str = "adam",
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.corruption_levels = corruption_levels
        self.corruption = corruption
        self.tied = tied
        self.loss = loss
        self.init = init
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_optimizer = pretrain_optimizer
        self.finetune_epochs = finetune_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        self._check_stack_params()
        _check_int(self.finetune_epochs, "finetune_epochs", 1)

    def fit(self, X: Any, y: Any) -> StackedDenoisingClassifier:
        """Pretrain the stack on X, then fine-tune it with the softmax layer on the labels y."""
        self._fit(X, y, supervised=True)
        return self

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in y to train, got 1 class: {self.classes_[0]!r}"
            )
        self.model_ = StackedClassifier(self._stack(x.shape[1]), n_classes=len(self.classes_)).to(x.device)
        self.model_.check_data(x)
        labels = torch.as_tensor(codes.reshape(-1), dtype=torch.long, device=x.device)
        return self._pretrain(self.model_, x, seed) + self._finetune(self.model_, (x, labels), seed)


# ----------------------------------------------------------------------------------------------------------------
# convolutional


class ConvDenoisingAutoencoder(_BaseAutoencoder):
    """The cookbook's (8.4) convolutional denoising autoencoder on 28x28 images given as rows of 784 values in
    [0, 1]: three conv + max-pool stages to a (filters[2], 4, 4) code, resize + conv back up, cross-entropy loss.

    Parameters
    ----------
    corruption : {"gaussian", "masking", "salt-and-pepper", "none"}
    corruption_level : float in [0, 1]
        Noise standard deviation (the book's 0.5), masking probability or salt-and-pepper fraction.
    filters : tuple of 3 int
        Channels of the encoder convolutions.
    optimizer, lr, epochs, batch_size, random_state, device, verbose
        As for :class:`Autoencoder`.

    ``transform`` returns the code flattened to ``filters[2] * 16`` features; ``inverse_transform`` takes it back.
    """

    def __init__(
        self,
        corruption: str = "gaussian",
        corruption_level: float = 0.5,
        filters: tuple[int, int, int] = (32, 32, 16),
        optimizer: str = "adam",
        lr: float = 0.001,
        epochs: int = 10,
        batch_size: int = 128,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.filters = filters
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    _image_shape = (28, 28)

    def _check_params(self) -> None:
        self._check_common()
        _check_choice(self.corruption, "corruption", _ae.NOISES)
        _check_level(self.corruption_level, "corruption_level")
        sizes = _check_sizes(self.filters, "filters")
        if len(sizes) != 3:
            raise ValueError(f"filters must be 3 positive integers, got {self.filters!r}")
        _check_int(self.epochs, "epochs", 1)

    def _unit_interval_only(self) -> bool:
        return True

    def _check_X(self, X: np.ndarray) -> None:
        h, w = self._image_shape
        if X.shape[1] != h * w:
            raise ValueError(
                f"X has shape {X.shape}, but {type(self).__name__} needs rows of {h}x{w} = {h * w} pixel values "
                f"(images flattened to {h * w} features)"
            )
        _check_unit_interval(X, "the cross-entropy loss of the convolutional autoencoder")

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        self.model_ = _conv.ConvDenoisingAutoencoder(
            self.corruption, float(self.corruption_level), tuple(int(f) for f in self.filters), self._image_shape
        ).to(x.device)
        self.model_.check_data(x)
        return self._train(self.model_, (x,), epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, seed=seed)

    @property
    def _code_shape(self) -> tuple[int, int, int]:
        return (self.model_.filters[2], *self.model_.code_size)

    @property
    def _n_features_out(self) -> int:
        c, h, w = self._code_shape
        return c * h * w

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model.encode(x).flatten(1)

    def _decode(self, model: Any, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model.decode(z.reshape(len(z), *self._code_shape))).flatten(1)
