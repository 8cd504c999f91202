"""Stacked autoencoders: a stack of layer-wise trainable blocks, unrolled into a deep autoencoder or topped with a
softmax layer into a classifier.

    stack = LayerStack.build([784, 1000, 1000, 1000], block="autoencoder", corruption_levels=[0.1, 0.2, 0.3])
    pretrain(stack, x)                              # deeprecipes.training.layerwise: one block at a time
    clf = StackedClassifier(stack, n_classes=10)    # supervised fine-tuning of everything
    dae = DeepAutoencoder(stack)                    # or unrolled: encoders up, their decoders back down

A block is any registered model built from ``n_visible`` and ``n_hidden`` that has ``encode(x)`` (and ``decode(h)``
for unrolling) and trains with the engine on batches ``(x,)``: the autoencoders here, RBMs later.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import PositiveInt, Probability, check_arguments
from ..registry import create_model, register_preset
from .autoencoder import Denoising, Loss, Noise, NoiseDraw, check_unit_interval
from .base import Batch, ErrorRateClassifier, Model

__all__ = ["LayerStack", "StackedModel", "DeepAutoencoder", "StackedClassifier"]


class LayerStack(nn.Module):
    """Blocks trained one at a time; block ``k`` learns from the codes of blocks ``0..k-1``.

    Parameters
    ----------
    blocks : sequence of nn.Module
        Each with ``n_visible``, ``n_hidden`` and ``encode``; sizes must chain.
    """

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        if not blocks:
            raise ConfigError("a layer stack needs at least one layer")
        for k in range(1, len(blocks)):
            below, above = blocks[k - 1].n_hidden, blocks[k].n_visible
            if below != above:
                raise ConfigError(
                    f"layer sizes do not chain: layer {k} gives {below} units but layer {k + 1} takes {above}"
                )
        self.blocks = nn.ModuleList(blocks)

    @classmethod
    def build(
        cls,
        layer_sizes: Sequence[int],
        block: str = "autoencoder",
        block_args: dict[str, Any] | None = None,
        corruption_levels: Sequence[float] | None = None,
    ) -> LayerStack:
        """Blocks ``layer_sizes[k] -> layer_sizes[k + 1]`` of the registered model ``block``; ``corruption_levels``
        gives each block its own noise level."""
        sizes = list(layer_sizes)
        if len(sizes) < 2 or any(not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1 for n in sizes):
            raise ConfigError(f"model.layer_sizes must list 2 or more positive sizes (input first), got {sizes}")
        levels = list(corruption_levels) if corruption_levels is not None else None
        if levels is not None and len(levels) != len(sizes) - 1:
            raise ConfigError(
                f"model.corruption_levels has {len(levels)} values for {len(sizes) - 1} layers; give one per layer"
            )
        blocks = []
        for k in range(len(sizes) - 1):
            args = dict(block_args or {})
            if levels is not None:
                if not 0.0 <= levels[k] <= 1.0:
                    raise ConfigError(f"model.corruption_levels[{k}] must be in [0, 1], got {levels[k]}")
                args["corruption_level"] = levels[k]
            if k:
                args["image_shape"] = None  # only the first layer's filters are pictures
            blocks.append(create_model(block, n_visible=sizes[k], n_hidden=sizes[k + 1], **args))
        return cls(blocks)

    @property
    def sizes(self) -> list[int]:
        return [self.blocks[0].n_visible] + [b.n_hidden for b in self.blocks]

    def encode(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """The code of the first ``upto`` blocks (all by default)."""
        for block in self.blocks[:upto]:
            x = block.encode(x)
        return x

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Back down through every block's decoder."""
        for block in reversed(self.blocks):
            h = block.decode(h)
        return h

    @torch.no_grad()
    def inputs_for(self, k: int, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """What block ``k`` trains on: ``x`` through the frozen blocks below it."""
        if k == 0:
            return x
        was = self.training
        self.eval()
        out = torch.cat([self.encode(x[i : i + chunk], upto=k) for i in range(0, len(x), chunk)])
        self.train(was)
        return out


class StackedModel:
    """What layer-wise pretraining needs from a model built on a :class:`LayerStack` (a mixin of the stacked
    autoencoder and classifier models and of the deep belief network)."""

    stack: LayerStack

    @classmethod
    def on_stack(cls, stack: LayerStack, freeze: int, *args: Any, **kwargs: Any) -> Any:
        """``cls(stack, *args, **kwargs)`` with its lowest ``freeze`` blocks fixed: what the registered
        ``from_layers`` constructors return."""
        model = cls(stack, *args, **kwargs)
        model.freeze(freeze)
        return model

    def set_dropout(self, dropout: Sequence[float] | None, n_inputs: int, top: str) -> None:
        """Keep ``dropout``, the rates for the inputs of ``n_inputs`` layers, the last of them the ``top`` layer
        (None: no dropout); a ConfigError unless they are ``n_inputs`` rates in [0, 1)."""
        rates = [0.0] * n_inputs if dropout is None else list(dropout)
        if len(rates) != n_inputs or not all(0.0 <= r < 1.0 for r in rates):
            raise ConfigError(
                f"model.dropout must give {n_inputs} rates in [0, 1) (the input of every layer and of the {top} "
                f"layer), got {dropout}"
            )
        self.dropout = rates

    def drop(self, x: torch.Tensor, rate: float) -> torch.Tensor:
        """x with (inverted) dropout at ``rate`` in training mode; x itself otherwise."""
        return nn.functional.dropout(x, rate) if self.training and rate else x

    def pretrain_blocks(self) -> list[nn.Module]:
        return list(self.stack.blocks)

    def pretrain_inputs(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return self.stack.inputs_for(k, x)

    def freeze(self, n_layers: int) -> None:
        """Keep the lowest ``n_layers`` blocks fixed (no gradients) from now on."""
        if not 0 <= n_layers <= len(self.stack.blocks):
            raise ConfigError(f"model.freeze must be in [0, {len(self.stack.blocks)}], got {n_layers}")
        for k, block in enumerate(self.stack.blocks):
            block.requires_grad_(k >= n_layers)

    def weight_images(self) -> dict[str, torch.Tensor]:
        return self.stack.blocks[0].weight_images()

    def check_input(self, x: torch.Tensor) -> None:
        """The stack's input shape, and [0, 1] when the first block's loss is cross-entropy."""
        n = self.stack.sizes[0]
        if x.ndim != 2 or x.shape[1] != n:
            raise ConfigError(f"the stack's first layer takes inputs of shape (n, {n}), got {tuple(x.shape)}")
        if getattr(self.stack.blocks[0], "loss", "") == "bce":
            check_unit_interval(x, "the first layer's loss 'bce'")


class DeepAutoencoder(StackedModel, Denoising, Model):
    """The stack unrolled: ``x -> encoders up -> code -> decoders down -> reconstruction``.

    Fine-tuning trains every encoder and decoder on the reconstruction of the clean input, optionally from a
    corrupted one (cookbook 8.5: Gaussian 0.3 drawn once). Metrics per image: ``sse`` (squared error summed over
    pixels, Hinton & Salakhutdinov's measure) and ``mse`` (mean over pixels).
    """

    def __init__(
        self,
        stack: LayerStack,
        *,
        loss: Loss = "mse",
        corruption: Noise = "none",
        corruption_level: Probability = 0.0,
        noise: NoiseDraw = "batch",
        image_shape: tuple[PositiveInt, ...] | None = (28, 28),
        compare_pca: bool = False,
    ) -> None:
        super().__init__()
        check_arguments(DeepAutoencoder.__init__, locals())
        self.compare_pca = compare_pca
        self.stack = stack
        self.loss, self.corruption, self.corruption_level, self.noise = loss, corruption, corruption_level, noise
        n = stack.sizes[0]
        self.image_shape = tuple(image_shape) if image_shape and int(torch.tensor(image_shape).prod()) == n else None

    @classmethod
    def from_layers(
        cls,
        layer_sizes: list[int] | None = None,
        block: str = "autoencoder",
        block_args: dict[str, Any] | None = None,
        corruption_levels: list[float] | None = None,
        loss: str = "mse",
        corruption: str = "none",
        corruption_level: float = 0.0,
        noise: str = "batch",
        freeze: int = 0,
        image_shape: list[int] | None = None,
        compare_pca: bool = False,
        *,
        base_sizes: Sequence[int],
        base_block_args: Mapping[str, Any] | None = None,
    ) -> DeepAutoencoder:
        """A deep autoencoder on a new stack of ``block`` models of ``layer_sizes`` (None: ``base_sizes``), each
        built with ``base_block_args`` updated by ``block_args``; the lowest ``freeze`` blocks fixed. The presets
        registered below fix ``base_sizes`` and ``base_block_args``."""
        args = {**(base_block_args or {}), **(block_args or {})}
        stack = LayerStack.build(list(layer_sizes or base_sizes), block, args, corruption_levels)
        noisy = {"corruption": corruption, "corruption_level": corruption_level, "noise": noise}
        shape = tuple(image_shape or (28, 28))
        return cls.on_stack(stack, freeze, loss=loss, **noisy, image_shape=shape, compare_pca=compare_pca)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack.encode(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack.decode(self.stack.encode(x))

    def check_data(self, x: torch.Tensor) -> None:
        self.check_input(x)
        if self.loss == "bce":
            check_unit_interval(x, "loss 'bce'")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction before the first block's output non-linearity."""
        h = self.stack.encode(x)
        for block in reversed(self.stack.blocks[1:]):
            h = block.decode(h)
        return self.stack.blocks[0].decode_logits(h)

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x_in, target = self._inputs(batch)
        if self.loss == "bce":
            z = self.logits(x_in).float()
            per_image = nn.functional.binary_cross_entropy_with_logits(z, target, reduction="none").sum(1)
        else:
            err = (self(x_in).float() - target).pow(2)
            per_image = err.mean(1) if self.loss == "mse" else err.sum(1)
        return per_image.mean(), {}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x_in, target = self._inputs(batch)
        err = (self(x_in).float() - target).pow(2)
        return {"mse": err.mean(1), "sse": err.sum(1)}

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """PCA with as many components as the code has units, fitted on the clean training images: the squared
        reconstruction error per image on each evaluation split (``test_pca_sse``), Hinton & Salakhutdinov's
        baseline."""
        if not self.compare_pca:
            return {}
        train = data.train.x if data.train.clean is None else data.train.clean
        k = self.stack.sizes[-1]
        x = train.double()
        mean = x.mean(0)
        _, vecs = torch.linalg.eigh((x - mean).T @ (x - mean))
        basis = vecs[:, -k:]  # the top-k principal directions
        out = {}
        for name, part in data.splits().items():
            if name == "train":
                continue
            clean = (part.x if part.clean is None else part.clean).double()
            x_in = part.x.double()  # PCA sees the same (possibly noisy) input as the network
            recon = (x_in - mean) @ basis @ basis.T + mean
            err = (recon - clean).pow(2)
            out[f"{name}_pca_sse"] = float(err.sum(1).mean())
            out[f"{name}_pca_mse"] = float(err.mean())
        return out


class StackedClassifier(StackedModel, ErrorRateClassifier):
    """The stack's code into a linear softmax layer; fine-tuned end to end with cross-entropy.

    Evaluation adds ``error``: the misclassification rate in percent (deeplearning.net reports test error).
    ``dropout`` (rates for the input of every layer and of the softmax layer) regularises fine-tuning.
    """

    def __init__(self, stack: LayerStack, n_classes: PositiveInt = 10, dropout: Sequence[float] | None = None) -> None:
        super().__init__()
        if n_classes < 2:
            raise ConfigError(f"model.n_classes must be >= 2, got {n_classes}")
        self.set_dropout(dropout, len(stack.blocks) + 1, "softmax")
        self.stack = stack
        self.head = nn.Linear(stack.sizes[-1], n_classes)
        nn.init.zeros_(self.head.weight)  # deeplearning.net's LogisticRegression layer starts at zero
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_layers(
        cls,
        layer_sizes: list[int] | None = None,
        n_classes: PositiveInt = 10,
        block: str = "autoencoder",
        block_args: dict[str, Any] | None = None,
        corruption_levels: list[float] | None = None,
        freeze: int = 0,
        dropout: list[float] | None = None,
    ) -> StackedClassifier:
        """deeplearning.net SdA: 784-1000-1000-1000 tied denoising blocks (masking 0.1/0.2/0.3, cross-entropy,
        Glorot-sigmoid init) pretrained one at a time, then a softmax layer and supervised fine-tuning of
        everything."""
        args = {"tied": True, "loss": "bce", "init": "glorot-sigmoid", "corruption": "masking", **(block_args or {})}
        sizes = layer_sizes or [784, 1000, 1000, 1000]
        if corruption_levels is None:  # deeplearning.net's 0.1, 0.2, 0.3 (then 0.3 for deeper stacks)
            corruption_levels = [min(0.1 * (k + 1), 0.3) for k in range(len(sizes) - 1)]
        return cls.on_stack(LayerStack.build(sizes, block, args, corruption_levels), freeze, n_classes, dropout)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack.encode(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; in training mode with ``dropout``, each layer's input is dropped out (inverted dropout)."""
        for block, rate in zip(self.stack.blocks, self.dropout):
            x = block.encode(self.drop(x, rate))
        return self.head(self.drop(x, self.dropout[-1]))

    def check_data(self, x: torch.Tensor) -> None:
        self.check_input(x)


register_preset(
    "stacked-autoencoder",
    DeepAutoencoder.from_layers,
    doc="Cookbook 8.5: 784-500-50 tied sigmoid blocks pretrained on clean data, then fine-tuned unrolled on inputs "
    "with Gaussian noise 0.3 (drawn once) against the clean images.",
    fixed={"base_sizes": (784, 500, 50), "base_block_args": {"tied": True}, "compare_pca": False},
    corruption="gaussian",
    corruption_level=0.3,
    noise="once",
)
register_preset(
    "deep-autoencoder",
    DeepAutoencoder.from_layers,
    doc="Hinton & Salakhutdinov's 784-1000-500-250-30 deep autoencoder: pretrained layer-wise, unrolled, "
    "fine-tuned; reports PCA with as many components as the code on the same split beside it.",
    fixed={
        "base_sizes": (784, 1000, 500, 250, 30),
        "base_block_args": {"init": "glorot-sigmoid"},
        "corruption_levels": None,
        "corruption": "none",
        "corruption_level": 0.0,
        "noise": "batch",
    },
    compare_pca=True,
)
register_preset("stacked-denoising-classifier", StackedClassifier.from_layers)
