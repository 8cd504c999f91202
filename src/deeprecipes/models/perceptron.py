"""Rosenblatt's single-layer perceptron with a threshold activation, trained by the perceptron rule (cookbook 3.2).

The rule ``W <- W + eta * X^T (Y - Y_hat)`` is applied directly in ``train_step``; no autograd and no optimizer
(the threshold has no useful gradient). The book's loop runs while the mean squared error of the epoch, measured
before its update, is above ``epsilon`` (and for at most ``max_epochs``): here the model sets
``engine.should_stop`` when that error reaches ``epsilon``, and the run's ``train.epochs`` is the maximum.

``compute_loss`` gives the perceptron criterion ``-sum((Y - Y_hat) * z)`` (z = X W, Y_hat held fixed), whose
gradient step with learning rate ``eta`` is exactly the rule, for use with the engine's ordinary optimizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError
from ..params import NonNegative, Positive, PositiveInt, check_arguments
from ..registry import register_model
from .base import Batch, Regressor

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["Perceptron", "threshold"]


def threshold(z: torch.Tensor) -> torch.Tensor:
    """The book's step: 0 where z < 0, else 1 (``tf.where(tf.less(z, 0), 0, 1)``)."""
    return (z >= 0).to(z.dtype)


@register_model("perceptron")
class Perceptron(Regressor):
    """``Y_hat = threshold(x W + b)`` with targets in {0, 1}.

    Registered as ``perceptron``: single-layer perceptron (cookbook 3.2: n_inputs 4 with the bias column, bias
    false, eta 0.4, std 2).

    Parameters
    ----------
    n_inputs : int
        Inputs per sample; with the book's constant bias column in the data, that column included (4).
    bias : bool
        A separate bias weight. The book has none: its bias is the weight on the data's column of ones.
    eta : float
        Learning rate of the perceptron rule (the book: 0.4).
    std : float
        Weights (and bias) start ~ N(0, std) (the book: ``tf.random_normal([4, 1], stddev=2)``).
    epsilon : float
        Stop once an epoch's mean squared error is at most this (the book: 1e-3).
    """

    def __init__(
        self,
        n_inputs: PositiveInt = 3,
        bias: bool = True,
        eta: Positive = 0.4,
        std: NonNegative = 2.0,
        epsilon: NonNegative = 1e-3,
    ) -> None:
        super().__init__()
        check_arguments(Perceptron.__init__, locals())
        self.n_inputs, self.eta, self.epsilon = n_inputs, eta, epsilon
        self.weight = nn.Parameter(torch.randn(n_inputs, 1) * std)
        self.bias = nn.Parameter(torch.randn(1) * std) if bias else None

    def activity(self, x: torch.Tensor) -> torch.Tensor:
        """z = x W + b, (batch, 1)."""
        z = x.reshape(len(x), -1) @ self.weight
        return z if self.bias is None else z + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n_inputs) -> 0/1 predictions (batch, 1)."""
        return threshold(self.activity(x))

    def check_data(self, x: torch.Tensor) -> None:
        d = x.reshape(len(x), -1).shape[1]
        if d != self.n_inputs:
            raise ConfigError(f"model 'perceptron' has n_inputs={self.n_inputs} but the data have {d} columns")

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        z = self.activity(x)
        y = y.reshape(z.shape).to(z.dtype)
        miss = (y - threshold(z)).detach()
        return -(miss * z).sum(), {"error": miss.pow(2).mean()}

    @torch.no_grad()
    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        x = x.reshape(len(x), -1)
        miss = y.reshape(len(y), 1).to(x.dtype) - self(x)  # Y - Y_hat, (batch, 1)
        error = miss.pow(2).mean()  # the book's mean_error, before this update
        self.weight += self.eta * x.T @ miss
        if self.bias is not None:
            self.bias += self.eta * miss.sum(0)
        if float(error) <= self.epsilon:
            engine.should_stop = True
            engine.stop_reason = f"mean error {float(error):g} <= epsilon {self.epsilon:g} in epoch {engine.epoch + 1}"
        return {"loss": error, "error": error}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = super().eval_step(batch)
        x, y = batch[0], batch[1]
        out["accuracy"] = (self(x).reshape(-1) == y.reshape(-1).to(x.dtype)).float()
        return out
