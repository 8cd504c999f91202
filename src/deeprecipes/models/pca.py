"""Principal component analysis by SVD on the device (cookbook 7.1, the ``TF_PCA`` class).

Training is closed-form, not gradient descent: each ``train_step`` adds its batch to exact float64 sums (count,
sum of rows, sum of outer products) that start afresh with every epoch, and refits the principal axes from the SVD
of the scatter matrix they give. Its right singular vectors are those of the (centred) data matrix and its singular
values their squares, so any batch size gives the PCA of the whole training set. Components are signed as
scikit-learn signs them (the largest entry of each is positive).

The cookbook's own code does not centre the data (``center=False``) and picks the number of components with
``keep_info``: the first k whose cumulative share of the *singular values* (not their squares) reaches it; with
``keep_info=0.1`` it reduced MNIST's (55000, 784) training images to (55000, 3). ``reference_metrics`` reports that k
(``keep_info_components``) next to the explained variance of the components kept.

Evaluation reports the per-sample reconstruction error ``mse`` (mean over features of ``(x - decode(encode(x)))^2``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import Probability, check_arguments
from ..registry import register_model
from ..viz import pyplot, save_code_scatter, save_figure
from .base import Batch, Model
from .kmeans import image_shape_of

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["PCA", "keep_info_components"]


def keep_info_components(singular_values: torch.Tensor, keep_info: float) -> int:
    """The cookbook's rule: the first k with ``cumsum(s / sum(s))[k-1] >= keep_info`` (s: singular values)."""
    s = singular_values.double()
    share = torch.cumsum(s / s.sum(), 0)
    bound = torch.tensor(keep_info - 1e-12, dtype=share.dtype, device=share.device)  # searchsorted: one device
    return int(torch.searchsorted(share, bound).item()) + 1


