"""scikit-learn estimator for deep belief networks: RBMs pretrained greedily, then fine-tuned as a classifier.

:class:`DBN` builds deeprecipes' :class:`deeprecipes.models.dbn.DBNClassifier`, pretrains its RBMs one at a time with
contrastive divergence through :func:`deeprecipes.training.layerwise.pretrain`, then fine-tunes the whole network
with a softmax layer on the labels, all on the one training engine::

    from deeprecipes.estimators import DBN

    clf = DBN(hidden_layer_sizes=(256, 256), pretrain_epochs=5, finetune_epochs=20).fit(X_train, y_train)
    clf.score(X_test, y_test)      # accuracy; X in [0, 1]
    codes = clf.transform(X_test)  # the top RBM layer's p(h = 1 | v)

X is read as probabilities of binary visible units: negative values are an error, values above 1 are clipped (with
a :class:`~deeprecipes.estimators.rbm.DataRangeWarning`), as the RBM estimator does.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from ..models.dbn import DBNClassifier, build_rbm_stack
from ..training.layerwise import pretrain
from ..training.optim import OPTIMIZERS
from ._base import (
    _check_choice,
    _check_int,
    _check_real,
    _check_sizes,
    _check_unit_interval,
    _SoftmaxOutputs,
    _TorchEstimator,
)
from .rbm import DataRangeWarning

__all__ = ["DBN"]


class DBN(ClassifierMixin, _SoftmaxOutputs, _TorchEstimator):
    """Deep belief network classifier (scikit-learn API).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int
        Hidden units of each RBM, bottom first.
    k : int
        Gibbs steps of contrastive divergence (CD-k).
    pretrain_epochs : int
        Epochs of CD per RBM (0: no pretraining, a plain sigmoid network).
    pretrain_lr : float
        Learning rate of pretraining (batch-mean CD gradient).
    pretrain_optimizer : str
        Optimizer of pretraining ("sgd", "momentum", ... :data:`deeprecipes.training.optim.OPTIMIZERS`).
    finetune_epochs : int
        Epochs of supervised fine-tuning (>= 1).
    lr, optimizer : float, str
        Fine-tuning learning rate and optimizer.
    dropout : float
        Dropout on the input of every layer during fine-tuning.
    batch_size : int
    random_state : int, RandomState or None
    device : str
    verbose : bool
        Print one line per epoch.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in fit; predictions are taken from it.
    model_ : deeprecipes.models.dbn.DBNClassifier
    n_features_in_, feature_names_in_, history_
        ``history_`` holds every epoch's logs, tagged ``phase`` ("pretrain" with its ``layer``, or "finetune").
    """

    def __init__(
        self,
        hidden_layer_sizes: Any = (256, 256),
        k: int = 1,
        pretrain_epochs: int = 5,
        pretrain_lr: float = 0.05,
        pretrain_optimizer: str = "sgd",
        finetune_epochs: int = 20,
        lr: float = 0.01,
        optimizer: str = "adam",
        dropout: float = 0.0,
        batch_size: int = 100,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.k = k
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_optimizer = pretrain_optimizer
        self.finetune_epochs = finetune_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.dropout = dropout
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- checks ---------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        self._check_common()
        self._sizes = _check_sizes(self.hidden_layer_sizes, "hidden_layer_sizes")
        _check_int(self.k, "k", 1)
        _check_int(self.pretrain_epochs, "pretrain_epochs", 0)
        _check_real(self.pretrain_lr, "pretrain_lr", 0.0, include_boundaries="neither")
        _check_choice(self.pretrain_optimizer, "pretrain_optimizer", list(OPTIMIZERS))
        _check_int(self.finetune_epochs, "finetune_epochs", 1)
        _check_real(self.dropout, "dropout", 0.0, 1.0, include_boundaries="left")

    def _unit_interval_only(self) -> bool:
        return True

    def _check_X(self, X: np.ndarray) -> None:
        lo, hi = float(X.min()), float(X.max())
        if lo < 0.0:
            _check_unit_interval(X, "a DBN (binary visible units, X read as probabilities)")
        if hi > 1.0 + 1e-6:
            warnings.warn(
                f"X has values above 1 (max {hi:.4g}), but a DBN reads X as probabilities of binary units: values "
                "above 1 are clipped to 1 for training; scale X to [0, 1] (e.g. with MinMaxScaler)",
                DataRangeWarning,
                stacklevel=4,
            )

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> DBN:
        """Pretrain the RBMs on X, then fine-tune the network with a softmax layer on the labels y."""
        self._fit(X, y, supervised=True)
        return self

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"DBN needs at least 2 classes in y to train, got 1 class: {self.classes_[0]!r}")
        x = x.clamp(0.0, 1.0)
        block_args = {"init": "glorot-sigmoid", "ais_betas": 0, "sample_rows": 0, "image_shape": []}
        stack = build_rbm_stack([x.shape[1], *self._sizes], int(self.k), block_args)
        rates = [float(self.dropout)] * (len(self._sizes) + 1)
        self.model_ = DBNClassifier(stack, n_classes=len(self.classes_), dropout=rates).to(x.device)
        self.model_.check_data(x)
        histories = pretrain(
            self.model_,
            x,
            epochs=int(self.pretrain_epochs),
            lr=float(self.pretrain_lr),
            optimizer=self.pretrain_optimizer,
            batch_size=int(self.batch_size),
            seed=seed,
            callbacks=lambda k, block: self._callbacks(f"pretrain layer {k + 1}"),
        )
        history = [{"phase": "pretrain", "layer": k + 1, **log} for k, h in enumerate(histories) for log in h]
        labels = torch.as_tensor(codes.reshape(-1), dtype=torch.long, device=x.device)
        finetune = self._train(
            self.model_,
            (x, labels),
            epochs=int(self.finetune_epochs),
            lr=float(self.lr),
            optimizer=self.optimizer,
            seed=seed + 1,
            prefix="finetune",
        )
        return history + [{"phase": "finetune", **log} for log in finetune]

    @property
    def _n_features_out(self) -> int:
        return self.model_.stack.sizes[-1]

    # -- prediction -----------------------------------------------------------------------------------------------
