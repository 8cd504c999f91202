"""Autoencoders. First: the tied-weight denoising autoencoder of blog 000 (deeplearning.net's dA, in TensorFlow).

x ~ corrupt(x)                         masking: keep each pixel with probability 1 - level
y = sigmoid(x~ W + b)                  W: (n_visible, n_hidden), W ~ U(+-4 sqrt(6 / (n_visible + n_hidden)))
z = sigmoid(y W^T + b')                tied decoder
cost = sum over batch and pixels of (x - z)^2     (the clean x is the target)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from .base import Batch, Model

__all__ = ["corrupt", "TiedDenoisingAutoencoder", "tied_denoising_autoencoder"]

NOISES = ("masking", "gaussian", "salt-and-pepper", "none")


def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """Corrupt a batch x (values in [0, 1]) with fresh noise from the global torch generator.

    masking: each value is zeroed with probability ``level``; gaussian: add N(0, level^2) and clip to [0, 1];
    salt-and-pepper: a fraction ``level`` of the values is set to 0 or 1 with equal odds.
    """
    if kind == "none" or level == 0:
        return x
    if kind == "masking":
        return x * (torch.rand_like(x) >= level)
    if kind == "gaussian":
        return (x + level * torch.randn_like(x)).clamp_(0.0, 1.0)
    if kind == "salt-and-pepper":
        u = torch.rand_like(x)
        salt = torch.rand_like(x) < 0.5
        return torch.where(u < level, salt.to(x.dtype), x)
    raise ConfigError(f"unknown corruption '{kind}'; known: {', '.join(NOISES)}")


class TiedDenoisingAutoencoder(Model):
    """One-hidden-layer denoising autoencoder with tied weights (decoder = encoder transposed).

    Parameters
    ----------
    n_visible, n_hidden : int
    corruption : {"masking", "gaussian", "salt-and-pepper", "none"}
    corruption_level : float in [0, 1]
        Masking probability, noise standard deviation or salt-and-pepper fraction; drawn afresh for every batch.
    reduction : {"sum", "mean"}
        Training loss summed over batch and pixels (blog 000: ``tf.reduce_sum``) or the per-image mean.
    image_shape : tuple of int
        How to show inputs and filters as pictures.
    """

    summed_metrics = frozenset({"cost"})

    def __init__(
        self,
        n_visible: int = 784,
        n_hidden: int = 500,
        corruption: str = "masking",
        corruption_level: float = 0.3,
        reduction: str = "sum",
        image_shape: tuple[int, int] = (28, 28),
    ) -> None:
        super().__init__()
        if corruption not in NOISES:
            raise ConfigError(f"model.corruption must be one of {', '.join(NOISES)}; got {corruption!r}")
        if not 0.0 <= corruption_level <= 1.0:
            raise ConfigError(f"model.corruption_level must be in [0, 1], got {corruption_level}")
        if reduction not in ("sum", "mean"):
            raise ConfigError(f"model.reduction must be 'sum' or 'mean', got {reduction!r}")
        self.corruption, self.corruption_level, self.reduction = corruption, corruption_level, reduction
        self.image_shape = tuple(image_shape)
        bound = 4 * math.sqrt(6.0 / (n_visible + n_hidden))
        self.W = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(n_hidden))
        self.b_prime = nn.Parameter(torch.zeros(n_visible))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_visible) -> hidden code (batch, n_hidden)."""
        return torch.sigmoid(torch.addmm(self.b, x, self.W))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, n_hidden) -> reconstruction (batch, n_visible) in (0, 1)."""
        return torch.sigmoid(torch.addmm(self.b_prime, h, self.W.t()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.corruption, self.corruption_level)

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = batch[0]
        z = self(self.corrupt(x))
        per_image = (x - z.float()).pow(2).sum(1)
        loss = per_image.sum() if self.reduction == "sum" else per_image.mean()
        return loss, {}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``cost``: squared error of each image reconstructed from a freshly corrupted copy (summed over the set,
        as blog 000 printed it); ``mse``: the same per image (averaged)."""
        x = batch[0]
        per_image = (x - self(self.corrupt(x)).float()).pow(2).sum(1)
        return {"cost": per_image, "mse": per_image}

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch[0][:10]
        noisy = self.corrupt(x)
        shape = (-1, *self.image_shape)
        return {
            "clean": x.reshape(shape),
            "corrupted": noisy.reshape(shape),
            "reconstructed": self(noisy).float().reshape(shape),
        }

    def weight_images(self) -> dict[str, torch.Tensor]:
        return {"filters": self.W.detach().t()[:100].reshape(-1, *self.image_shape)}


@register_model("tied-denoising-autoencoder")
def tied_denoising_autoencoder(
    n_visible: int = 784,
    n_hidden: int = 500,
    corruption: str = "masking",
    corruption_level: float = 0.3,
    reduction: str = "sum",
    image_shape: list[int] | None = None,
) -> TiedDenoisingAutoencoder:
    """Blog 000's denoising autoencoder: 784 -> 500 sigmoid, tied weights, masking noise 0.3."""
    return TiedDenoisingAutoencoder(
        n_visible, n_hidden, corruption, corruption_level, reduction, tuple(image_shape or (28, 28))
    )
