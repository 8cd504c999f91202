"""Self-organising map (Kohonen), vectorised on the device: the cookbook's ``WTU`` class (7.3).

An ``m x n`` lattice of prototype vectors (the weights, ``(m*n, dim)``, drawn N(0, 1) as ``tf.random_normal``).
Iteration t of ``iterations`` (one training epoch) shrinks the learning rate and the neighbourhood radius linearly,
``eta_t = eta * (1 - t/T)`` and ``sigma_t = sigma * (1 - t/T)``; the neighbourhood of the winning unit b is the
cookbook code's ``exp(-|r_j - r_b|^2 / sigma_t^2)`` over lattice positions r (no factor 2, unlike the book's formula).

``mode="online"`` is the book's update, one sample after another: ``W_j += eta_t * h_bj * (x - W_j)``, each step
vectorised over all units. ``mode="batch"`` updates once per batch: every unit moves a fraction ``eta_t`` of the way
to its neighbourhood-weighted mean of the batch, ``sum_i h_{b(i)j} x_i / sum_i h_{b(i)j}`` (with ``eta = 1`` this is
Kohonen's batch map), so a whole data set costs one matrix product per iteration.

Evaluation reports per sample the ``quantization_error`` (Euclidean distance to the best-matching unit), ``mse``
(its square over the features) and the ``topographic_error`` (1 when the best and second-best units are not
lattice neighbours, 8-neighbourhood, as MiniSom). Pictures: the U-matrix, the colour grid for 3-feature data (with
the training rows' names at their units, the book's "Color Grid SOM"), prototype tiles for images.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import OneOf, Positive, PositiveInt, check_arguments, choices
from ..registry import register_model
from ..viz import pyplot, save_figure, save_tiles
from .base import Batch, Model
from .kmeans import image_shape_of, majority_labels, sq_distances

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["SOM", "MODES", "INITS"]

Mode = Annotated[str, OneOf("online", "batch")]
Init = Annotated[str, OneOf("normal", "uniform")]
MODES, INITS = choices(Mode), choices(Init)


@register_model("som")
class SOM(Model):
    """Kohonen self-organising map on an ``m x n`` lattice.

    Registered as ``som`` (cookbook 7.3: 30 x 30, 400 iterations, sigma 10, eta 0.5, online, on colours).

    Parameters
    ----------
    m, n : int
        Lattice rows and columns.
    n_features : int
        Width of a row (images are flattened).
    iterations : int
        Length of the decay schedule T (the book's ``num_iterations``); iteration t is the engine's epoch.
    sigma : float, optional
        Starting neighbourhood radius (default ``max(m, n) / 2``, as the book).
    eta : float
        Starting learning rate (book: 0.5).
    mode : {"online", "batch"}
    init : {"normal", "uniform"}
        Starting prototypes: N(0, 1) (book) or U[0, 1).
    image_shape : list of int, optional
        Shape of one row as an image, for the prototype picture (default: square rows of 64+ pixels).
    """

    def __init__(
        self,
        m: PositiveInt = 30,
        n: PositiveInt = 30,
        n_features: PositiveInt = 3,
        iterations: PositiveInt = 400,
        sigma: Positive | None = None,
        eta: Positive = 0.5,
        mode: Mode = "online",
        init: Init = "normal",
        image_shape: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_arguments(SOM.__init__, locals())
        sigma = max(m, n) / 2.0 if sigma is None else sigma
        self.m, self.n, self.n_features, self.iterations = m, n, n_features, iterations
        self.sigma, self.eta, self.mode, self.init = float(sigma), float(eta), mode, init
        self.image_shape = image_shape_of(n_features, image_shape)
        w = torch.randn(m * n, n_features) if init == "normal" else torch.rand(m * n, n_features)
        self.weights = nn.Parameter(w)  # (m*n, dim), unit j at lattice row j // n, column j % n
        rows, cols = torch.meshgrid(torch.arange(m), torch.arange(n), indexing="ij")
        loc = torch.stack([rows.reshape(-1), cols.reshape(-1)], 1).float()
        self.register_buffer("locations", loc, persistent=False)  # (m*n, 2)
        self.register_buffer("lattice_d2", (loc[:, None] - loc[None]).pow(2).sum(-1), persistent=False)  # (m*n, m*n)

    # -- the maths --------------------------------------------------------------------------------------------------
    def schedule(self, t: int) -> tuple[float, float]:
        """(eta_t, sigma_t) at iteration t: linear decay ``1 - t/T`` (t past the end counts as the last one)."""
        frac = 1.0 - min(max(t, 0), self.iterations - 1) / self.iterations
        return self.eta * frac, self.sigma * frac

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).to(self.weights.dtype)

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distances (n, m*n) from each row to every prototype."""
        return sq_distances(self._flat(x), self.weights)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the best-matching unit of each row (n,)."""
        return self.distances(x).argmin(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lattice position (row, column) of each row's best-matching unit (n, 2), as floats."""
        return self.locations[self.distances(x).argmin(1)]

    @torch.no_grad()
    def online_step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The book's update, sample by sample (each vectorised over the units); returns the batch's mean squared
        quantisation error per feature before the updates."""
        eta, sigma = self.schedule(t)
        w = self.weights
        before = self.distances(x).min(1).values.mean() / self.n_features
        for row in self._flat(x):
            bmu = int((w - row).pow(2).sum(1).argmin())
            h = torch.exp(-self.lattice_d2[bmu] / sigma**2)
            w.add_(eta * h[:, None] * (row - w))
        return before

    @torch.no_grad()
    def batch_step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """One batch update: every unit moves eta_t of the way to its neighbourhood-weighted mean of x; returns the
        batch's mean squared quantisation error per feature before the update."""
        eta, sigma = self.schedule(t)
        x = self._flat(x)
        q2, bmu = self.distances(x).min(1)
        sums = torch.zeros_like(self.weights).index_add_(0, bmu, x)  # (units, dim)
        hits = torch.bincount(bmu, minlength=len(self.weights)).to(x.dtype)
        h = torch.exp(-self.lattice_d2 / sigma**2)  # (units, units), symmetric
        num, den = h @ sums, h @ hits
        moved = den > 1e-12
        target = num / den.clamp_min(1e-12)[:, None]
        self.weights.add_(torch.where(moved[:, None], eta * (target - self.weights), 0.0))
        return q2.mean() / self.n_features

    def errors(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per row: ``quantization_error`` (distance to the best-matching unit), ``mse`` (its square per feature)
        and ``topographic_error`` (1 when the two best units are not lattice neighbours)."""
        d2 = self.distances(x)
        two = d2.topk(min(2, d2.shape[1]), dim=1, largest=False)
        q2 = two.values[:, 0]
        if d2.shape[1] > 1:
            gap = (self.locations[two.indices[:, 0]] - self.locations[two.indices[:, 1]]).abs().amax(1)
            topo = (gap > 1).float()
        else:
            topo = torch.zeros_like(q2)
        return {"quantization_error": q2.sqrt(), "mse": q2 / self.n_features, "topographic_error": topo}

    # -- engine hooks -----------------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor) -> None:
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.n_features:
            raise ConfigError(f"model 'som' has n_features = {self.n_features}, but the data rows have {x.shape[1]}")

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean squared quantisation error (differentiable in the prototypes)."""
        return self.distances(batch[0]).min(1).values.mean() / self.n_features, {}

    def configure_optimizers(self) -> dict[str, list[dict[str, Any]]]:
        """None: the prototypes move by the SOM update rule, not by gradient steps."""
        return {}

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        t = engine.epoch
        step = self.online_step if self.mode == "online" else self.batch_step
        loss = step(batch[0], t)  # before the update
        eta, sigma = self.schedule(t)
        # on the loss's device: the engine stacks every logged scalar into one tensor
        dev = loss.device
        return {"loss": loss, "eta": torch.tensor(eta, device=dev), "sigma": torch.tensor(sigma, device=dev)}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.errors(batch[0])

    @torch.no_grad()
    def _bmus(self, x: torch.Tensor, chunk: int = 10000) -> torch.Tensor:
        dev = self.weights.device
        return torch.cat([self.predict(x[i : i + chunk].to(dev)).cpu() for i in range(0, len(x), chunk)])

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """With class labels that repeat (MNIST, not one row per colour): the test accuracy of labelling each unit
        with the most frequent training label among the rows it wins (units that win none take the label of the
        nearest unit that does)."""
        train, test = getattr(data, "train", None), getattr(data, "test", None)
        if train is None or test is None or train.y is None or test.y is None or train.y.is_floating_point():
            return {}
        y = train.y.long().cpu()
        if len(torch.unique(y)) == len(y):
            return {}
        labels = majority_labels(self._bmus(train.x), y, len(self.weights))
        won = labels >= 0
        if not won.all():  # the nearest winning unit on the lattice lends its label
            d = self.lattice_d2.cpu().clone()
            d[:, ~won] = float("inf")
            labels = labels[d.argmin(1)]
        return {"test_accuracy": float((labels[self._bmus(test.x)] == test.y.long().cpu()).double().mean())}

    # -- pictures ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def u_matrix(self) -> torch.Tensor:
        """Mean distance of every unit's prototype to those of its (up to 8) lattice neighbours, (m, n)."""
        w = self.weights.detach().float()
        dist = sq_distances(w, w).sqrt()
        gap = torch.cdist(self.locations, self.locations, p=float("inf"))
        near = (gap > 0) & (gap <= 1)
        return ((dist * near).sum(1) / near.sum(1).clamp_min(1)).reshape(self.m, self.n).cpu()

    @torch.no_grad()
    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``u-matrix.png``; ``color-grid.png`` for 3 features (names of the training rows at their units);
        ``prototypes.png`` for image rows."""
        plt = pyplot()
        written = []
        fig, ax = plt.subplots(figsize=(6, 5.5))
        im = ax.imshow(self.u_matrix().numpy(), cmap="bone_r")
        fig.colorbar(im, ax=ax, shrink=0.8, label="mean distance to neighbours")
        ax.set_title(f"{title}: U-matrix")
        written.append(save_figure(fig, fig_dir / "u-matrix.png"))
        if self.n_features == 3:
            grid = self.weights.detach().float().cpu().reshape(self.m, self.n, 3).clamp(0, 1)
            fig, ax = plt.subplots(figsize=(7, 7))
            ax.imshow(grid.numpy())
            train = getattr(data, "train", None)
            names = list(getattr(data, "meta", {}).get("classes", []))
            if train is not None and train.y is not None and names and len(train.x) <= 200:
                bmus = self._bmus(train.x)
                for b, label in zip(bmus.tolist(), train.y.tolist(), strict=True):
                    r, c = divmod(b, self.n)
                    ax.text(c, r, names[int(label)], ha="center", va="center", fontsize=7,
                            bbox={"facecolor": "white", "alpha": 0.5, "lw": 0})  # fmt: skip
            ax.set_title(f"{title}: Color Grid SOM")
            ax.axis("off")
            written.append(save_figure(fig, fig_dir / "color-grid.png"))
        if self.image_shape is not None:
            protos = self.weights.detach().reshape(-1, *self.image_shape)
            written.append(save_tiles(protos, fig_dir / "prototypes.png", title=f"{title}: prototypes", ncols=self.n))
        return written
