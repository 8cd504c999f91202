"""scikit-learn estimator for restricted Boltzmann machines: fit, transform, score_samples, gibbs, in pipelines.

:class:`RBM` trains deeprecipes' :class:`deeprecipes.models.rbm.RBM` on the one training engine with persistent
contrastive divergence by default, as ``sklearn.neural_network.BernoulliRBM`` does (CD-k, Gaussian visible units,
momentum, weight decay and a sparsity target are settings)::

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from deeprecipes.estimators import RBM

    pipe = make_pipeline(RBM(n_components=100, lr=0.06, epochs=20), LogisticRegression())
    pipe.fit(X_train, y_train).score(X_test, y_test)  # X in [0, 1]

``transform`` gives p(h = 1 | v); ``score_samples`` the pseudo-log-likelihood of each row (one random feature flipped,
as scikit-learn's, seeded by ``random_state``) for Bernoulli units, minus the free energy (the unnormalised log
density) for Gaussian ones. Training runs in float32; inference on a float64 copy of the model.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

from ..errors import ConfigError
from ..models import rbm
from .base import (
    TorchEstimator,
    check_unit_interval,
    estimator_init,
    estimator_preset,
)

__all__ = ["RBM", "GaussianRBM", "DataRangeWarning", "check_probabilities"]


class DataRangeWarning(UserWarning):
    """X is outside the range the visible units model (values above 1 for binary units): it was clipped."""


def check_probabilities(X: np.ndarray, what: str) -> None:
    """X read as probabilities of binary units by ``what``: negative values are a ValueError, values above 1 a
    :class:`DataRangeWarning` (they are clipped for training; the rounding of a MinMaxScaler passes)."""
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0:
        check_unit_interval(X, f"{what} (binary visible units, X read as probabilities)")
    if hi > 1.0 + 1e-6:
        warnings.warn(
            f"X has values above 1 (max {hi:.4g}), but {what} reads X as probabilities of binary units: values "
            "above 1 are clipped to 1 for training; scale X to [0, 1] (e.g. with MinMaxScaler)",
            DataRangeWarning,
            stacklevel=5,
        )


class RBM(TorchEstimator):
    """Restricted Boltzmann machine with binary hidden units (scikit-learn API).

    Parameters
    ----------
    n_components : int
        Hidden units (the size of ``transform``'s output).
    visible : {"bernoulli", "gaussian"}
        Binary visible units (X in [0, 1], read as probabilities) or unit-variance Gaussian ones (X standardized:
        zero mean, unit variance per feature, e.g. after ``StandardScaler``).
    k : int
        Gibbs steps per update.
    persistent : bool
        Persistent CD (scikit-learn's "stochastic maximum likelihood") with ``batch_size`` chains; else CD-k.
    lr : float
        Learning rate on the batch-mean gradient (scikit-learn's ``learning_rate``).
    optimizer : str
        "sgd" (scikit-learn), "momentum" (momentum 0.9), ... (:data:`deeprecipes.training.optim.OPTIMIZERS`).
    weight_decay : float
        L2 penalty ``weight_decay * sum W**2`` on the weights (not the biases), Hinton's practical guide.
    sparsity_target, sparsity_cost : float
        Push each hidden unit's mean activation towards ``sparsity_target`` (cost 0 = off).
    init_std : float
        Weights ~ N(0, init_std^2) (scikit-learn: 0.01).
    epochs : int
        Passes over X (scikit-learn's ``n_iter``).
    batch_size : int
    random_state : int, RandomState or None
        Seeds the weights, the batch order, the Gibbs sampling and ``score_samples``' flipped features.
    device : str
    verbose : bool
        Print one line per epoch.

    Attributes
    ----------
    model_ : deeprecipes.models.rbm.RBM
    components_ : ndarray (n_components, n_features_in_)
        The weights, as in scikit-learn.
    intercept_hidden_, intercept_visible_ : ndarray
    n_features_in_ : int
    history_ : list of dict
        The engine's epoch logs (``train_loss``: the free-energy difference between data and model samples).
    """

    __init__ = estimator_init(
        "RBM",
        rbm.RBM,
        "n_components=n_hidden visible k persistent lr optimizer weight_decay sparsity_target sparsity_cost init_std "
        "epochs batch_size random_state device verbose",
        n_components=256,
        persistent=True,
        lr=0.1,
        optimizer="sgd",
        batch_size=10,
    )

    # -- checks ---------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        super()._check_params()
        if self.sparsity_cost > 0 and self.sparsity_target <= 0:
            raise ValueError("sparsity_cost > 0 needs a sparsity_target in (0, 1)")

    def _unit_interval_only(self) -> bool:
        return self.visible == "bernoulli"

    def _check_X(self, X: np.ndarray) -> None:
        if self.visible == "bernoulli":
            check_probabilities(X, "visible='bernoulli'")
        else:
            try:
                rbm.check_standardized(torch.as_tensor(X), "visible='gaussian'")
            except ConfigError as e:
                raise ValueError(str(e).replace("sklearn StandardScaler", "StandardScaler")) from None

    # -- fitting --------------------------------------------------------------------------------------------------
    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        shared = self.shared_args(rbm.RBM)  # visible, k, persistent, sparsity and init_std
        quiet = {"ais_betas": 0, "sample_rows": 0, "image_shape": [], "train_monitor": False}
        model = rbm.RBM(x.shape[1], self.n_components, n_chains=int(self.batch_size), **shared, **quiet)
        if self.visible == "bernoulli":
            x = x.clamp(0.0, 1.0)
        return self._train_model(model, x, seed, l2=float(self.weight_decay))

    @property
    def _n_features_out(self) -> int:
        return self.model_.n_hidden

    # -- learned state as scikit-learn names it -------------------------------------------------------------------
    @property
    def components_(self) -> np.ndarray:
        return self.model_.W.detach().t().cpu().numpy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        return self.model_.h_bias.detach().cpu().numpy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        return self.model_.v_bias.detach().cpu().numpy()

    # -- inference ------------------------------------------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        gen = torch.Generator(device=torch.device(self.device))
        gen.manual_seed(seed)
        return gen

    def score_samples(self, X: Any) -> np.ndarray:
        """Pseudo-log-likelihood of each row (Bernoulli: ``n_features * log sigmoid(F(x~) - F(x))`` with one random
        feature of x flipped, like scikit-learn's); minus the free energy for Gaussian units. Shape (n_samples,)."""
        X = self._validated(X)
        if self.visible == "gaussian":
            return self._apply(lambda model, x: -model.free_energy(x), X)
        gen = self._generator()
        return self._apply(lambda model, x: model.pseudo_loglik(x, round_input=False, generator=gen), X)

    def gibbs(self, V: Any) -> np.ndarray:
        """One Gibbs step v -> h -> v from each row of V; returns the visible samples (n_samples, n_features)."""
        V = self._validated(V)
        gen = self._generator()

        def step(model: Any, v: torch.Tensor) -> torch.Tensor:
            h = rbm.bernoulli(model.encode(v), gen)
            mean = model.decode(h)
            if model.visible == "bernoulli":
                return rbm.bernoulli(mean, gen)
            return mean + torch.randn(mean.shape, generator=gen, dtype=mean.dtype, device=mean.device)

        return self._apply(step, V)

    def free_energy(self, X: Any) -> np.ndarray:
        """F(x) of each row, shape (n_samples,)."""
        return self._apply(lambda model, x: model.free_energy(x), self._validated(X))


GaussianRBM = estimator_preset(
    RBM,
    "GaussianRBM",
    ':class:`RBM` with unit-variance Gaussian visible units (``visible="gaussian"``), CD-1, lr 0.01: for '
    "standardized real-valued X.",
    visible="gaussian",
    persistent=False,
    lr=0.01,
)
