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

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import ClusterMixin
from sklearn.utils.validation import check_array, check_is_fitted

from ..data.batches import Batches
from ..models import kmeans as _km
from ..models import pca as _pca
from ..models import som as _som
from ..training.engine import Engine
from ._base import _DTYPES, _check_choice, _check_int, _check_real, _TorchEstimator

__all__ = ["PCA", "KMeans", "SelfOrganizingMap"]


def _check_device_verbose(est: Any) -> None:
    if not isinstance(est.verbose, bool | numbers.Integral):
        raise TypeError(f"verbose must be a bool, got {est.verbose!r}")
    try:
        torch.device(est.device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {est.device!r}") from e


class _WholeSetEstimator(_TorchEstimator):
    """Trains ``model_`` on the engine with all rows as one batch per epoch (no optimizer: the models' own
    ``train_step`` updates them without gradients)."""

    def _unit_interval_only(self) -> bool:
        return False

    def _run_engine(self, x: torch.Tensor, epochs: int, seed: int) -> list[dict[str, Any]]:
        engine = Engine(self.model_, callbacks=self._callbacks(""))
        self.model_.train()
        return engine.fit(Batches(x, batch_size=len(x), shuffle=False, seed=seed), epochs=epochs)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples`; y is ignored."""
        return float(np.mean(self.score_samples(X)))


# ----------------------------------------------------------------------------------------------------------------
# PCA


class PCA(_WholeSetEstimator):
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

    def __init__(
        self,
        n_components: int | None = None,
        center: bool = True,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.center = center
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        if self.n_components is not None:
            _check_int(self.n_components, "n_components", 1)
        if not isinstance(self.center, bool | np.bool_):
            raise TypeError(f"center must be True or False, got {self.center!r}")
        _check_device_verbose(self)

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
        self.model_ = _pca.PCA(x.shape[1], k, center=bool(self.center), image_shape=None).to(x.device)
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

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Find the principal axes of X (n_samples, n_features); y is ignored."""
        self._fit(X)
        return self

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model.encode(x)

    @property
    def _n_features_out(self) -> int:
        return self.n_components_

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Rows (n_samples, n_features_in_) back from their coordinates (n_samples, n_components_)."""
        check_is_fitted(self, "model_")
        Z = check_array(X, dtype=_DTYPES, input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but PCA.inverse_transform is expecting {self.n_components_} "
                "features (n_components_) as input."
            )
        return self._apply(lambda model, z: model.decode(z), Z)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the mean squared reconstruction error of each row: higher = better explained by the axes."""
        return self._apply(lambda model, x: -model._mse(x), self._validated(X))


# ----------------------------------------------------------------------------------------------------------------
# k-means


class KMeans(ClusterMixin, _WholeSetEstimator):
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

    def __init__(
        self,
        n_clusters: int = 8,
        init: str = "k-means++",
        distance: str = "euclidean",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.distance = distance
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        _check_int(self.n_clusters, "n_clusters", 1)
        _check_choice(self.init, "init", _km.INITS)
        _check_choice(self.distance, "distance", _km.DISTANCES)
        _check_int(self.max_iter, "max_iter", 1)
        _check_real(self.tol, "tol", 0.0)
        _check_device_verbose(self)

    def _check_X(self, X: np.ndarray) -> None:
        _km.check_n_clusters(int(self.n_clusters), len(X))

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        self.model_ = _km.KMeans(
            int(self.n_clusters), x.shape[1], self.init, self.distance, float(self.tol), image_shape=None
        ).to(x.device)
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

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centroid of each row (n_samples,)."""
        return self._apply(lambda model, x: model.assign(x)[0], self._validated(X))

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def transform(self, X: Any) -> np.ndarray:
        """Distance of each row to every centroid (n_samples, n_clusters): Euclidean, or ``1 - cos``."""
        return super().transform(X)

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


class SelfOrganizingMap(_WholeSetEstimator):
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

    def __init__(
        self,
        m: int = 10,
        n: int = 10,
        iterations: int = 100,
        sigma: float | None = None,
        eta: float = 0.5,
        mode: str = "batch",
        init: str = "normal",
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.m = m
        self.n = n
        self.iterations = iterations
        self.sigma = sigma
        self.eta = eta
        self.mode = mode
        self.init = init
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        _check_int(self.m, "m", 1)
        _check_int(self.n, "n", 1)
        _check_int(self.iterations, "iterations", 1)
        if self.sigma is not None:
            _check_real(self.sigma, "sigma", 0.0, include_boundaries="neither")
        _check_real(self.eta, "eta", 0.0, include_boundaries="neither")
        _check_choice(self.mode, "mode", _som.MODES)
        _check_choice(self.init, "init", _som.INITS)
        _check_device_verbose(self)

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        sigma = None if self.sigma is None else float(self.sigma)
        self.model_ = _som.SOM(
            int(self.m), int(self.n), x.shape[1], int(self.iterations), sigma, float(self.eta), self.mode, self.init
        ).to(x.device)
        history = self._run_engine(x, int(self.iterations), seed)
        with torch.no_grad():
            errors = self.model_._errors(x)
        self.quantization_error_ = float(errors["quantization_error"].double().mean())
        self.topographic_error_ = float(errors["topographic_error"].double().mean())
        self.weights_ = self.model_.weights.detach().double().cpu().numpy().reshape(int(self.m), int(self.n), -1)
        return history

    def fit(self, X: Any, y: Any = None) -> SelfOrganizingMap:
        """Train the map on X (n_samples, n_features); y is ignored."""
        self._fit(X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Index of the best-matching unit of each row (n_samples,), ``row * n + column``."""
        return self._apply(lambda model, x: model.predict(x), self._validated(X))

    def _encode(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def transform(self, X: Any) -> np.ndarray:
        """Lattice position (row, column) of each row's best-matching unit (n_samples, 2)."""
        return super().transform(X)

    @property
    def _n_features_out(self) -> int:
        return 2

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus each row's quantisation error (Euclidean distance to its best-matching unit)."""
        return self._apply(lambda model, x: -model._errors(x)["quantization_error"], self._validated(X))
