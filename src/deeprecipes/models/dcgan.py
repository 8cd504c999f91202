"""The DCGAN of cookbook 11.2 (TengdaHan/GAN-TensorFlow ``model_conv.py``) and of 11.3 (carpedm20/DCGAN-tensorflow,
after Radford et al. 2015), for (C, H, W) images whose sides divide by 4 (pictures are drawn for grey ones).

Generator (11.2)::

    z (100) -> FC 7*7*256 -> leaky ReLU 0.2 -> (256, 7, 7)
      -> ConvTranspose 4x4 stride 2 -> (64, 14, 14) -> batch norm -> leaky ReLU -> dropout
      -> ConvTranspose 4x4 stride 2 -> (C, 28, 28) -> sigmoid

Discriminator::

    (C, 28, 28) -> Conv 4x4 stride 2, 64 -> batch norm -> leaky ReLU -> dropout
      -> Conv 4x4 stride 2, 128 -> batch norm -> leaky ReLU -> dropout -> FC 256 leaky ReLU -> FC 1 (logit)

Every weight N(0, 0.1), biases zero; batch norm is ``tf.contrib.layers.batch_norm``'s default: a learned shift, no
scale, epsilon 0.001, moving averages at decay 0.999. Two traps of the book's listing, kept on purpose:

- TF1's ``tf.nn.dropout(x, 0.4)`` *keeps* 40% of the units: the dropout rate is 0.6 (``dropout = 0.6``).
- ``batch_norm`` is never told it is not training, and the dropout is always on: batch norm uses the batch's
  statistics and dropout drops units when the book samples, too. ``book_modes = true`` keeps them so (in
  evaluation and sampling as well); ``false`` gives the usual modes (moving averages, no dropout when sampling).

The losses, the alternating steps and the scores are :class:`~deeprecipes.models.gan.ImageGAN`'s; ``g_steps = 2``
is carpedm20's ratio (two generator updates per discriminator update, so that D does not win too fast).

``dcgan-radford`` is the network of cookbook 11.3, carpedm20/DCGAN-tensorflow (Radford et al. 2015), for (C, H, W)
images whose sides divide by 16 (64 x 64 faces)::

    G: z (100) -> FC (8g, H/16, W/16) -> BN, ReLU -> ConvT 5x5/2 to 4g, 2g, g channels (BN, ReLU each) -> ConvT to C
    D: (C, H, W) -> Conv 5x5/2 to d (leaky ReLU 0.2), 2d, 4d, 8d (BN, leaky ReLU each) -> FC 1

with g = d = 64, batch norm with scale and shift (epsilon 1e-5, moving averages at decay 0.9), weights N(0, 0.02)
and zero biases. carpedm20's tanh output on images in [-1, 1] is the same function family as the sigmoid output on
images in [0, 1] used here (sigmoid(2a) = (1 + tanh(a)) / 2). Its update ratio is ``g_steps = 2``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..params import PositiveInt, Rate, check_arguments
from ..registry import register_model
from .gan import ImageGAN

__all__ = ["DCGAN", "RadfordDCGAN"]


class _ShiftOnlyBatchNorm(nn.BatchNorm2d):
    """``tf.contrib.layers.batch_norm`` defaults: normalise, then add a learned per-channel shift (no scale)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-3, momentum=1 - 0.999, affine=False)
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.shift[:, None, None]


def _checked_shape(image_shape: list[int], divisor: int, init_std: float) -> tuple[int, ...]:
    """``image_shape`` as a tuple, when it is (C, H, W) with H and W divisible by ``divisor`` (the generator's
    upsampling) and ``init_std`` is positive; ConfigError otherwise."""
    if len(image_shape) != 3 or image_shape[1] % divisor or image_shape[2] % divisor:
        raise ConfigError(f"model.image_shape must be (C, H, W) with H and W divisible by {divisor}, got {image_shape}")
    if not init_std > 0:
        raise ConfigError(f"model.init_std must be > 0, got {init_std}")
    return tuple(image_shape)


