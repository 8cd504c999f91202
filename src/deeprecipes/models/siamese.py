"""Siamese network with the contrastive loss: MNIST digits embedded in 2-D (TF Deep Learning Cookbook 13.4).

Two identical branches with shared weights map images to points; the energy of a pair is the Euclidean distance
between its points, E_W(X1, X2) = ||f_W(X1) - f_W(X2)||. The contrastive loss (Hadsell, Chopra & LeCun 2006) pulls
genuine pairs (same digit) together and pushes impostor pairs apart until they are ``margin`` away.

The network and the loss are those of the book's working example, ywpkwon/siamese_tf_mnist (``inference.py``):
784 -> 1024 ReLU -> 1024 ReLU -> 2, weights ``truncated_normal(stddev=0.01)``, biases 0.01, margin 5, and
``loss_with_spring``: mean over pairs of ``y * d^2 + (1 - y) * max(0, margin - d)^2`` with ``y = 1`` for a genuine
pair and ``d = sqrt(||o1 - o2||^2 + 1e-6)``. Hadsell et al. write ``(1 - Y) 1/2 D^2 + Y 1/2 max(0, m - D)^2`` with
``Y = 0`` for a genuine pair: the same loss with the labels flipped and twice the size (so SGD at 0.01 here is SGD
at 0.02 on theirs). ``loss="step"`` gives the repository's other loss, ``y * d + (1 - y) * max(0, margin - d)``.

Training pairs are drawn from each mini-batch (:mod:`deeprecipes.data.pairs`): each image of the batch is encoded
once and paired with a partner from the same batch, half genuine and half impostor. One branch applied to the
batch and indexed twice is the two weight-sharing branches, with the gradient of both roles summed. The pairs come
from torch's global generator, which the engine checkpoints, so a resumed run sees the same pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn

from ..data.pairs import fixed_pairs, sample_pairs
from ..errors import ConfigError, DataError
from ..params import NonNegative, OneOf, Positive, PositiveInt, Probability, check_arguments
from ..registry import register_model
from ..viz import pyplot, save_plane, scatter_by_label
from .base import Batch, Model

__all__ = ["SiameseNet", "contrastive_loss", "pair_distance"]

EVAL_PAIR_SEED = 20170101  # evaluation pairs are drawn from a generator seeded with this: the same every epoch


def pair_distance(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Euclidean distance between rows, ``sqrt(||z1 - z2||^2 + eps)`` (eps keeps the gradient finite at 0, as the
    repository's ``eucd``). z1, z2: (n, d) -> (n,)."""
    return ((z1 - z2).pow(2).sum(1) + eps).sqrt()


def contrastive_loss(
    distance: torch.Tensor, same: torch.Tensor, margin: float = 5.0, kind: str = "spring"
) -> torch.Tensor:
    """Per-pair contrastive loss (n,).

    ``spring``: ``same * d^2 + (1 - same) * max(0, margin - d)^2`` (Hadsell et al. 2006 without their 1/2,
    ywpkwon's ``loss_with_spring``); ``step``: ``same * d + (1 - same) * max(0, margin - d)``.
    """
    y = same.to(distance.dtype)
    hinge = (margin - distance).clamp_min(0.0)
    if kind == "spring":
        return y * distance.pow(2) + (1 - y) * hinge.pow(2)
    if kind == "step":
        return y * distance + (1 - y) * hinge
    raise ValueError(f"loss must be 'spring' or 'step', got {kind!r}")


