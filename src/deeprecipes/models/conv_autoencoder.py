"""Convolutional denoising autoencoder of the TensorFlow 1.x Deep Learning Cookbook, recipe 8.4.

x~ = clip(x + 0.5 N(0, 1), 0, 1)                          fresh noise for every batch
encoder: conv 3x3 32 ReLU, maxpool 2   28x28 -> 14x14       padding 'same' throughout
         conv 3x3 32 ReLU, maxpool 2   14x14 -> 7x7
         conv 3x3 16 ReLU, maxpool 2    7x7  -> 4x4         TF 'same' pooling rounds up (ceil_mode here)
decoder: nearest resize to 7x7,   conv 3x3 16 ReLU          resize + conv instead of a transposed convolution
         nearest resize to 14x14, conv 3x3 32 ReLU          (no checkerboard artefacts, Odena et al. 2016)
         nearest resize to 28x28, conv 3x3 32 ReLU
         conv 3x3 1 (linear) -> logits; reconstruction = sigmoid(logits)
loss = mean over batch and pixels of sigmoid_cross_entropy_with_logits(labels=x, logits)   (the clean x is the target)

Convolution kernels are Glorot-uniform and biases zero, as ``tf.layers.conv2d`` initialised them. PyTorch's
``mode="nearest"`` picks source index floor(i * in / out), as TF 1's ``resize_nearest_neighbor`` did by default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..params import Probability, check_arguments
from ..registry import register_model
from .autoencoder import Noise, corrupt
from .base import Batch, Model

__all__ = ["ConvDenoisingAutoencoder"]

NAME = "conv-denoising-autoencoder"


def _pooled(size: int) -> int:
    """Side length after a 2x2 max-pool of stride 2 with TF 'same' padding."""
    return math.ceil(size / 2)


@register_model(NAME)
class ConvDenoisingAutoencoder(Model):
    """Three conv + max-pool stages down to a small code, three resize + conv stages back up, sigmoid output
    (cookbook recipe 8.4: conv 32-32-16 with max-pooling to 4x4x16, resize + conv decoder, Gaussian noise 0.5).

    Parameters
    ----------
    corruption : {"gaussian", "masking", "salt-and-pepper", "none"}
    corruption_level : float in [0, 1]
        Noise standard deviation (the book's ``noise_factor``), masking probability or salt-and-pepper fraction;
        drawn afresh for every batch and every evaluation.
    filters : list of 3 int, optional
        Channels of the three encoder convolutions (default 32, 32, 16); the decoder uses them in reverse order.
    image_shape : list of 2 int, optional
        Height and width (default 28 x 28); inputs of shape (batch, H * W), (batch, H, W) or (batch, 1, H, W) are
        accepted.
    """

    def __init__(
        self,
        corruption: Noise = "gaussian",
        corruption_level: Probability = 0.5,
        filters: list[int] | None = None,
        image_shape: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_arguments(ConvDenoisingAutoencoder.__init__, locals())
        filters = (32, 32, 16) if filters is None else tuple(filters)
        image_shape = (28, 28) if image_shape is None else tuple(image_shape)
        if len(filters) != 3 or any(int(f) != f or f < 1 for f in filters):
            raise ConfigError(f"model.filters must be 3 positive integers, got {list(filters)}")
        if len(image_shape) != 2 or any(int(s) != s or s < 1 for s in image_shape):
            raise ConfigError(f"model.image_shape must be 2 positive integers, got {list(image_shape)}")
        self.corruption, self.corruption_level = corruption, corruption_level
        self.filters = tuple(int(f) for f in filters)
        self.image_shape = tuple(int(s) for s in image_shape)
        h, w = self.image_shape
        # spatial sizes before each pooling; the decoder resizes back to them, deepest first
        self.sizes = [(h, w)]
        for _ in range(2):
            h, w = _pooled(h), _pooled(w)
            self.sizes.append((h, w))
        self.code_size = (_pooled(h), _pooled(w))

        f1, f2, f3 = self.filters
        self.enc1 = nn.Conv2d(1, f1, 3, padding=1)
        self.enc2 = nn.Conv2d(f1, f2, 3, padding=1)
        self.enc3 = nn.Conv2d(f2, f3, 3, padding=1)
        self.dec1 = nn.Conv2d(f3, f3, 3, padding=1)
        self.dec2 = nn.Conv2d(f3, f2, 3, padding=1)
        self.dec3 = nn.Conv2d(f2, f1, 3, padding=1)
        self.out = nn.Conv2d(f1, 1, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------------------------------------
    # shapes and data

    def as_images(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, H*W), (batch, H, W) or (batch, 1, H, W) -> (batch, 1, H, W)."""
        h, w = self.image_shape
        if x.ndim < 2 or x[0].numel() != h * w:
            raise DataError(
                f"model '{NAME}' expects images of {h}x{w} = {h * w} values each, got input of shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], 1, h, w)  # shape[0], not len(x): a traced batch size stays free

    def check_data(self, x: torch.Tensor) -> None:
        """Raise ConfigError when ``x`` is not a batch of H x W images or has values outside [0, 1], which the
        cross-entropy loss cannot use."""
        if x.numel() == 0:
            return
        h, w = self.image_shape
        if x.ndim < 2 or x[0].numel() != h * w:
            raise ConfigError(
                f"model '{NAME}' expects images of {h}x{w} = {h * w} values each (model.image_shape), "
                f"got data of shape {tuple(x.shape)}"
            )
        lo, hi = (float(v) for v in torch.aminmax(x.detach().float()))
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ConfigError(
                f"model '{NAME}': data outside [0, 1] (min {lo:.6g}, max {hi:.6g}): "
                "the cross-entropy loss needs values in [0, 1]"
            )

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.corruption, self.corruption_level)

    # ------------------------------------------------------------------------------------------------------------
    # the network

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (any shape ``as_images`` takes) -> code (batch, filters[2], 4, 4) for 28x28 input."""
        h = self.as_images(x)
        for conv in (self.enc1, self.enc2, self.enc3):
            h = F.max_pool2d(F.relu(conv(h)), 2, ceil_mode=True)
        return h

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Code (batch, filters[2], 4, 4) -> logits (batch, 1, 28, 28)."""
        h = code
        for conv, size in zip((self.dec1, self.dec2, self.dec3), reversed(self.sizes)):
            h = F.relu(conv(F.interpolate(h, size=size, mode="nearest")))
        return self.out(h)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (batch, 1, H, W) of the reconstruction of x."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction in (0, 1), shaped like the input."""
        return torch.sigmoid(self.logits(x)).reshape(x.shape)

    # ------------------------------------------------------------------------------------------------------------
    # training and evaluation

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        clean = self.as_images(batch[0])
        logits = self.logits(self.corrupt(clean)).float()
        return F.binary_cross_entropy_with_logits(logits, clean.float()), {}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per image, reconstructed from a freshly corrupted copy: ``bce`` (mean cross-entropy over the pixels,
        the training loss) and ``mse`` (mean squared error over the pixels), both against the clean image."""
        clean = self.as_images(batch[0]).float()
        logits = self.logits(self.corrupt(clean)).float()
        bce = F.binary_cross_entropy_with_logits(logits, clean, reduction="none").flatten(1).mean(1)
        mse = (torch.sigmoid(logits) - clean).pow(2).flatten(1).mean(1)
        return {"bce": bce, "mse": mse}

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        clean = self.as_images(batch[0][:10])
        noisy = self.corrupt(clean)
        shape = (-1, *self.image_shape)
        return {
            "clean": clean.reshape(shape),
            "corrupted": noisy.reshape(shape),
            "reconstructed": torch.sigmoid(self.logits(noisy)).float().reshape(shape),
        }

    def weight_images(self) -> dict[str, torch.Tensor]:
        """The first layer's 3x3 filters, each scaled to [0, 1]."""
        w = self.enc1.weight.detach()[:, 0].float()
        lo = w.amin(dim=(1, 2), keepdim=True)
        hi = w.amax(dim=(1, 2), keepdim=True)
        return {"filters": (w - lo) / (hi - lo).clamp_min(1e-12)}