def _init_normal(model: nn.Module, std: float) -> None:
    """Every linear and (transposed) convolution weight of ``model`` ~ N(0, std^2), every bias zero."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


@register_model("dcgan")
class DCGAN(ImageGAN):
    """A DCGAN for (C, H, W) images with H and W divisible by 4 (see the module docstring).

    Parameters
    ----------
    noise_dim : int
        Size of z (100).
    image_shape : list of int
        (C, H, W) of the images: (1, 28, 28) for MNIST, (3, 64, 64) for faces.
    g_channels : int
        Channels of the generator's first transposed convolution's output (64); its input has ``4 * g_channels``.
    d_channels : int
        Channels of the discriminator's first convolution (64); the second has twice as many.
    d_hidden : int
        Width of the discriminator's fully connected layer (256).
    dropout : float
        Dropout rate after each batch norm (0.6: the book's keep_prob of 0.4).
    slope : float
        Leaky ReLU slope for negative inputs (0.2).
    init_std : float
        Standard deviation of the normal weights (0.1).
    book_modes : bool
        Batch norm and dropout stay in training mode when evaluating and sampling, as in the book.
    d_steps, g_steps : int
        Discriminator and generator steps per training step (11.2: 1 and 1; carpedm20: 1 and 2).
    same_noise : bool
        The generator steps reuse the discriminator's noise (11.2: yes).
    """

    def __init__(
        self,
        noise_dim: PositiveInt = 100,
        image_shape: list[PositiveInt] = [1, 28, 28],  # noqa: B006 (read only; the registry shows the default)
        g_channels: PositiveInt = 64,
        d_channels: PositiveInt = 64,
        d_hidden: PositiveInt = 256,
        dropout: Rate = 0.6,
        slope: Rate = 0.2,
        init_std: float = 0.1,
        book_modes: bool = True,
        d_steps: PositiveInt = 1,
        g_steps: PositiveInt = 1,
        same_noise: bool = True,
    ) -> None:
        check_arguments(DCGAN.__init__, locals())
        super().__init__(noise_dim, _checked_shape(image_shape, 4, init_std), d_steps, g_steps, same_noise)
        self.book_modes = book_modes
        c, h, w = image_shape
        small = (4 * g_channels, h // 4, w // 4)
        self.generator = nn.Sequential(
            nn.Linear(noise_dim, math.prod(small)),
            nn.LeakyReLU(slope),
            nn.Unflatten(1, small),
            nn.ConvTranspose2d(small[0], g_channels, 4, stride=2, padding=1),
            _ShiftOnlyBatchNorm(g_channels),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.ConvTranspose2d(g_channels, c, 4, stride=2, padding=1),
            nn.Flatten(),
        )
        self.discriminator = nn.Sequential(
            nn.Unflatten(1, (c, h, w)),
            nn.Conv2d(c, d_channels, 4, stride=2, padding=1),
            _ShiftOnlyBatchNorm(d_channels),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Conv2d(d_channels, 2 * d_channels, 4, stride=2, padding=1),
            _ShiftOnlyBatchNorm(2 * d_channels),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(2 * d_channels * (h // 4) * (w // 4), d_hidden),
            nn.LeakyReLU(slope),
            nn.Linear(d_hidden, 1),
        )
        _init_normal(self, init_std)

    def train(self, mode: bool = True) -> DCGAN:
        """Training or evaluation mode; with ``book_modes``, batch norm and dropout stay in training mode."""
        super().train(mode)
        if self.book_modes:
            for m in self.modules():
                if isinstance(m, (nn.BatchNorm2d, nn.Dropout)):
                    m.training = True
        return self


def _bn_relu(channels: int, leaky: float | None = None) -> list[nn.Module]:
    """carpedm20's ``batch_norm`` (scale and shift, epsilon 1e-5, decay 0.9), then ReLU or leaky ReLU."""
    act: nn.Module = nn.ReLU() if leaky is None else nn.LeakyReLU(leaky)
    return [nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1), act]


@register_model("dcgan-radford")
class RadfordDCGAN(ImageGAN):
    """The DCGAN of cookbook 11.3 (carpedm20/DCGAN-tensorflow, after Radford et al. 2015); see the module docstring.

    Parameters
    ----------
    noise_dim : int
        Size of z (100).
    image_shape : list of int
        (C, H, W), H and W divisible by 16: (3, 64, 64) for CelebA faces.
    g_channels, d_channels : int
        carpedm20's ``gf_dim`` and ``df_dim`` (64): the generator's last hidden layer and the discriminator's first
        have this many channels, each layer before (after) twice as many.
    slope : float
        The discriminator's leaky ReLU slope (0.2).
    init_std : float
        Standard deviation of the normal weights (0.02).
    d_steps, g_steps : int
        Discriminator and generator steps per training step (carpedm20: 1 and 2).
    same_noise : bool
        The generator steps reuse the discriminator's noise (carpedm20 feeds one ``z`` to all three).
    """

    def __init__(
        self,
        noise_dim: PositiveInt = 100,
        image_shape: list[PositiveInt] = [3, 64, 64],  # noqa: B006 (read only; the registry shows the default)
        g_channels: PositiveInt = 64,
        d_channels: PositiveInt = 64,
        slope: Rate = 0.2,
        init_std: float = 0.02,
        d_steps: PositiveInt = 1,
        g_steps: PositiveInt = 2,
        same_noise: bool = True,
    ) -> None:
        check_arguments(RadfordDCGAN.__init__, locals())
        super().__init__(noise_dim, _checked_shape(image_shape, 16, init_std), d_steps, g_steps, same_noise)
        c, h, w = image_shape
        small = (8 * g_channels, h // 16, w // 16)
        g_layers: list[nn.Module] = [nn.Linear(noise_dim, math.prod(small)), nn.Unflatten(1, small)]
        g_layers += _bn_relu(small[0])
        for k in (4, 2, 1):
            g_layers += [nn.ConvTranspose2d(2 * k * g_channels, k * g_channels, 5, 2, 2, 1), *_bn_relu(k * g_channels)]
        self.generator = nn.Sequential(*g_layers, nn.ConvTranspose2d(g_channels, c, 5, 2, 2, 1), nn.Flatten())
        d_layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w)), nn.Conv2d(c, d_channels, 5, 2, 2), nn.LeakyReLU(slope)]
        for k in (2, 4, 8):
            d_layers += [nn.Conv2d(k // 2 * d_channels, k * d_channels, 5, 2, 2), *_bn_relu(k * d_channels, slope)]
        d_layers += [nn.Flatten(), nn.Linear(8 * d_channels * (h // 16) * (w // 16), 1)]
        self.discriminator = nn.Sequential(*d_layers)
        _init_normal(self, init_std)
