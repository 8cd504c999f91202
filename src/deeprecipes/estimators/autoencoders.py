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

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from ..models import autoencoder as ae
from ..models.conv_autoencoder import ConvDenoisingAutoencoder as ConvModel
from ..models.stacked import DeepAutoencoder, LayerStack, StackedClassifier
from ..params import PositiveInt
from .base import (
    Decoding,
    LayerwiseEstimator,
    SoftmaxOutputs,
    TorchEstimator,
    check_levels,
    check_sizes,
    check_unit_interval,
    estimator_init,
    estimator_preset,
    init_with_defaults,
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


class AutoencoderEstimator(Decoding, TorchEstimator):
    """Unsupervised autoencoders: fit(X), transform, inverse_transform, score_samples, score (the mean of
    ``score_samples``: minus the mean reconstruction MSE).

    Subclasses may redefine ``_decode(model, z)`` and ``_reconstruct(model, x)``.
    """

    def _reconstruct(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the mean squared reconstruction error of each row (clean input, no noise): higher = more normal."""
        X = self._validated(X)
        return self._apply(lambda model, x: -(self._reconstruct(model, x).reshape(x.shape) - x).pow(2).mean(1), X)


# ----------------------------------------------------------------------------------------------------------------
# one hidden layer


class Autoencoder(AutoencoderEstimator):
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

    __init__ = estimator_init(
        "Autoencoder",
        ae.Autoencoder,
        "n_hidden tied loss corruption corruption_level sparsity_target sparsity_weight contractive_weight init "
        "optimizer lr epochs batch_size random_state device verbose",
        init="xavier",
    )

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        model = ae.Autoencoder(x.shape[1], **self.shared_args(ae.Autoencoder), image_shape=None)
        return self._train_model(model, x, seed)

    @property
    def _n_features_out(self) -> int:
        return self.model_.n_hidden


SparseAutoencoder = estimator_preset(
    Autoencoder,
    "SparseAutoencoder",
    ":class:`Autoencoder` with the cookbook's (8.2) KL sparsity penalty: target 0.02, weight 7.5e-5.",
    sparsity_target=0.02,
    sparsity_weight=7.5e-5,
)


DenoisingAutoencoder = estimator_preset(
    Autoencoder,
    "DenoisingAutoencoder",
    ":class:`Autoencoder` trained to reconstruct clean rows from masked ones (30% of the values zeroed, drawn "
    "afresh for every batch), as deeplearning.net's dA.",
    corruption="masking",
    corruption_level=0.3,
)


ContractiveAutoencoder = estimator_preset(
    Autoencoder,
    "ContractiveAutoencoder",
    ":class:`Autoencoder` with the contractive penalty ``0.1 * ||dh/dx||_F^2`` (Rifai et al. 2011).",
    contractive_weight=0.1,
)


# ----------------------------------------------------------------------------------------------------------------
# stacks


def sda_level(k: int) -> float:
    """deeplearning.net's SdA noise level of layer k: 0.1, 0.2, 0.3, then 0.3 for deeper layers."""
    return round(min(0.1 * (k + 1), 0.3), 10)


class StackedAutoencoderEstimator(LayerwiseEstimator):
    """A :class:`LayerStack` of one-hidden-layer denoising autoencoders, pretrained greedily with ``pretrain()``."""

    def _check_params(self) -> None:
        super()._check_params()
        self._sizes = check_sizes(self.hidden_layer_sizes, "hidden_layer_sizes")
        self._levels = check_levels(self.corruption_levels, "corruption_levels", len(self._sizes), sda_level)

    def _stack(self, n_features: int) -> LayerStack:
        block_args = {"tied": bool(self.tied), "loss": self.loss, "init": self.init, "corruption": self.corruption}
        return LayerStack.build([n_features, *self._sizes], "autoencoder", block_args, self._levels)

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model.stack.encode(x)


class StackedDenoisingAutoencoder(AutoencoderEstimator, StackedAutoencoderEstimator):
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

    __init__ = estimator_init(
        "StackedDenoisingAutoencoder",
        ae.Autoencoder,
        "hidden_layer_sizes corruption_levels corruption tied loss init pretrain_epochs pretrain_lr pretrain_optimizer "
        "finetune_epochs lr optimizer batch_size random_state device verbose",
        hidden_layer_sizes=(500, 250),
        corruption="masking",
        tied=True,
        init="glorot-sigmoid",
        finetune_epochs=0,
        lr=0.001,
    )

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        model = DeepAutoencoder(self._stack(x.shape[1]), loss=self.loss, image_shape=None)
        return self._pretrain_and_finetune(model, x, (x,), seed)

    def _decode(self, model: Any, z: torch.Tensor) -> torch.Tensor:
        return model.stack.decode(z)


class StackedDenoisingClassifier(ClassifierMixin, SoftmaxOutputs, StackedAutoencoderEstimator):
    """deeplearning.net's SdA classifier: a stacked denoising autoencoder pretrained layer by layer, a softmax layer
    on its top code, and supervised fine-tuning of everything with cross-entropy.

    Parameters are those of :class:`StackedDenoisingAutoencoder`, but for the defaults of ``finetune_epochs`` (20,
    and it must be >= 1) and ``lr`` (0.01); ``finetune_epochs``, ``lr`` and ``optimizer`` set the supervised
    fine-tuning. ``transform`` gives the (fine-tuned) top code.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in fit (any type ``numpy.unique`` sorts); predictions are taken from it.
    model_ : deeprecipes.models.stacked.StackedClassifier
    n_features_in_, feature_names_in_, history_
    """

    __init__ = init_with_defaults(
        StackedDenoisingAutoencoder.__init__,
        "StackedDenoisingClassifier.__init__",
        annotations={"finetune_epochs": PositiveInt},
        finetune_epochs=20,
        lr=0.01,
    )

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        labels = self._label_codes(y, x.device)
        model = StackedClassifier(self._stack(x.shape[1]), n_classes=len(self.classes_))
        return self._pretrain_and_finetune(model, x, (x, labels), seed)


# ----------------------------------------------------------------------------------------------------------------
# convolutional


class ConvDenoisingAutoencoder(AutoencoderEstimator):
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

    __init__ = estimator_init(
        "ConvDenoisingAutoencoder",
        ConvModel,
        "corruption corruption_level filters optimizer lr epochs batch_size random_state device verbose",
        filters=(32, 32, 16),
        lr=0.001,
        batch_size=128,
    )

    _image_shape = (28, 28)

    def _check_params(self) -> None:
        super()._check_params()
        if len(check_sizes(self.filters, "filters")) != 3:
            raise ValueError(f"filters must be 3 positive integers, got {self.filters!r}")

    def _unit_interval_only(self) -> bool:
        return True

    def _check_X(self, X: np.ndarray) -> None:
        h, w = self._image_shape
        if X.shape[1] != h * w:
            raise ValueError(
                f"X has shape {X.shape}, but {type(self).__name__} needs rows of {h}x{w} = {h * w} pixel values "
                f"(images flattened to {h * w} features)"
            )
        check_unit_interval(X, "the cross-entropy loss of the convolutional autoencoder")

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        filters = [int(f) for f in self.filters]
        model = ConvModel(self.corruption, float(self.corruption_level), filters, self._image_shape)
        return self._train_model(model, x, seed)

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
