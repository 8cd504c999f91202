"""scikit-learn estimators for PCA, k-means and the self-organising map, trained on the one engine.

Each wraps the deeprecipes model of the same family (:mod:`deeprecipes.models.pca`, ``.kmeans``, ``.som``); ``fit``
runs the model's closed-form, Lloyd or Kohonen updates through :class:`deeprecipes.training.Engine` with the whole
training set as one batch per epoch, exactly as the recipes do::

    from deeprecipes.estimators import PCA, KMeans, SelfOrganizingMap

    Z = PCA(n_components=2).fit_transform(X)
    labels = KMeans(n_clusters=3, random_state=0).fit_predict(X)
    grid = SelfOrganizingMap(m=10, n=10, iterations=100).fit(X).transform(X)  # lattice (row, col) of each row

Methods:

- :class:`PCA`: ``transform`` (coordinates on the axes), ``inverse_transform``, ``score_samples`` (minus the
  per-row reconstruction MSE; scikit-learn's PCA scores a Gaussian log-likelihood instead) and ``score`` (its mean).
- :class:`KMeans`: ``predict`` / ``fit_predict`` (cluster index), ``transform`` (distance to every centroid),
  ``score`` (minus the inertia, as scikit-learn), ``score_samples`` (minus each row's squared distance).
- :class:`SelfOrganizingMap`: ``predict`` (best-matching unit), ``transform`` (its lattice row and column),
  ``score_samples`` (minus each row's quantisation error) and ``score`` (its mean).

Training runs in float32 on ``device``; inference runs a float64 copy of the model, and floating outputs have X's
dtype. ``random_state`` seeds k-means++ and the SOM's starting prototypes (the global torch generator is restored
after ``fit``). Bad parameters raise a ValueError naming them; ``n_clusters`` above the number of samples too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClusterMixin

from ..models import kmeans as km
from ..models import pca as pca_model
from ..models import som as som_model
from ..params import PositiveInt
from .base import Decoding, TorchEstimator, estimator_init

__all__ = ["PCA", "KMeans", "SelfOrganizingMap"]


class WholeSetEstimator(TorchEstimator):
    """Trains ``model_`` on the engine with all rows as one batch per epoch (no optimizer: the models' own
    ``train_step`` updates them without gradients). ``score`` is the mean of ``score_samples``."""

    def _unit_interval_only(self) -> bool:
        return False

    def _run_engine(self, x: torch.Tensor, epochs: int, seed: int) -> list[dict[str, Any]]:
        return self._train(self.model_, (x,), epochs=epochs, seed=seed, batch_size=len(x), shuffle=False)


class PrototypeEstimator(WholeSetEstimator):
    """k-means and the SOM: ``predict`` gives each row's nearest prototype (``model_.predict``), ``transform`` what
    the model's forward pass returns for it."""

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest prototype of each row (n_samples,): its cluster, or its best-matching unit
        ``row * n + column``."""
        return self._apply(lambda model, x: model.predict(x), self._validated(X))

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model(x)


# ----------------------------------------------------------------------------------------------------------------
# PCA


class PCA(Decoding, WholeSetEstimator):
    """Principal component analysis by SVD (deeprecipes' :class:`deeprecipes.models.pca.PCA`).

    Parameters
    ----------
    n_components : int or None
        Axes kept; None keeps ``min(n_samples, n_features)``.
    center : bool
        Subtract the mean first (True: PCA as scikit-learn's; False: the cookbook's uncentred SVD).
    random_state : ignored
        Accepted for API symmetry (the fit is deterministic).
    device : str
        torch device, e.g. "cpu" or "cuda".
    verbose : bool
        Print the epoch log.

    Attributes
    ----------
    components_ : ndarray (n_components_, n_features_in_)
        Orthonormal axes, largest variance first; each signed so that its largest entry is positive.
    explained_variance_, explained_variance_ratio_, singular_values_ : ndarray (n_components_,)
    mean_ : ndarray (n_features_in_,)
        The training mean (zeros when ``center=False``).
    n_components_, n_samples_ : int
    model_ : deeprecipes.models.pca.PCA
    history_ : list of dict
    """

    __init__ = estimator_init(
        "PCA",
        pca_model.PCA,
        "n_components center random_state device verbose",
        annotations={"n_components": PositiveInt | None},
        n_components=None,
    )

    def _check_X(self, X: np.ndarray) -> None:
        n, d = X.shape
        if n < 2:
            raise ValueError(f"PCA needs at least 2 samples to estimate variances, got {n} sample")
        if self.n_components is not None and self.n_components > min(n, d):
            raise ValueError(
                f"n_components={self.n_components} must be <= min(n_samples, n_features) = {min(n, d)} "
                f"(n_samples={n}, n_features={d})"
            )

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        k = self.n_components or min(x.shape)
        self.model_ = pca_model.PCA(x.shape[1], k, center=bool(self.center), image_shape=None).to(x.device)
        history = self._run_engine(x, 1, seed)
        m = self.model_
        self.n_components_ = k
        self.n_samples_ = len(x)
        self.components_ = m.components.detach().double().cpu().numpy()
        self.mean_ = m.mean.detach().double().cpu().numpy()
        self.singular_values_ = m.singular_values[:k].cpu().numpy()
        self.explained_variance_ = m.explained_variance[:k].cpu().numpy()
        self.explained_variance_ratio_ = m.explained_variance_ratio[:k].cpu().numpy()
        return history

    code_name = "n_components_"

    @property
    def _n_features_out(self) -> int:
        return self.n_components_

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the mean squared reconstruction error of each row: higher = better explained by the axes."""
        return self._apply(lambda model, x: -model.reconstruction_mse(x), self._validated(X))


# ----------------------------------------------------------------------------------------------------------------
# k-means


class KMeans(ClusterMixin, PrototypeEstimator):
    """k-means with k-means++ seeding and Lloyd iterations (deeprecipes' :class:`deeprecipes.models.kmeans.KMeans`).

    Parameters
    ----------
    n_clusters : int
        k; at most the number of samples.
    init : {"k-means++", "random"}
    distance : {"euclidean", "cosine"}
        ``cosine``: spherical k-means on the rows scaled to unit length (centroids on the unit sphere).
    max_iter : int
        Most Lloyd iterations.
    tol : float
        Stop when the squared centroid shift falls to ``tol`` times the mean feature variance (scikit-learn's rule).
    random_state : int, RandomState or None
        Seeds the k-means++ draws.
    device : str
    verbose : bool

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, n_features_in_)
    labels_ : ndarray (n_samples,)
    inertia_ : float
        Sum of squared distances of the training rows to their centroid (in the space clustered).
    n_iter_ : int
    model_ : deeprecipes.models.kmeans.KMeans
    history_ : list of dict
    """

    __init__ = estimator_init(
        "KMeans", km.KMeans, "n_clusters init distance max_iter tol random_state device verbose", tol=1e-4
    )

    def _check_X(self, X: np.ndarray) -> None:
        km.check_n_clusters(int(self.n_clusters), len(X))

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        model = km.KMeans(n_features=x.shape[1], **self.shared_args(km.KMeans), image_shape=None)
        self.model_ = model.to(x.device)
        history = self._run_engine(x, int(self.max_iter), seed)
        self.n_iter_ = int(self.model_.n_iter)
        self.cluster_centers_ = self.model_.centroids.detach().double().cpu().numpy()
        return history

    def fit(self, X: Any, y: Any = None) -> KMeans:
        """Cluster X (n_samples, n_features); y is ignored. Sets ``labels_`` and ``inertia_``."""
        self._fit(X)
        X = self._validated(X)
        self.labels_ = self._apply(lambda model, x: model.assign(x)[0], X)
        self.inertia_ = float(self._apply(lambda model, x: model.assign(x)[1], X).astype(np.float64).sum())
        return self

    @property
    def _n_features_out(self) -> int:
        return int(self.n_clusters)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus each row's squared distance to its nearest centroid (in the space clustered)."""
        return self._apply(lambda model, x: -model.assign(x)[1], self._validated(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the inertia of X (the sum of :meth:`score_samples`), as scikit-learn's KMeans."""
        return float(np.sum(self.score_samples(X), dtype=np.float64))


# ----------------------------------------------------------------------------------------------------------------
# self-organising map


class SelfOrganizingMap(PrototypeEstimator):
    """Kohonen self-organising map (deeprecipes' :class:`deeprecipes.models.som.SOM`).

    Parameters
    ----------
    m, n : int
        Lattice rows and columns.
    iterations : int
        Training iterations (passes over X); eta and sigma decay linearly over them.
    sigma : float or None
        Starting neighbourhood radius; None: ``max(m, n) / 2``.
    eta : float
        Starting learning rate.
    mode : {"batch", "online"}
        One vectorised update per pass, or the cookbook's sample-by-sample updates.
    init : {"normal", "uniform"}
        Starting prototypes N(0, 1) (the cookbook) or U[0, 1).
    random_state : int, RandomState or None
    device : str
    verbose : bool

    Attributes
    ----------
    weights_ : ndarray (m, n, n_features_in_)
        The prototypes on the lattice.
    quantization_error_, topographic_error_ : float
        On the training rows.
    model_ : deeprecipes.models.som.SOM
    history_ : list of dict
    """

    __init__ = estimator_init(
        "SelfOrganizingMap",
        som_model.SOM,
        "m n iterations sigma eta mode init random_state device verbose",
        m=10,
        n=10,
        iterations=100,
        mode="batch",
    )

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        model = som_model.SOM(n_features=x.shape[1], **self.shared_args(som_model.SOM))
        self.model_ = model.to(x.device)
        history = self._run_engine(x, int(self.iterations), seed)
        with torch.no_grad():
            errors = self.model_.errors(x)
        self.quantization_error_ = float(errors["quantization_error"].double().mean())
        self.topographic_error_ = float(errors["topographic_error"].double().mean())
        self.weights_ = self.model_.weights.detach().double().cpu().numpy().reshape(int(self.m), int(self.n), -1)
        return history

    @property
    def _n_features_out(self) -> int:
        return 2

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus each row's quantisation error (Euclidean distance to its best-matching unit)."""
        return self._apply(lambda model, x: -model.errors(x)["quantization_error"], self._validated(X))