@register_model("pca")
class PCA(Model):
    """Linear projection on the top principal axes.

    Registered as ``pca``: PCA by SVD (cookbook 7.1: MNIST, no centring, keep_info 0.1 -> 3 components).

    Parameters
    ----------
    n_features : int
        Width of a row (images are flattened).
    n_components : int
        Axes kept.
    center : bool
        Subtract the training mean first (PCA proper); the cookbook's code did not.
    keep_info : float
        When > 0, ``reference_metrics`` also reports how many components the cookbook's rule keeps.
    image_shape : list of int, optional
        Shape of one row as an image, for pictures (default: square rows of 64+ pixels).
    """

    def __init__(
        self,
        n_features: int = 784,
        n_components: int = 2,
        center: bool = True,
        keep_info: Probability = 0.0,
        image_shape: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_arguments(PCA.__init__, locals())
        if not 1 <= n_components <= n_features:
            raise ConfigError(
                f"model 'pca' n_components must be between 1 and n_features = {n_features}, got {n_components}"
            )
        self.n_features, self.n_components, self.center, self.keep_info = n_features, n_components, center, keep_info
        self.image_shape = image_shape_of(n_features, image_shape)
        # zeros until fitted: the untrained model reconstructs every row as 0
        self.components = nn.Parameter(torch.zeros(n_components, n_features))  # (k, d), rows orthonormal
        self.mean = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("singular_values", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("n_samples", torch.zeros((), dtype=torch.float64))
        self.register_buffer("_sum", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("_outer", torch.zeros(n_features, n_features, dtype=torch.float64))

    # -- the maths --------------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates on the principal axes (n, n_components)."""
        return (x.reshape(len(x), -1) - self.mean) @ self.components.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Rows (n, n_features) back from their coordinates (n, n_components)."""
        return z @ self.components + self.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of each row from its top components (n, n_features)."""
        return self.decode(self.encode(x))

    def reconstruction_mse(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error of each row (n,)."""
        x = x.reshape(len(x), -1)
        return (self(x) - x).pow(2).mean(1)

    @property
    def explained_variance(self) -> torch.Tensor:
        """Variance along every axis, largest first (n_features,): squared singular values over n - 1."""
        return self.singular_values.pow(2) / (self.n_samples - 1).clamp_min(1)

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """Share of the total (squared singular values) on every axis (n_features,)."""
        s2 = self.singular_values.pow(2)
        return s2 / s2.sum().clamp_min(1e-300)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor, reset: bool = False) -> None:
        """Add rows x (n, d) to the running sums (first emptied when ``reset``) and refit the axes from them."""
        x = x.reshape(len(x), -1).double()
        if reset:
            self.n_samples.zero_()
            self._sum.zero_()
            self._outer.zero_()
        self.n_samples += len(x)
        self._sum += x.sum(0)
        self._outer += x.T @ x
        mean = self._sum / self.n_samples if self.center else torch.zeros_like(self._sum)
        scatter = self._outer - self.n_samples * torch.outer(mean, mean)
        scatter = (scatter + scatter.T) / 2
        u, s, _ = torch.linalg.svd(scatter)  # symmetric PSD: u holds the right singular vectors of the data
        comps = u[:, : self.n_components].T  # (k, d)
        rows = torch.arange(self.n_components, device=comps.device)
        signs = torch.sign(comps[rows, comps.abs().argmax(1)])
        comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)[:, None]
        self.singular_values.copy_(s.clamp_min(0).sqrt())
        self.components.copy_(comps)
        self.mean.copy_(mean)

    # -- engine hooks -----------------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor) -> None:
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.n_features:
            raise ConfigError(f"model 'pca' has n_features = {self.n_features}, but the data rows have {x.shape[1]}")
        if len(x) < 2:
            raise ConfigError(f"model 'pca' needs at least 2 training samples, got {len(x)} sample")

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean squared reconstruction error (differentiable in components and mean)."""
        return self.reconstruction_mse(batch[0]).mean(), {}

    def configure_optimizers(self) -> dict[str, list[dict[str, Any]]]:
        """None: the components come from the covariance, not by gradient steps."""
        return {}

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        x = batch[0]
        self.partial_fit(x, reset=engine.batch == 0)
        with torch.no_grad():
            kept = self.explained_variance_ratio[: self.n_components].sum().float()
            return {"loss": self.reconstruction_mse(x).mean(), "explained_variance_ratio": kept}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"mse": self.reconstruction_mse(batch[0])}

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """Explained variance ratio of the kept axes (training data), the share of the test set's variance around
        the training mean that the reconstruction keeps, and the cookbook's ``keep_info`` count."""
        out = {
            "n_components": float(self.n_components),
            "explained_variance_ratio": float(self.explained_variance_ratio[: self.n_components].sum()),
        }
        if self.keep_info > 0:
            out["keep_info_components"] = float(keep_info_components(self.singular_values, self.keep_info))
        test = getattr(data, "test", None)
        if test is not None:
            dev = self.components.device
            sse = sst = 0.0
            for i in range(0, len(test.x), 10000):
                x = test.x[i : i + 10000].reshape(-1, self.n_features).to(dev)
                sse += float((self(x) - x).double().pow(2).sum())
                sst += float((x - self.mean).double().pow(2).sum())
            out["test_explained_variance"] = 1.0 - sse / sst if sst > 0 else float("nan")
        return out

    # -- pictures ---------------------------------------------------------------------------------------------------
    def weight_images(self) -> dict[str, torch.Tensor]:
        if self.image_shape is None:
            return {}
        return {"components": self.components.detach()[:100].reshape(-1, *self.image_shape)}

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.image_shape is None:
            return {}
        x = batch[0][:10].reshape(-1, self.n_features)
        return {
            "original": x.reshape(-1, *self.image_shape),
            "reconstructed": self(x).clamp(0, 1).reshape(-1, *self.image_shape),
        }

    @torch.no_grad()
    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """The test set on the first two axes coloured by label (``pca-2d.png``) and the explained variance of the
        first 50 axes with its running total (``explained-variance.png``)."""
        written = []
        test = getattr(data, "test", None)
        if test is not None and self.n_components >= 2:
            z = torch.cat(
                [
                    self.encode(test.x[i : i + 10000].to(self.components.device)).cpu()
                    for i in range(0, len(test.x), 10000)
                ]
            )
            labels = test.y if test.y is not None and not test.y.is_floating_point() else None
            written.append(
                save_code_scatter(z[:, :2], labels, fig_dir / "pca-2d.png", title=f"{title}: test set, first 2 axes")
            )
        plt = pyplot()
        ratio = self.explained_variance_ratio[:50].cpu().numpy()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ks = range(1, len(ratio) + 1)
        ax.bar(ks, ratio, color="tab:blue", label="per axis")
        ax.plot(ks, ratio.cumsum(), color="tab:orange", marker=".", label="cumulative")
        ax.axvline(self.n_components + 0.5, color="grey", ls="--", lw=1)
        ax.set_xlabel("principal axis")
        ax.set_ylabel("explained variance ratio")
        ax.set_title(f"{title}: explained variance")
        ax.legend()
        ax.grid(alpha=0.3)
        written.append(save_figure(fig, fig_dir / "explained-variance.png"))
        return written
