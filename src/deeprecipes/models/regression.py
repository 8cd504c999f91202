"""Regression beyond a straight line: the cookbook's MLP function approximator (3.5), and the predicted-vs-actual
picture every regressor of this package draws.

The MLP is the book's ``n -> 20 ReLU -> 1 sigmoid`` network (``tf.contrib.layers.fully_connected``: Glorot-uniform
weights, zero biases), trained on targets min-max scaled to [0, 1] so the sigmoid can reach them. When the dataset
scaled the target (``meta["target_scale"]``), the end-of-run metrics add the RMSE and MAE in the target's own units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import Positive, PositiveInt
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Regressor

__all__ = ["MLPRegressor", "predictions", "save_predicted_vs_actual"]

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``model(x)`` in eval mode, in batches, on the model's device; returns float32 (n, outputs) on the CPU."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    model.train(was)
    return out.reshape(len(x), -1)


def _unscale(values: torch.Tensor, data: Any, part: str = "train") -> tuple[torch.Tensor, str]:
    meta = getattr(data, "meta", {})
    scale = meta.get("target_scale")
    if part == "test" and meta.get("target_scale_test"):  # cookbook 3.5's separately scaled test set
        scale = meta["target_scale_test"]
    if not scale:
        return values, ""
    return values * (scale["max"] - scale["min"]) + scale["min"], " (original units)"


def save_predicted_vs_actual(model: nn.Module, data: Any, path: Path, title: str = "") -> Path:
    """Scatter of predicted against actual targets (first output) for the test split, and the training split in
    grey, with the line y = x; in the target's own units when the dataset min-max scaled it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    lo, hi = float("inf"), float("-inf")
    for part, colour, size in (("train", "0.65", 8), ("test", "tab:blue", 14)):
        split = getattr(data, part, None)
        if split is None or split.y is None:
            continue
        pred, units = _unscale(predictions(model, split.x)[:, 0], data, part)
        actual, _ = _unscale(split.y.reshape(len(split.y), -1)[:, 0].float(), data, part)
        ax.scatter(actual.numpy(), pred.numpy(), s=size, color=colour, alpha=0.7, label=f"{part} ({len(actual)})")
        lo = min(lo, float(actual.min()), float(pred.min()))
        hi = max(hi, float(actual.max()), float(pred.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="predicted = actual")
    ax.set_xlabel(f"actual{units}")
    ax.set_ylabel(f"predicted{units}")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def scaled_metrics(model: Regressor, data: Any, metrics: dict[str, float]) -> dict[str, float]:
    """Add ``test_rmse_original`` and ``test_mae_original`` when the dataset min-max scaled the target (R^2 does not
    change under that scaling)."""
    scale = getattr(data, "meta", {}).get("target_scale")
    test = getattr(data, "test", None)
    if not scale or test is None or test.y is None:
        return metrics
    pred, _ = _unscale(predictions(model, test.x), data, "test")
    y, _ = _unscale(test.y.reshape(pred.shape).float(), data, "test")
    err = pred - y
    return {
        **metrics,
        "test_rmse_original": float(err.pow(2).mean().sqrt()),
        "test_mae_original": float(err.abs().mean()),
    }


@register_model("mlp-regressor")
class MLPRegressor(Regressor):
    """Fully connected network for regression: hidden layers with one activation, then a linear layer and an
    optional output squashing (sigmoid for targets scaled to [0, 1], as in cookbook 3.5).

    Registered as ``mlp-regressor``: cookbook 3.5's function approximator, n_inputs -> 20 ReLU -> 1 sigmoid (hidden
    default [20]).

    Parameters
    ----------
    n_inputs : int
    hidden : list of int
        Units per hidden layer (the book: [20]).
    activation : str
        Hidden activation: relu, sigmoid, tanh or identity.
    output : str
        Output activation: sigmoid (the book) or identity.
    n_outputs : int
    loss : str
        ``mse``, ``l1`` or ``huber``.
    """

    def __init__(
        self,
        n_inputs: PositiveInt = 3,
        hidden: list[PositiveInt] | None = None,
        activation: str = "relu",
        output: str = "sigmoid",
        n_outputs: PositiveInt = 1,
        loss: str = "mse",
        huber_delta: Positive = 1.0,
    ) -> None:
        super().__init__()
        hidden = [20] if hidden is None else list(hidden)
        for name, value in (("activation", activation), ("output", output)):
            if value not in ACTIVATIONS:
                raise ConfigError(
                    f"model 'mlp-regressor' {name} must be one of {', '.join(ACTIVATIONS)}; got {value!r}"
                )
        self.set_loss(loss, huber_delta, "mlp-regressor")
        self.n_inputs = n_inputs
        layers: list[nn.Module] = []
        sizes = [n_inputs, *hidden]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers += [nn.Linear(sizes[-1], n_outputs), ACTIVATIONS[output]()]
        self.net = nn.Sequential(*layers)
        with torch.no_grad():  # tf.contrib.layers.fully_connected: Glorot-uniform weights, zero biases
            for m in self.net:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    m.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n_inputs) -> (batch, n_outputs)."""
        return self.net(x.reshape(len(x), -1))

    def check_data(self, x: torch.Tensor) -> None:
        if x.reshape(len(x), -1).shape[1] != self.n_inputs:
            raise ConfigError(
                f"model 'mlp-regressor' has n_inputs={self.n_inputs} but the data have "
                f"{x.reshape(len(x), -1).shape[1]} features; set model.n_inputs"
            )

    def reference_metrics(self, data: Any) -> dict[str, float]:
        return scaled_metrics(self, data, super().reference_metrics(data))

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        return [save_predicted_vs_actual(self, data, fig_dir / "predicted-vs-actual.png", f"{title}: test set")]
