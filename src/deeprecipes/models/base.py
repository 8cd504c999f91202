"""The contract between models and the training engine (Keras-style progressive disclosure).

A model is a ``torch.nn.Module`` that also defines how it learns from a batch. Override the smallest piece that
fits:

- ``compute_loss(batch)`` only: the default ``train_step`` does autocast, backward, clipping, penalties and the
  optimizer step through the engine (autoencoders with a penalty override just this).
- ``train_step(batch, engine)``: any update rule — two optimizers (GANs, via ``engine.step(loss, "d")``), no
  autograd at all (RBM contrastive divergence), an environment loop (reinforcement learning).
- ``eval_step(batch)``: per-sample metrics, averaged over the whole evaluation set by the engine (or summed, for
  names in ``summed_metrics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["Model", "Classifier"]

Batch = tuple[torch.Tensor, ...]


class Model(nn.Module):
    """Base class of every trainable deeprecipes model."""

    #: metric names the engine reports as totals over the evaluation set instead of means
    summed_metrics: ClassVar[frozenset[str]] = frozenset()

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the scalar loss to minimise and extra scalars to log (without the ``loss`` key)."""
        raise NotImplementedError(f"{type(self).__name__} must define compute_loss or train_step")

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        """One optimisation step; returns scalars to log (tensors, not synced)."""
        with engine.autocast():
            loss, logs = self.compute_loss(batch)
        engine.step(loss)
        return {"loss": loss.detach(), **logs}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-sample metrics, each a tensor of shape (batch,)."""
        raise NotImplementedError(f"{type(self).__name__} must define eval_step")

    def check_data(self, x: torch.Tensor) -> None:
        """Called once on the training inputs before training: raise ConfigError when they do not fit the model
        (wrong shape, values outside [0, 1] for a cross-entropy loss)."""

    def prepare_data(self, data: Any) -> Any:
        """Called once on the loaded DataSplits (after seeding): return them, changed if the model needs it (noise
        drawn once for the whole set)."""
        return data

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """Baselines computed on the same data at the end of a run (e.g. PCA beside a deep autoencoder); they join
        the final metrics. Empty by default."""
        return {}

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Images worth looking at for this batch: name -> tensor (n, H, W) in [0, 1]. Empty when none."""
        return {}

    def weight_images(self) -> dict[str, torch.Tensor]:
        """Learned filters as images: name -> tensor (n, H, W). Empty when the model has none."""
        return {}


class Classifier(Model):
    """A model whose ``forward(x)`` returns class logits; trained with softmax cross-entropy.

    Subclasses define only ``forward``. Logs batch accuracy during training; evaluation reports per-sample loss
    and accuracy (averaged over the whole set).
    """

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        return loss, {"accuracy": (logits.argmax(1) == y).float().mean()}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        logits = self(x).float()
        return {
            "loss": nn.functional.cross_entropy(logits, y, reduction="none"),
            "accuracy": (logits.argmax(1) == y).float(),
        }
