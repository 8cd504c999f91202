"""Convolutional classifiers: the MNIST CNN of the course (A8, = TF's "Deep MNIST for experts"), the cookbook's 4.1
ConvNet and Keras' ``mnist_cnn``, as one configurable network.

    image (C, H, W)
    [conv k x k -> ReLU -> (max-pool p x p)] for each entry of ``channels``      'same' or 'valid' padding
    (dropout ``conv_dropout``) -> flatten
    [dense -> ReLU -> dropout ``dropout``] for each entry of ``dense``
    dense -> logits

Initialisation schemes (``init``):

- ``"tf-truncated-normal"``: weights ``tf.truncated_normal(stddev=0.1)`` (redrawn beyond 2 std), biases 0.1 (course
  A8, Deep MNIST for experts);
- ``"random-normal"``: weights and biases ``tf.random_normal`` N(0, 1) (cookbook 4.1; the losses start huge);
- ``"glorot"``: Glorot-uniform weights, zero biases (what Keras layers did, ``mnist_cnn``);
- ``"torch"``: PyTorch's own defaults.

With 'same' padding a max-pool of an odd-sized map rounds up, as TF's SAME pooling did; with 'valid' it rounds down
(Keras' default pooling). ``figures`` draws the course's pictures: the feature maps (pre-ReLU) of each convolution
for one test image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..params import OneOf, PositiveInt, Rate, check_arguments, choices
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Classifier

__all__ = ["CNN", "INITS"]

NAME = "cnn"
Init = Annotated[str, OneOf("tf-truncated-normal", "random-normal", "glorot", "torch")]
INITS = choices(Init)


def _out_size(size: int, kernel: int, padding: str, pool: int) -> int:
    """Side length after a stride-1 convolution and a max-pool of ``pool`` (stride ``pool``)."""
    if padding == "valid":
        size = size - kernel + 1
    if pool > 1:
        size = -(-size // pool) if padding == "same" else size // pool
    return size


def init_weights(module: nn.Module, scheme: str) -> None:
    """Initialise every conv and linear layer of ``module`` with ``scheme`` (one of ``INITS``)."""
    with torch.no_grad():
        for m in module.modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if scheme == "tf-truncated-normal":
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-0.2, b=0.2)
                nn.init.constant_(m.bias, 0.1)
            elif scheme == "random-normal":
                nn.init.normal_(m.weight, 0.0, 1.0)
                nn.init.normal_(m.bias, 0.0, 1.0)
            elif scheme == "glorot":
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


@register_model(NAME)
class CNN(Classifier):
    """Convolutions with ReLU and max-pooling, then fully connected ReLU layers with dropout, then a linear readout.
    The defaults are course A8 / Deep MNIST for experts: conv 5x5 32, pool, conv 5x5 64, pool, dense 1024, dropout
    0.5.

    Parameters
    ----------
    channels : list of int, optional
        Output channels of each convolution (default, the course: 32, 64).
    kernel_size : int
        Side of every (square) kernel, stride 1 (course: 5; Keras ``mnist_cnn``: 3).
    padding : {"same", "valid"}
    pool : list of int, optional
        Max-pool size (and stride) after each convolution; 1 = no pooling (default 2 after each; Keras
        ``mnist_cnn``: 1, 2).
    dense : list of int, optional
        Widths of the hidden fully connected layers (default, the course: 1024; Keras: 128).
    dropout : float
        Dropout rate after each hidden dense layer, 1 - TF's ``keep_prob`` (course: 0.5; cookbook: 0.15).
    conv_dropout : float
        Dropout rate on the last convolutional maps (Keras ``mnist_cnn``: 0.25).
    init : str
        One of ``INITS``.
    image_shape : list of 3 int, optional
        (channels, height, width), default (1, 28, 28); inputs of shape (batch, C*H*W), (batch, H, W) or
        (batch, C, H, W) are accepted.
    num_classes : int
    channels_last : bool
        Run the convolutions in NHWC memory layout (the layout oneDNN prefers on some CPUs).
    """

    def __init__(
        self,
        channels: list[int] | None = None,
        kernel_size: PositiveInt = 5,
        padding: Annotated[str, OneOf("same", "valid")] = "same",
        pool: list[int] | None = None,
        dense: list[int] | None = None,
        dropout: Rate = 0.5,
        conv_dropout: Rate = 0.0,
        init: Init = "tf-truncated-normal",
        image_shape: list[PositiveInt] | None = None,
        num_classes: PositiveInt = 10,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        check_arguments(CNN.__init__, locals())
        channels = (32, 64) if channels is None else tuple(channels)
        pool = (2,) * len(channels) if pool is None else tuple(pool)
        dense = (1024,) if dense is None else tuple(dense)
        image_shape = (1, 28, 28) if image_shape is None else tuple(image_shape)
        if not channels or any(c < 1 for c in channels):
            raise ConfigError(f"model.channels must be a non-empty list of positive integers, got {list(channels)}")
        if len(pool) != len(channels) or any(p < 1 for p in pool):
            raise ConfigError(
                f"model.pool must give one pooling size >= 1 per convolution ({len(channels)}), got {list(pool)}"
            )
        if any(w < 1 for w in dense):
            raise ConfigError(f"model.dense must be positive widths, got {list(dense)}")
        if len(image_shape) != 3 or any(s < 1 for s in image_shape):
            raise ConfigError(f"model.image_shape must be 3 positive integers (C, H, W), got {list(image_shape)}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.padding, self.pool, self.channels_last = padding, tuple(pool), channels_last
        c, h, w = self.image_shape
        convs = []
        for out, p in zip(channels, pool):
            convs.append(nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2 if padding == "same" else 0))
            c = out
            h, w = _out_size(h, kernel_size, padding, p), _out_size(w, kernel_size, padding, p)
            if h < 1 or w < 1:
                raise ConfigError(
                    f"model: image_shape {list(image_shape)} is too small for {len(channels)} convolutions of "
                    f"{kernel_size}x{kernel_size} with padding '{padding}' and pooling {list(pool)}"
                )
        self.convs = nn.ModuleList(convs)
        self.conv_dropout = nn.Dropout(conv_dropout)
        self.flat_size = c * h * w  # course: 64 * 7 * 7 = 3136
        widths = [self.flat_size, *dense]
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(widths[-1], num_classes)
        init_weights(self, init)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------------------------------------
    # shapes and data

    def as_images(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, C*H*W), (batch, H, W) or (batch, C, H, W) -> (batch, C, H, W)."""
        c, h, w = self.image_shape
        if x.ndim < 2 or x[0].numel() != c * h * w:
            raise DataError(
                f"model '{NAME}' expects images of {c}x{h}x{w} = {c * h * w} values each, "
                f"got input of shape {tuple(x.shape)}"
            )
        x = x.reshape(x.shape[0], c, h, w)  # shape[0], not len(x): a traced batch size stays free
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def check_data(self, x: torch.Tensor) -> None:
        c, h, w = self.image_shape
        if x.numel() and (x.ndim < 2 or x[0].numel() != c * h * w):
            raise ConfigError(
                f"model '{NAME}' expects images of {c}x{h}x{w} = {c * h * w} values each (model.image_shape), "
                f"got data of shape {tuple(x.shape)}"
            )

    # ------------------------------------------------------------------------------------------------------------
    # the network

    def _pool(self, h: torch.Tensor, p: int) -> torch.Tensor:
        return F.max_pool2d(h, p, ceil_mode=self.padding == "same") if p > 1 else h

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> flattened convolutional features (batch, flat_size)."""
        h = self.as_images(x)
        for conv, p in zip(self.convs, self.pool):
            h = self._pool(F.relu(conv(h)), p)
        return self.conv_dropout(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: images (any shape ``as_images`` takes) -> logits (batch, num_classes)."""
        h = self.forward_features(x)
        for layer in self.dense:
            h = self.dropout(F.relu(layer(h)))
        return self.readout(h)

    @torch.no_grad()
    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-ReLU output of every convolution for images ``x``, as the course plotted ``convolve1``/``convolve2``:
        a list of (batch, channels_k, H_k, W_k)."""
        h = self.as_images(x)
        maps = []
        for conv, p in zip(self.convs, self.pool):
            z = conv(h)
            maps.append(z.float().contiguous())
            h = self._pool(F.relu(z), p)
        return maps

    # ------------------------------------------------------------------------------------------------------------
    # pictures

    def weight_images(self) -> dict[str, torch.Tensor]:
        """First-layer kernels of input channel 0 (course: 32 tiles of 5x5), and the second layer's kernels that read
        input channel 0 (the first conv1 map), one per output channel; each tile is scaled to its own range."""
        out = {"conv1-filters": self.convs[0].weight.detach()[:, 0].float()}
        if len(self.convs) > 1:
            out["conv2-filters-input0"] = self.convs[1].weight.detach()[:, 0].float()
        return out

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """Feature maps (pre-ReLU) of every convolution for test image 1 (the course's ``mnist.test.images[1]``)."""
        test = getattr(data, "test", None)
        if test is None or len(test) < 2:
            return []
        device = next(self.parameters()).device
        x = test.x[1:2].to(device)
        label = None if test.y is None else int(test.y[1])
        names = getattr(data, "meta", {}).get("classes")
        if label is not None and names is not None and label < len(names):
            label = names[label]
        was = self.training
        self.eval()
        maps = self.feature_maps(x)
        self.train(was)
        image = self.as_images(x)[0, 0].float().cpu()
        written = []
        for k, m in enumerate(maps, start=1):
            what = "test image 1" + (f" (label {label})" if label is not None else "")
            written.append(
                save_feature_maps(
                    m[0].cpu(),
                    fig_dir / f"feature-maps-conv{k}.png",
                    title=f"{title}: conv{k} feature maps (pre-ReLU) of {what}",
                    image=image,
                )
            )
        return written


def save_feature_maps(maps: torch.Tensor, path: Path, title: str = "", image: torch.Tensor | None = None) -> Path:
    """Draw feature maps (n, H, W), each on its own grey scale and numbered, beside the input ``image`` (H0, W0)."""
    plt = pyplot()
    n = len(maps)
    ncols = 8 if n > 36 else 6  # the course: 6 columns for conv1's 32 maps, 8 for conv2's 64
    nrows = math.ceil(n / ncols)
    extra = 1 if image is not None else 0
    fig, axes = plt.subplots(nrows, ncols + extra, figsize=(1.4 * (ncols + extra), 1.5 * nrows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if image is not None:
        axes[0, 0].imshow(image.numpy(), cmap="gray")
        axes[0, 0].set_title("input", fontsize=8)
    for i in range(n):
        r, c = divmod(i, ncols)
        ax = axes[r, c + extra]
        ax.imshow(maps[i].numpy(), cmap="gray")
        ax.set_title(str(i), fontsize=7, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
