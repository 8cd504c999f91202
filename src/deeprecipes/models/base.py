"""The contract between models and the training engine (Keras-style progressive disclosure).

A model is a ``torch.nn.Module`` that also defines how it learns from a batch. Override the smallest piece that
fits:

- ``compute_loss(batch)`` only: the default ``train_step`` does autocast, backward, clipping, penalties and the
  optimizer step through the engine (autoencoders with a penalty override just this).
- ``configure_optimizers()``: the named optimizers and parameter groups the model trains with (default: one,
  "main", over all trainable parameters).
- ``train_step(batch, engine)``: any update rule — two optimizers (GANs, via ``engine.step(loss, "d")``), no
  autograd at all (RBM contrastive divergence), an environment loop (reinforcement learning).
- ``eval_step(batch)``: per-sample metrics, averaged over the whole evaluation set by the engine (or summed, for
  names in ``summed_metrics``).

Deployment (:mod:`deeprecipes.deploy`) asks a model for its export view: ``export_module()`` (the module a client
runs: the model itself by default; a VAE's decoder, a GAN's generator, one step of a language model),
``export_inputs(x)`` (its named inputs, made from real inputs of the run's data) and ``export_outputs()``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["Model", "Classifier", "ErrorRateClassifier", "Regressor", "straight_lines"]

Batch = tuple[torch.Tensor, ...]


def straight_lines(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced points on the straight line from each row of ``start`` (n, d) to the same row of
    ``end``: (n * steps, d), a line's points together, the first of each its ``start`` and the last its ``end``
    (latent interpolations)."""
    t = torch.linspace(0, 1, steps, device=start.device, dtype=start.dtype)[None, :, None]
    return (start[:, None] * (1 - t) + end[:, None] * t).reshape(-1, start.shape[-1])


