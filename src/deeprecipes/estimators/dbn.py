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

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from ..models import rbm
from ..models.dbn import DBNClassifier, build_rbm_stack
from ..params import PositiveInt, Rate
from .base import LayerwiseEstimator, SoftmaxOutputs, check_sizes, estimator_init
from .rbm import check_probabilities

__all__ = ["DBN"]


class DBN(ClassifierMixin, SoftmaxOutputs, LayerwiseEstimator):
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

    __init__ = estimator_init(
        "DBN",
        (rbm.RBM, DBNClassifier),
        "hidden_layer_sizes k pretrain_epochs pretrain_lr pretrain_optimizer finetune_epochs lr optimizer dropout "
        "batch_size random_state device verbose",
        annotations={"dropout": Rate, "finetune_epochs": PositiveInt},
        pretrain_lr=0.05,
        pretrain_optimizer="sgd",
        dropout=0.0,
    )

    # -- checks ---------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        super()._check_params()
        self._sizes = check_sizes(self.hidden_layer_sizes, "hidden_layer_sizes")

    def _unit_interval_only(self) -> bool:
        return True

    def _check_X(self, X: np.ndarray) -> None:
        check_probabilities(X, "a DBN")

    # -- fitting --------------------------------------------------------------------------------------------------
    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        labels = self._label_codes(y, x.device)
        x = x.clamp(0.0, 1.0)
        block_args = {"init": "glorot-sigmoid", "ais_betas": 0, "sample_rows": 0, "image_shape": []}
        stack = build_rbm_stack([x.shape[1], *self._sizes], int(self.k), block_args)
        rates = [float(self.dropout)] * (len(self._sizes) + 1)
        model = DBNClassifier(stack, n_classes=len(self.classes_), dropout=rates)
        return self._pretrain_and_finetune(model, x, (x, labels), seed)