@register_model("siamese-mlp")
class SiameseNet(Model):
    """Shared fully connected encoder to a low-dimensional embedding, trained on pairs with the contrastive loss.

    Registered as ``siamese-mlp`` (ywpkwon/siamese_tf_mnist: 784-1024-1024-2, margin 5, spring loss).

    Parameters
    ----------
    input_size : int
        Features per sample (784); images (batch, 28, 28) are flattened.
    hidden_sizes : list of int, optional
        ReLU layers of the encoder (default, the repository's: 1024, 1024).
    embedding_size : int
        Output units, no activation (2: the points are plotted directly).
    margin : float
        Impostor pairs closer than this are pushed apart (repository: 5.0).
    loss : {"spring", "step"}
        Squared (Hadsell) or plain-distance contrastive loss, see :func:`contrastive_loss`.
    pairing : {"balanced", "random"}
        How training pairs are drawn from a batch (:func:`deeprecipes.data.pairs.sample_pairs`).
    genuine_fraction : float
        Share of genuine pairs with ``pairing="balanced"``.
    init_std, init_bias : float
        Weights from a normal truncated at two standard deviations, constant biases (TF's
        ``truncated_normal_initializer(stddev=0.01)`` and ``constant(0.01)``).
    knn : int
        Neighbours for the k-nearest-neighbour accuracy reported at the end of a run.
    """

    def __init__(
        self,
        input_size: PositiveInt = 784,
        hidden_sizes: list[int] | None = None,
        embedding_size: PositiveInt = 2,
        margin: Positive = 5.0,
        loss: Annotated[str, OneOf("spring", "step")] = "spring",
        pairing: Annotated[str, OneOf("balanced", "random")] = "balanced",
        genuine_fraction: Probability = 0.5,
        init_std: NonNegative = 0.01,
        init_bias: float = 0.01,
        knn: PositiveInt = 5,
    ) -> None:
        super().__init__()
        check_arguments(SiameseNet.__init__, locals())
        hidden_sizes = (1024, 1024) if hidden_sizes is None else hidden_sizes
        self.input_size = input_size
        self.margin = float(margin)
        self.loss = loss
        self.pairing = pairing
        self.genuine_fraction = float(genuine_fraction)
        self.knn = knn
        layers: list[nn.Module] = []
        n_in = input_size
        for h in hidden_sizes:
            layers += [nn.Linear(n_in, h), nn.ReLU()]
            n_in = h
        layers.append(nn.Linear(n_in, embedding_size))
        self.encoder = nn.Sequential(*layers)
        with torch.no_grad():
            for m in self.encoder:
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
                    m.bias.fill_(init_bias)

    # ------------------------------------------------------------------------------------------------------------
    # the network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, input_size) or (batch, 28, 28) -> embedding (batch, embedding_size). One branch."""
        return self.encoder(x.reshape(x.shape[0], -1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding of ``x`` (batch, embedding_size)."""
        return self(x)

    def distance(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The energy E_W(x1, x2) of each pair (batch,): both branches, shared weights."""
        return pair_distance(self(x1), self(x2))

    def pair_losses(self, z: torch.Tensor, partner: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-pair (loss, distance) for embeddings ``z`` (n, d) paired with ``z[partner]``."""
        partner, same = partner.to(z.device), same.to(z.device)
        d = pair_distance(z.float(), z[partner].float())
        return contrastive_loss(d, same, self.margin, self.loss), d

    # ------------------------------------------------------------------------------------------------------------
    # the engine's hooks

    def check_data(self, x: torch.Tensor) -> None:
        if x[0].numel() != self.input_size:
            raise ConfigError(
                f"model argument 'input_size' is {self.input_size}, but the data has {x[0].numel()} features"
            )

    def prepare_data(self, data: Any) -> Any:
        for name, part in data.splits().items():
            if part.y is None or part.y.is_floating_point() or part.y.ndim != 1:
                what = "none" if part.y is None else f"{part.y.dtype} labels of shape {tuple(part.y.shape)}"
                raise DataError(f"the siamese network needs integer class labels (n,); split '{name}' has {what}")
        return data

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        z = self(x)
        partner, same = sample_pairs(y, self.genuine_fraction, pairing=self.pairing)
        losses, d = self.pair_losses(z, partner, same)
        same = same.to(d.device)
        g = same.float()
        n_g, n_i = g.sum().clamp_min(1), (1 - g).sum().clamp_min(1)
        return losses.mean(), {
            "accuracy": ((d < self.margin / 2) == same).float().mean(),
            "genuine_distance": (d * g).sum().detach() / n_g,
            "impostor_distance": (d * (1 - g)).sum().detach() / n_i,
        }

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per pair, for fixed balanced pairs inside each evaluation batch (one per sample): the contrastive loss and
        pair verification (same digit when the distance is below margin / 2)."""
        x, y = batch[0], batch[1]
        g = torch.Generator().manual_seed(EVAL_PAIR_SEED)
        partner, same = sample_pairs(y, 0.5, generator=g)
        losses, d = self.pair_losses(self(x), partner, same)
        return {"loss": losses, "accuracy": ((d < self.margin / 2) == same.to(d.device)).float()}

    # ------------------------------------------------------------------------------------------------------------
    # end-of-run measures

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """Embeddings of a whole set, in batches, on the CPU (n, embedding_size)."""
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        out = torch.cat([self(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
        self.train(was)
        return out

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """On the full test set: k-NN accuracy of the test embeddings against the training embeddings, and pair
        verification on 10,000 fixed balanced test pairs with the distance threshold that is best on 10,000 fixed
        training pairs."""
        train, test = data.train, data.test
        z_train, z_test = self.embed(train.x), self.embed(test.x)
        y_train, y_test = train.y.cpu().long(), test.y.cpu().long()
        pred = knn_predict(z_train, y_train, z_test, k=self.knn)
        a, p, same = fixed_pairs(y_train, 10000, seed=0)
        threshold = best_threshold(pair_distance(z_train[a], z_train[p]), same)
        a, p, same = fixed_pairs(y_test, 10000, seed=1)
        d_test = pair_distance(z_test[a], z_test[p])
        return {
            "test_knn_accuracy": (pred == y_test).float().mean().item(),
            "test_verification_accuracy": ((d_test < threshold) == same).float().mean().item(),
            "verification_threshold": threshold,
        }

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """The test digits drawn at their embedded points, tinted by label, over faint dots for the whole test set (the
        picture of the repository's ``visualize.py``); the runner's ``codes.png`` is the plain scatter."""
        if self.encoder[-1].out_features != 2:
            return []
        test = data.test
        z = self.embed(test.x)
        return [save_digit_map(z, test.x, test.y, fig_dir / "embedding-digits.png", title=f"{title}: test digits")]


def knn_predict(z_train: torch.Tensor, y_train: torch.Tensor, z_query: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Majority label of the ``k`` nearest training points (Euclidean) of each query; ties go to the nearest
    neighbour's class when it is among the tied ones, else to the smallest label. A k-d tree (scipy) keeps this fast
    for low-dimensional embeddings."""
    from scipy.spatial import cKDTree

    k = min(k, len(z_train))
    _, idx = cKDTree(z_train.detach().double().cpu().numpy()).query(z_query.detach().double().cpu().numpy(), k=k)
    nearest = torch.as_tensor(idx, dtype=torch.long).reshape(len(z_query), k)  # nearest first
    labels = y_train.cpu().long()[nearest]
    n_classes = int(y_train.max()) + 1
    votes = nn.functional.one_hot(labels, n_classes).sum(1).float()
    votes += 0.5 * nn.functional.one_hot(labels[:, 0], n_classes)  # breaks ties, never a majority
    return votes.argmax(1)


def best_threshold(distance: torch.Tensor, same: torch.Tensor) -> float:
    """The distance threshold t that classifies most pairs right with ``genuine = distance < t``."""
    d, order = distance.sort()
    s = same[order].float()
    # t just above d[i]: pairs 0..i called genuine; right = genuine ones among them + impostors after them
    right = s.cumsum(0) + ((1 - s).sum() - (1 - s).cumsum(0))
    i = int(right.argmax())
    if int((1 - s).sum()) >= right[i]:  # calling every pair an impostor is better
        return float(d[0])
    return float((d[i] + d[i + 1]) / 2) if i + 1 < len(d) else float(d[i]) + 1e-6


def save_digit_map(z: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, path: Path, title: str = "") -> Path:
    """Digits drawn at their 2-D points, tinted by label, skipping those that would overlap a digit already drawn."""
    from matplotlib import offsetbox

    plt = pyplot()
    z = z.detach().float().cpu()
    imgs = images.detach().float().cpu().reshape(len(images), 28, 28).clamp(0, 1)
    labels = labels.detach().cpu().long()
    cmap = plt.get_cmap("tab10")
    lo, hi = z.min(0).values, z.max(0).values
    min_d2 = 2.5e-3 * float((hi - lo).pow(2).sum())
    fig, ax = plt.subplots(figsize=(9, 9))
    scatter_by_label(ax, z, labels, range(10), size=1, alpha=0.25, markerscale=8, loc="upper right")
    shown = torch.empty(0, 2)
    for i in range(len(z)):
        if len(shown) and float((shown - z[i]).pow(2).sum(1).min()) < min_d2:
            continue
        shown = torch.cat([shown, z[i : i + 1]])
        ink = imgs[i][..., None]
        rgb = (1 - ink) * torch.ones(3) + ink * torch.tensor(cmap(int(labels[i]))[:3])
        box = offsetbox.AnnotationBbox(
            offsetbox.OffsetImage(rgb.clamp(0, 1).numpy(), zoom=0.6), z[i].tolist(), frameon=False
        )
        ax.add_artist(box)
    pad = 0.04 * (hi - lo)
    ax.set_xlim(float(lo[0] - pad[0]), float(hi[0] + pad[0]))
    ax.set_ylim(float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    return save_plane(fig, ax, path, "embedding unit", title)