class Model(nn.Module):
    """Base class of every trainable deeprecipes model."""

    #: metric names the engine reports as totals over the evaluation set instead of means
    summed_metrics: ClassVar[frozenset[str]] = frozenset()
    #: True for a model whose own ``train_step`` changes weights only through ``engine.step`` (which averages the
    #: gradients over data-parallel ranks); the default ``train_step`` always does
    steps_through_engine: ClassVar[bool] = False
    #: a logged training scalar and a floor: the scalar staying below the floor for ``train.collapse_steps`` steps
    #: in a row means training has failed (a GAN's ``d_loss`` pinned at 0), and the run stops with one line
    collapse_signal: ClassVar[tuple[str, float] | None] = None

    @classmethod
    def supports_data_parallel(cls) -> bool:
        """Whether data-parallel ranks stay in step with this model: its weights change only in ``engine.step``."""
        return cls.train_step is Model.train_step or cls.steps_through_engine

    def reducers(self) -> dict[str, Any]:
        """Whole-set evaluation metrics: name -> :class:`deeprecipes.training.metrics.Reducer`, each fed with the
        ``eval_step`` value of that name (AUC, FID, episode returns). The others are per-sample means (totals for
        ``summed_metrics``). None by default."""
        return {}

    def configure_optimizers(self) -> dict[str, list[dict[str, Any]]]:
        """The optimizers this model trains with: name -> parameter groups (``{"params": [...], "name": ...}``).

        The default is one optimizer, "main", over every parameter that requires a gradient (none when there are
        none). A recipe sets each one in ``[optimizers.NAME]`` (``[optimizer]`` is the short form of "main"); a
        group's ``name`` is what ``lr_scale`` refers to. GANs return ``{"g": ..., "d": ...}``; models that learn
        without gradients (SOM, k-means, PCA) return ``{}``.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return {"main": [{"params": params}]} if params else {}

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the scalar loss to minimise and extra scalars to log (without the ``loss`` key)."""
        raise NotImplementedError(f"{type(self).__name__} must define compute_loss or train_step")

    #: ``compute_loss`` compiled by :meth:`compile` (None: eager)
    _compiled_loss: Callable[[Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """``torch.compile`` what training runs (``train.compile = true``): the module's call, as
        ``nn.Module.compile`` does, and ``compute_loss``, which the default ``train_step`` calls. Compiling the call
        alone would leave a model whose loss never calls ``forward`` (a VAE, a CapsNet) uncompiled, since
        ``torch.compile`` skips torch's own modules at the top level. A model with its own ``train_step`` gets the
        compiled call only."""
        super().compile(*args, **kwargs)
        self._compiled_loss = torch.compile(self.compute_loss, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # a copy compiles afresh, as nn.Module's does: a compiled function would still call the original's loss
        state = super().__getstate__()
        state.pop("_compiled_loss", None)
        return state

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        """One optimisation step; returns scalars to log (tensors, not synced)."""
        with engine.autocast():
            loss, logs = (self._compiled_loss or self.compute_loss)(batch)
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

    def data_args(self) -> dict[str, Any]:
        """Builder arguments that ``prepare_data`` decided from the data (a vocabulary's size): they join the
        recipe's in the run's ``model.json``, so :func:`deeprecipes.load_run` builds the same shapes. None by
        default."""
        return {}

    def restore_data(self, meta: dict[str, Any]) -> None:
        """Take back the data transform state a run recorded (the JSON-safe part of the dataset's ``meta``),
        instead of ``prepare_data``, when a model is rebuilt without its data. Nothing by default."""

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """Baselines computed on the same data at the end of a run (e.g. PCA beside a deep autoencoder); they join
        the final metrics. Empty by default."""
        return {}

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Images worth looking at for this batch: name -> tensor (n, H, W) in [0, 1]. Empty when none."""
        return {}

    def step_histograms(self) -> dict[str, torch.Tensor]:
        """Values of the last training step worth a histogram in TensorBoard at every logging step (a GAN's D(real)
        and D(fake)): name -> tensor. Empty by default."""
        return {}

    def weight_images(self) -> dict[str, torch.Tensor]:
        """Learned filters as images: name -> tensor (n, H, W). Empty when the model has none."""
        return {}

    def export_module(self) -> nn.Module:
        """The module a deployment runs (export, quantization, serving): the model itself by default. Its forward
        takes the tensors of :meth:`export_inputs`, in that order, and returns those named by
        :meth:`export_outputs`."""
        return self

    def export_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named inputs of :meth:`export_module`, made from ``x``, a batch of real inputs of the run's data (test
        inputs); axis 0 of every one is the batch. ``{"x": x}`` by default."""
        return {"x": x}

    def export_outputs(self) -> list[str]:
        """The names of :meth:`export_module`'s outputs, in order (default: one, ``output``)."""
        return ["output"]

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """Pictures only this model knows how to draw (a fitted line over the data, feature maps of one digit, a 2-D
        embedding), written as PNGs into ``fig_dir`` from the run's DataSplits; returns the files. None by default.
        Called at the end of a run and by ``deeprecipes figures``, after the generic pictures."""
        return []


class Classifier(Model):
    """A model whose ``forward(x)`` returns class logits; trained with softmax cross-entropy.

    Subclasses define only ``forward``. Logs batch accuracy during training; evaluation reports per-sample loss
    and accuracy (averaged over the whole set). At the end of a run the runner draws the test set's confusion
    matrix and reports per-class accuracy from ``predict``.
    """

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class labels (batch,)."""
        return self(x).argmax(1)

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


class ErrorRateClassifier(Classifier):
    """A :class:`Classifier` whose evaluation adds ``error``: the misclassification rate in percent (deeplearning.net
    reports test error)."""

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = super().eval_step(batch)
        out["error"] = 100.0 * (1.0 - out["accuracy"])
        return out


class Regressor(Model):
    """A model whose ``forward(x)`` returns predictions of shape (batch, n_targets) for float targets.

    ``loss`` is ``"mse"`` (mean squared error), ``"l1"`` (mean absolute error) or ``"huber"`` (``huber_delta``).
    Evaluation reports per-sample squared and absolute error; at the end of a run ``reference_metrics`` adds
    RMSE and R^2 on the test split (R^2 = 1 - SSE / SST, SST around the test targets' own mean).
    """

    LOSSES: ClassVar[tuple[str, ...]] = ("mse", "l1", "huber")
    loss: str = "mse"
    huber_delta: float = 1.0

    def set_loss(self, loss: str, huber_delta: float, model_name: str) -> None:
        """Check and keep the loss choice; a bad name is a ConfigError naming the model."""
        if loss not in self.LOSSES:
            raise ConfigError(f"model '{model_name}' loss must be 'mse', 'l1' or 'huber'; got {loss!r}")
        self.loss, self.huber_delta = loss, huber_delta

    def _targets(self, y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return y.reshape(pred.shape).to(pred.dtype)

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        pred = self(x)
        y = self._targets(y, pred)
        if self.loss == "mse":
            loss = nn.functional.mse_loss(pred, y)
        elif self.loss == "l1":
            loss = nn.functional.l1_loss(pred, y)
        elif self.loss == "huber":
            loss = nn.functional.huber_loss(pred, y, delta=self.huber_delta)
        else:
            raise ConfigError(f"loss must be 'mse', 'l1' or 'huber'; got {self.loss!r}")
        return loss, {}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        pred = self(x).float()
        err = pred - self._targets(y, pred)
        return {"mse": err.pow(2).mean(1), "mae": err.abs().mean(1)}

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        test = getattr(data, "test", None)
        if test is None or test.y is None:
            return {}
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        pred = self(test.x.to(device)).float().cpu()
        self.train(was)
        y = self._targets(test.y, pred).float()
        sse = (pred - y).pow(2).sum().item()
        sst = (y - y.mean(0)).pow(2).sum().item()
        return {"test_rmse": (sse / y.numel()) ** 0.5, "test_r2": 1.0 - sse / sst if sst > 0 else float("nan")}
