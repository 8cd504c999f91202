"""k-means clustering on the device: k-means++ seeding and Lloyd iterations (cookbook 7.2; TF example k = 25).

The centroids are the model's one parameter. Training does not use gradients: each ``train_step`` is one Lloyd
iteration on its batch (assign every row to its nearest centroid, move each centroid to the mean of its rows), so
with the whole training set as one batch an epoch is exactly one Lloyd iteration. The very first step seeds the
centroids with greedy k-means++ (Arthur & Vassilvitskii 2007, with scikit-learn's ``2 + ln k`` local trials) or with
k distinct random rows (TensorFlow's ``RANDOM_INIT``). ``distance="cosine"`` is spherical k-means (rows and centroids
on the unit sphere; the distance is ``1 - cos``), as the TensorFlow MNIST example (``distance_metric='cosine'``).

Evaluation reports per sample ``distance`` (Euclidean distance, or ``1 - cos``, to the nearest centroid: the TF
example's "Avg Distance") and ``inertia`` (its squared Euclidean distance in the space clustered). At the end of a
run ``reference_metrics`` adds the inertia totals, the adjusted Rand index against the labels, and the
majority-label accuracy (each cluster takes the most frequent training label of its members).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import NonNegative, OneOf, PositiveInt, check_arguments, choices
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Batch, Model

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = [
    "KMeans",
    "kmeans_plus_plus",
    "check_n_clusters",
    "adjusted_rand_index",
    "majority_labels",
    "sq_distances",
    "image_shape_of",
]

Init = Annotated[str, OneOf("k-means++", "random")]
Distance = Annotated[str, OneOf("euclidean", "cosine")]
INITS, DISTANCES = choices(Init), choices(Distance)


# ----------------------------------------------------------------------------------------------------------------
# helpers shared with the PCA and SOM models


def image_shape_of(n_features: int, image_shape: list[int] | tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The image shape of one row: as given when it fits ``n_features``, else square rows of 64+ pixels, else None."""
    if image_shape:
        return tuple(image_shape) if math.prod(image_shape) == n_features else None
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features and n_features >= 64 else None


def sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, k) between rows of x (n, d) and c (k, d), by one matrix product."""
    d2 = x.pow(2).sum(1, keepdim=True) - 2.0 * (x @ c.T) + c.pow(2).sum(1)
    return d2.clamp_min_(0.0)


def check_n_clusters(k: int, n: int, what: str = "n_clusters") -> None:
    """One clear line when there are fewer samples than clusters (a ConfigError, which is a ValueError)."""
    if k > n:
        raise ConfigError(
            f"{what} = {k} is larger than the number of samples to cluster ({n} sample{'' if n == 1 else 's'}); "
            f"use at most {n} clusters or more data"
        )


def kmeans_plus_plus(x: torch.Tensor, k: int, n_local_trials: int | None = None) -> torch.Tensor:
    """Greedy k-means++ seeding: k rows of x (n, d), each drawn with probability proportional to its squared distance
    to the nearest centre so far; of ``n_local_trials`` candidates (default ``2 + int(ln k)``) the one that lowers the
    total most is kept. Uses the global torch generator. Returns (k, d)."""
    n = len(x)
    check_n_clusters(k, n)
    trials = n_local_trials or 2 + int(math.log(k))
    centers = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    first = int(torch.randint(n, (1,)).item())
    centers[0] = x[first]
    closest = sq_distances(x, x[first : first + 1])[:, 0].double()  # (n,)
    for c in range(1, k):
        pot = closest.sum()
        if pot <= 0:  # fewer distinct rows than clusters: any row will do
            cand = torch.randint(n, (trials,), device=x.device)
        else:
            r = torch.rand(trials, dtype=torch.float64, device=x.device) * pot
            cand = torch.searchsorted(torch.cumsum(closest, 0), r).clamp_max_(n - 1)
        new = torch.minimum(closest[None], sq_distances(x[cand], x).double())  # (trials, n)
        best = int(new.sum(1).argmin().item())
        closest = new[best]
        centers[c] = x[cand[best]]
    return centers


def adjusted_rand_index(a: torch.Tensor, b: torch.Tensor) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) of two labelings of the same rows, from their contingency table."""
    a = torch.unique(a.cpu(), return_inverse=True)[1]
    b = torch.unique(b.cpu(), return_inverse=True)[1]
    n = len(a)
    if n < 2:
        return 1.0
    nb = int(b.max()) + 1
    table = torch.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb).double()

    def pairs(t: torch.Tensor) -> torch.Tensor:
        return (t * (t - 1) / 2).sum()

    index = pairs(table)
    rows = pairs(table.reshape(-1, nb).sum(1))
    cols = pairs(table.reshape(-1, nb).sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if maximum == expected:  # both labelings trivial (one cluster each, or all singletons)
        return 1.0
    return float((index - expected) / (maximum - expected))


def majority_labels(assign: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The most frequent label of each of k clusters (-1 for a cluster with no rows); assign, y: (n,) int."""
    n_classes = int(y.max()) + 1
    counts = torch.bincount(assign * n_classes + y, minlength=k * n_classes).reshape(k, n_classes)
    return torch.where(counts.sum(1) > 0, counts.argmax(1), torch.full((k,), -1, device=counts.device))


# ----------------------------------------------------------------------------------------------------------------
# the model


@register_model("kmeans")
class KMeans(Model):
    """k-means with k-means++ (or random) seeding; Lloyd iterations as training steps.

    Registered as ``kmeans`` (cookbook 7.2: k = 3 on iris; TF example: k = 25, cosine distance, on MNIST).

    Parameters
    ----------
    n_clusters : int
        k.
    n_features : int
        Width of a row; images are flattened.
    init : {"k-means++", "random"}
    distance : {"euclidean", "cosine"}
        ``cosine`` clusters the rows scaled to unit length (spherical k-means).
    tol : float
        Stop training (``engine.should_stop``) once the centroids move less than ``tol`` times the mean feature
        variance of the batch (squared shift summed over centroids, scikit-learn's rule); 0 = never.
    image_shape : list of int, optional
        Shape of one row as an image, for the centroid pictures (default: square rows of 64+ pixels).
    """

    def __init__(
        self,
        n_clusters: PositiveInt = 8,
        n_features: PositiveInt = 784,
        init: Init = "k-means++",
        distance: Distance = "euclidean",
        tol: NonNegative = 0.0,
        image_shape: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_arguments(KMeans.__init__, locals())
        self.n_clusters, self.n_features = n_clusters, n_features
        self.init, self.distance, self.tol = init, distance, tol
        self.image_shape = image_shape_of(n_features, image_shape)
        # all zeros until the first training step seeds them: the untrained model's distance is |x| (or 1 - 0)
        self.centroids = nn.Parameter(torch.zeros(n_clusters, n_features))
        self.register_buffer("n_iter", torch.zeros((), dtype=torch.long))

    # -- the maths --------------------------------------------------------------------------------------------------
    def _space(self, x: torch.Tensor) -> torch.Tensor:
        """Rows as clustered: flattened, and scaled to unit length for the cosine distance."""
        x = x.reshape(len(x), -1).to(self.centroids.dtype)
        return nn.functional.normalize(x, dim=1) if self.distance == "cosine" else x

    def assign(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest centroid of each row: (index (n,), squared distance (n,)) in the clustered space."""
        d2 = sq_distances(self._space(x), self.centroids)
        best, idx = d2.min(1)
        return idx, best

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster index of each row (n,)."""
        return self.assign(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Distances (n, k) from each row to every centroid (Euclidean, or ``1 - cos``)."""
        z = self._space(x)
        if self.distance == "cosine":
            return 1.0 - z @ self.centroids.T
        return sq_distances(z, self.centroids).sqrt()

    def _distance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance, inertia) of each row to its nearest centroid."""
        z = self._space(x)
        if self.distance == "cosine":
            cos = (z @ self.centroids.T).max(1).values
            return 1.0 - cos, sq_distances(z, self.centroids).min(1).values
        d2 = sq_distances(z, self.centroids).min(1).values
        return d2.sqrt(), d2

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean squared distance to the nearest centroid (the k-means objective; differentiable in the centroids)."""
        z = self._space(batch[0])
        return sq_distances(z, self.centroids).min(1).values.mean(), {}

    @torch.no_grad()
    def seed(self, x: torch.Tensor) -> None:
        """Set the starting centroids from rows of x (k-means++ or k random distinct rows)."""
        z = self._space(x)
        check_n_clusters(self.n_clusters, len(z))
        if self.init == "k-means++":
            c = kmeans_plus_plus(z, self.n_clusters)
        else:
            c = z[torch.randperm(len(z), device=z.device)[: self.n_clusters]]
        self.centroids.copy_(c)

    @torch.no_grad()
    def lloyd_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One Lloyd iteration on x: returns (mean inertia before the move, squared centroid shift). A centroid
        with no rows stays where it is."""
        z = self._space(x)
        d2, idx = sq_distances(z, self.centroids).min(1)
        sums = torch.zeros_like(self.centroids).index_add_(0, idx, z)
        counts = torch.bincount(idx, minlength=self.n_clusters).to(z.dtype)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], self.centroids)
        if self.distance == "cosine":
            new = nn.functional.normalize(new, dim=1)
        shift = (new - self.centroids).pow(2).sum()
        self.centroids.copy_(new)
        self.n_iter += 1
        return d2.mean(), shift

    # -- engine hooks -----------------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor) -> None:
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.n_features:
            raise ConfigError(f"model 'kmeans' has n_features = {self.n_features}, but the data rows have {x.shape[1]}")
        check_n_clusters(self.n_clusters, len(x), "model 'kmeans' n_clusters")

    def configure_optimizers(self) -> dict[str, list[dict[str, Any]]]:
        """None: the centroids move by Lloyd's update, not by gradient steps."""
        return {}

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        x = batch[0]
        if int(self.n_iter) == 0:
            self.seed(x)
        inertia, shift = self.lloyd_step(x)
        if self.tol > 0:
            z = self._space(x)
            if shift <= self.tol * z.var(0).mean():
                engine.should_stop, engine.stop_reason = True, f"converged: centroids moved {float(shift):.3g}"
        return {"loss": inertia, "shift": shift}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        distance, inertia = self._distance(batch[0])
        return {"distance": distance, "inertia": inertia}

    @torch.no_grad()
    def _assign_all(self, x: torch.Tensor, chunk: int = 10000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cluster index, distance, inertia) of every row, in chunks, on the model's device."""
        dev = self.centroids.device
        parts = [
            (self.assign(x[i : i + chunk].to(dev))[0], *self._distance(x[i : i + chunk].to(dev)))
            for i in range(0, len(x), chunk)
        ]
        return tuple(torch.cat([p[j] for p in parts]) for j in range(3))  # type: ignore[return-value]

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """Inertia totals (train, test), mean training distance, and against integer labels the adjusted Rand index
        and majority-label accuracy on the test split (cluster labels taken from the training split)."""
        out: dict[str, float] = {}
        train, test = getattr(data, "train", None), getattr(data, "test", None)
        if train is None or test is None:
            return out
        tr_idx, tr_dist, tr_in = self._assign_all(train.x)
        te_idx, _, te_in = self._assign_all(test.x)
        out["train_inertia_total"] = float(tr_in.double().sum())
        out["test_inertia_total"] = float(te_in.double().sum())
        out["train_distance"] = float(tr_dist.double().mean())
        if train.y is not None and test.y is not None and not train.y.is_floating_point() and train.y.ndim == 1:
            labels = majority_labels(tr_idx.cpu(), train.y.long().cpu(), self.n_clusters)
            out["test_accuracy"] = float((labels[te_idx.cpu()] == test.y.long().cpu()).double().mean())
            out["test_ari"] = adjusted_rand_index(te_idx, test.y)
            out["train_ari"] = adjusted_rand_index(tr_idx, train.y)
        return out

    # -- pictures ---------------------------------------------------------------------------------------------------
    def weight_images(self) -> dict[str, torch.Tensor]:
        if self.image_shape is None:
            return {}
        return {"centroids": self.centroids.detach().reshape(-1, *self.image_shape)}

    @torch.no_grad()
    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """For narrow rows (tabular data): the test rows in their first two features coloured by cluster, centroids
        as '+' (the cookbook's plot), and the elbow curve (training inertia for k = 1..10)."""
        test = getattr(data, "test", None)
        if test is None or self.n_features > 20 or self.distance != "euclidean":
            return []
        plt = pyplot()
        written = []
        x = test.x.reshape(len(test.x), -1).float()
        idx = self.predict(x.to(self.centroids.device)).cpu()
        names = list(data.meta.get("feature_names", [])) or ["feature 1", "feature 2"]
        if self.n_features >= 2:
            fig, ax = plt.subplots(figsize=(6, 5))
            ax.scatter(x[:, 0], x[:, 1], c=idx, cmap="brg", s=20, alpha=0.8)
            c = self.centroids.detach().cpu()
            ax.scatter(c[:, 0], c[:, 1], marker="+", s=400, c="black")
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1] if len(names) > 1 else "feature 2")
            ax.set_title(f"{title}: test rows by cluster, centroids +")
            written.append(save_figure(fig, fig_dir / "clusters.png"))
        train = data.train.x.reshape(len(data.train.x), -1).float()
        if len(train) * self.n_features <= 200_000:
            ks = list(range(1, min(10, len(train)) + 1))
            sse = []
            state = torch.get_rng_state()
            torch.manual_seed(0)
            for k in ks:
                m = KMeans(k, self.n_features, self.init, "euclidean")
                m.seed(train)
                for _ in range(100):
                    _, shift = m.lloyd_step(train)
                    if shift == 0:
                        break
                sse.append(float(m._distance(train)[1].double().sum()))
            torch.set_rng_state(state)
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ax.plot(ks, sse, marker="o")
            ax.axvline(self.n_clusters, color="grey", ls="--", lw=1)
            ax.set_xlabel("k")
            ax.set_ylabel("training inertia (SSE)")
            ax.set_title(f"{title}: elbow")
            ax.grid(alpha=0.3)
            written.append(save_figure(fig, fig_dir / "elbow.png"))
        return written
