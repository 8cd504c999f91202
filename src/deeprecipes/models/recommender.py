"""Collaborative filtering with an RBM (cookbook 7.5): each user is a visible vector over all items, the ratings
scaled to (0, 1] and the missing ones left out of the visible layer; the reconstruction scores every item.

    data = create_dataset("ratings-synthetic")          # x: users' training ratings / 5, 0 = missing
    model = create_model("rbm-recommender", n_items=500, n_hidden=20)
    ... train with a recipe ...
    items, scores = model.recommend(data.test.x, n=10)  # the top 10 items each user has not rated yet

Training is contrastive divergence on the registered ``rbm`` block (:mod:`deeprecipes.models.rbm`) with the missing
ratings masked: they are 0 in the data vector, so they add nothing to p(h|v), and the negative sample is masked the
same way, so the visible units of unrated items get no gradient (Salakhutdinov, Mnih & Hinton 2007 leave them out of
the model for that user altogether).

Evaluation on held-out ratings (``y``, same layout): ``mse`` per user on the (0, 1] scale during training; at the end
``*_rmse`` in rating units, ``*_precision_at_10`` (of the 10 unrated items ranked highest, the fraction the user
rated at least ``liked`` in the held-out part, over users with such an item) and the same for two baselines: each
item's mean training rating (``*_item_mean_rmse``) and ranking by popularity, the number of training ratings
(``*_popularity_precision_at_10``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch.nn import functional as F

from ..errors import ConfigError
from ..params import OneOf, PositiveInt, check_arguments
from ..registry import create_model, register_model
from .base import Batch, Model

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["RBMRecommender", "precision_at_n"]


def precision_at_n(scores: torch.Tensor, seen: torch.Tensor, liked: torch.Tensor, n: int = 10) -> torch.Tensor:
    """Per user: the fraction of the ``n`` best-scored unseen items that are ``liked``; NaN for users with no liked
    item (they are left out of averages).

    Parameters
    ----------
    scores : Tensor, shape (users, items)
    seen, liked : Tensor of bool, shape (users, items)
        Items excluded from the ranking (already rated); held-out items rated highly.
    """
    ranked = scores.masked_fill(seen, float("-inf")).topk(min(n, scores.shape[1]), dim=1).indices
    hits = liked.gather(1, ranked).float().sum(1) / n
    return torch.where(liked.any(1), hits, torch.full_like(hits, float("nan")))


@register_model("rbm-recommender")
class RBMRecommender(Model):
    """An RBM over items whose visible vector is one user's ratings, with missing ratings masked out.

    Registered as ``rbm-recommender``: cookbook 7.5, an RBM of ``n_items`` visible units (3883 MovieLens movies)
    and 20 hidden units over each user's ratings, missing ratings masked; recommends the best-scored unrated items.

    Parameters
    ----------
    n_items, n_hidden : int
        Visible units (one per item) and hidden units (cookbook: 3883 movies, 20).
    k : int
        Gibbs steps of contrastive divergence.
    scale : [lowest, highest], optional
        The rating scale (default 1 to 5); the data hold ``rating / highest``.
    liked : float
        A held-out rating at least this high (rating units) counts as relevant for precision@10.
    top_n : int
        Length of the recommendation list that precision is measured on.
    negative : {"sample", "mean"}
        The negative phase's visible units: Bernoulli samples of the reconstruction (the cookbook's RBM) or the
        reconstruction probabilities.
    rbm_args : dict
        More arguments of the ``rbm`` block (``init``, ``init_std``, ``sum_hidden_term``: the cookbook's RBM draws
        N(0, 1) weights and sums the free energy's hidden term over the batch).
    """

    def __init__(
        self,
        n_items: PositiveInt = 3883,
        n_hidden: PositiveInt = 20,
        *,
        k: PositiveInt = 1,
        scale: list[float] | None = None,
        liked: float = 4.0,
        top_n: PositiveInt = 10,
        negative: Annotated[str, OneOf("sample", "mean")] = "sample",
        rbm_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_arguments(RBMRecommender.__init__, locals())
        scale = tuple(scale or (1, 5))
        if len(scale) != 2 or not 0 < scale[0] < scale[1]:
            raise ConfigError(f"model.scale must be [lowest, highest] with 0 < lowest < highest, got {list(scale)}")
        if not scale[0] <= liked <= scale[1]:
            raise ConfigError(f"model.liked must lie on the rating scale {scale[0]:g}..{scale[1]:g}, got {liked}")
        args = {"ais_betas": 0, "image_shape": [], **(rbm_args or {})}
        if args.get("visible", "bernoulli") != "bernoulli" or args.get("persistent", False):
            raise ConfigError("model.rbm_args: the recommender needs Bernoulli visible units and plain CD-k")
        self.rbm = create_model("rbm", n_visible=n_items, n_hidden=n_hidden, k=k, **args)
        self.n_items, self.n_hidden, self.k = n_items, n_hidden, k
        self.scale = (float(scale[0]), float(scale[1]))
        self.liked, self.top_n, self.negative = float(liked), top_n, negative
        self.sum_hidden_term = bool(args.get("sum_hidden_term", False))
        # baselines, fitted on the training ratings by prepare_data (saved with the weights)
        self.register_buffer("item_mean", torch.full((n_items,), sum(self.scale) / 2))
        self.register_buffer("item_count", torch.zeros(n_items))

    # -- scoring --------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores in (0, 1) for every item, shape (users, n_items): the mean-field reconstruction of ``x``."""
        return self.rbm.decode(self.rbm.encode(x))

    def predict_ratings(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted ratings on the rating scale, shape (users, n_items)."""
        lo, hi = self.scale
        return (self(x) * hi).clamp(lo, hi)

    @torch.no_grad()
    def recommend(self, x: torch.Tensor, n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n`` best-scored items each user has not rated in ``x``: (item indices, scores), each (users, n)."""
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        scores = self(x).masked_fill(x > 0, float("-inf"))
        top = scores.topk(min(n, self.n_items), dim=1)
        return top.indices, top.values

    # -- training -------------------------------------------------------------------------------------------------
    def _batch_free_energy(self, v: torch.Tensor) -> torch.Tensor:
        hidden = F.softplus(self.rbm.hidden_input(v)).sum(1)
        visible = -(v @ self.rbm.v_bias)
        return visible.mean() - (hidden.sum() if self.sum_hidden_term else hidden.mean())

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked CD-k surrogate ``mean F(v) - mean F(v_k)``: the negative sample is zero wherever the user has no
        rating, so unrated items stay out of both phases."""
        v0 = batch[0]
        mask = (v0 > 0).to(v0.dtype)
        with torch.no_grad():
            v = v0
            for _ in range(self.k):
                h = torch.bernoulli(self.rbm.encode(v))
                mean = self.rbm.decode(h)
                v = (torch.bernoulli(mean) if self.negative == "sample" else mean) * mask
        loss = self._batch_free_energy(v0) - self._batch_free_energy(v)
        with torch.no_grad():
            n = mask.sum().clamp_min(1)
            mse = ((self(v0) - v0).pow(2) * mask).sum() / n
        return loss, {"mse": mse}

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        loss, logs = self.compute_loss(batch)
        engine.step(loss)
        return {"loss": loss.detach(), **logs}

    # -- data -----------------------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.n_items:
            raise ConfigError(
                f"model.n_items is {self.n_items} but the rating matrix has shape {tuple(x.shape)} (users, items); "
                "set n_items to its number of items"
            )
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ConfigError(f"ratings must be scaled to [0, 1] (rating / highest, 0 = missing); got {lo:g}..{hi:g}")
        empty = torch.nonzero(~(x > 0).any(1)).flatten()
        if len(empty):
            raise ConfigError(f"user {int(empty[0])} has no training ratings ({len(empty)} empty users)")

    def prepare_data(self, data: Any) -> Any:
        """Fit the baselines on the training ratings: each item's mean rating (the global mean for items nobody
        rated) and its number of ratings."""
        x = data.train.x
        if x.ndim == 2 and x.shape[1] == self.n_items:
            rated = (x > 0).float()
            count = rated.sum(0)
            total = (x * self.scale[1]).sum(0)
            overall = float(total.sum() / count.sum().clamp_min(1))
            mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, overall))
            self.item_mean.copy_(mean.to(self.item_mean))
            self.item_count.copy_(count.to(self.item_count))
        return data

    # -- evaluation -----------------------------------------------------------------------------------------------
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per user: ``mse`` of the scores against the held-out ratings (both / highest; mean over the user's
        held-out ratings, 0 for a user without any)."""
        x, y = batch[0], batch[1]
        mask = (y > 0).float()
        err = (self(x).float() - y).pow(2) * mask
        return {"mse": err.sum(1) / mask.sum(1).clamp_min(1)}

    @torch.no_grad()
    def held_out_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """RMSE (rating units) and precision@``top_n`` of the model and of the baselines on held-out ratings ``y``
        given the ratings ``x`` the model sees."""
        hi = self.scale[1]
        mask = y > 0
        n = int(mask.sum())
        target = y * hi
        pred = self.predict_ratings(x)
        base = self.item_mean.expand_as(y)

        def rmse(p: torch.Tensor) -> float:
            return float(((p - target).pow(2) * mask).sum() / max(n, 1)) ** 0.5

        liked = mask & (target >= self.liked - 1e-6)
        seen = x > 0
        pop = self.item_count.expand_as(y)
        prec = precision_at_n(self(x), seen, liked, self.top_n)
        pop_prec = precision_at_n(pop + 1e-6 * self.item_mean, seen, liked, self.top_n)
        at = f"precision_at_{self.top_n}"
        return {
            "rmse": rmse(pred),
            "item_mean_rmse": rmse(base),
            at: float(prec.nanmean()),
            f"popularity_{at}": float(pop_prec.nanmean()),
            "held_out_ratings": float(n),
        }

    def reference_metrics(self, data: Any) -> dict[str, float]:
        device = self.item_mean.device
        was = self.training
        self.eval()
        out = {}
        for name, part in data.splits().items():
            if name == "train" or part.y is None:
                continue
            for key, value in self.held_out_metrics(part.x.to(device), part.y.to(device)).items():
                out[f"{name}_{key}"] = value
        self.train(was)
        return out
