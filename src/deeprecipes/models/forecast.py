"""GRU encoder-decoder forecaster (TensorFlow 1.x Deep Learning Cookbook 6.5, from
guillaume-chevalier/seq2seq-signal-prediction, MIT).

``basic_rnn_seq2seq`` with ``MultiRNNCell([GRUCell(12), GRUCell(12)])``: an encoder GRU stack reads the 40 past
values, its final state starts a decoder stack with separate weights, whose inputs are a zero "GO" vector followed by
the encoder inputs without their last step (``[GO] + enc_inp[:-1]``; no teacher forcing, nothing from the future),
and each decoder output becomes ``output_scale_factor * (h @ w_out + b_out)`` (the scale learnable, starting at 1;
``w_out`` and ``b_out`` drawn from N(0, 1) as ``tf.random_normal``).

Normalisation, exactly as the source: per window and per feature, from the input window only (along time),
``mean`` and ``std`` each + 1e-5, ``x_n = (x - mean) / (2.5 std)``, and the target scaled with the same numbers. The
model does this itself, so the data stay in their units and predictions come back in them. The source's loss is
``sum_t reduce_mean(tf.nn.l2_loss(y_t - Y_t))``, which is half the sum of squared errors over the batch, the steps
and the features (``l2_loss`` is already a scalar): ``loss="tf-sum"``; ``loss="mse"`` is the plain mean. Its L2 term,
``lambda * sum l2_loss(w)`` = ``lambda / 2 * sum w**2`` over the weights, is the engine's ``train.l2 = lambda / 2``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import OneOf, check_arguments, choices
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Batch, Model

__all__ = ["GRUForecaster", "normalise"]

Loss = Annotated[str, OneOf("tf-sum", "mse")]
LOSSES = choices(Loss)


def normalise(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The source's per-window scaling from the input window only: x (B, T, d) -> (x_n, mean, scale), with
    ``x_n = (x - mean) / scale``, ``scale = 2.5 * (std + eps)``, mean and scale of shape (B, 1, d)."""
    mean = x.mean(1, keepdim=True) + eps
    std = x.std(1, keepdim=True, unbiased=False) + eps  # np.std, as the source
    scale = 2.5 * std
    return (x - mean) / scale, mean, scale


@register_model("gru-forecaster")
class GRUForecaster(Model):
    """Sequence-to-sequence GRU forecaster: past window (B, window, d) -> future (B, horizon, d), in data units.

    Registered as ``gru-forecaster`` (cookbook 6.5: 2 x GRU 12, 40 steps in, 40 out).

    Parameters
    ----------
    input_dim : int
        Features per step (the source: 2, USD and EUR; here 1 per series).
    hidden_size, num_layers : int
        The source: 2 x GRU 12.
    horizon : int
        Steps predicted; at most the window length (the decoder reads the window's first ``horizon - 1`` steps).
    loss : str
        ``tf-sum`` (the source's, half the summed squared error on the normalised scale) or ``mse``.
    """

    def __init__(
        self, input_dim: int = 1, hidden_size: int = 12, num_layers: int = 2, horizon: int = 40, loss: Loss = "tf-sum"
    ) -> None:
        super().__init__()
        for name, v in (("input_dim", input_dim), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if v < 1:
                raise ConfigError(f"model 'gru-forecaster' {name} must be >= 1, got {v}")
        if horizon < 1:
            raise ConfigError(f"model 'gru-forecaster' horizon must be >= 1 (a sequence of length zero), got {horizon}")
        check_arguments(GRUForecaster.__init__, locals())
        self.input_dim, self.hidden_size, self.horizon, self.loss = input_dim, hidden_size, horizon, loss
        self.encoder = nn.GRU(input_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = nn.GRU(input_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.w_out = nn.Parameter(torch.randn(hidden_size, input_dim))
        self.b_out = nn.Parameter(torch.randn(input_dim))
        self.output_scale_factor = nn.Parameter(torch.tensor(1.0))
        h = hidden_size
        with torch.no_grad():
            for gru in (self.encoder, self.decoder):
                for layer in range(num_layers):
                    n_in = input_dim if layer == 0 else h
                    w_ih, w_hh = getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}")
                    # TF's GRUCell: glorot-uniform gate kernel (n_in + h, 2h) and candidate kernel (n_in + h, h)
                    for rows, fan_out in ((slice(0, 2 * h), 2 * h), (slice(2 * h, 3 * h), h)):
                        bound = math.sqrt(6.0 / (n_in + h + fan_out))
                        w_ih[rows].uniform_(-bound, bound)
                        w_hh[rows].uniform_(-bound, bound)
                    getattr(gru, f"bias_hh_l{layer}").zero_()
                    b = getattr(gru, f"bias_ih_l{layer}")
                    b.zero_()
                    b[: 2 * h] = 1.0  # gate bias 1.0, candidate bias 0 (torch order r, z, n)

    def check_data(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ConfigError(
                f"model 'gru-forecaster' needs windows of shape (n, steps, {self.input_dim}) (input_dim); "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] < self.horizon:
            raise ConfigError(
                f"model 'gru-forecaster' horizon={self.horizon} is longer than the input window ({x.shape[1]} steps)"
            )

    def forward_normalised(self, xn: torch.Tensor) -> torch.Tensor:
        """Normalised window (B, window, d) -> normalised forecast (B, horizon, d)."""
        _, state = self.encoder(xn)
        go = xn.new_zeros(xn.shape[0], 1, xn.shape[2])
        dec_in = torch.cat([go, xn[:, : self.horizon - 1]], 1)  # [GO] + enc_inp[:-1] (window = horizon there)
        out, _ = self.decoder(dec_in, state)
        return self.output_scale_factor * (out @ self.w_out + self.b_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Past values (B, window, d) in data units -> forecast (B, horizon, d) in data units."""
        if x.ndim == 2:
            x = x[..., None]
        xn, mean, scale = normalise(x)
        return self.forward_normalised(xn) * scale + mean

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        xn, mean, scale = normalise(x)
        err = self.forward_normalised(xn) - (y.reshape(xn.shape[0], self.horizon, -1) - mean) / scale
        loss = 0.5 * err.pow(2).sum() if self.loss == "tf-sum" else err.pow(2).mean()
        return loss, {"norm_mse": err.detach().pow(2).mean()}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per window: squared and absolute error in data units (``mse``, ``mae``), the squared error on the
        source's normalised scale (``norm_mse``), and the naive last-value forecast's squared error."""
        x, y = batch[0], batch[1]
        xn, mean, scale = normalise(x)
        pred = self.forward_normalised(xn).float()
        y = y.reshape(pred.shape).float()
        err = pred * scale + mean - y
        naive = x[:, -1:] - y
        return {
            "mse": err.pow(2).mean((1, 2)),
            "mae": err.abs().mean((1, 2)),
            "norm_mse": (pred - (y - mean) / scale).pow(2).mean((1, 2)),
            "naive_mse": naive.pow(2).mean((1, 2)),
        }

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        out = torch.cat([self(x[i : i + 2000].to(device)).float().cpu() for i in range(0, len(x), 2000)])
        self.train(was)
        return out

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """Test RMSE and MAE of the model and of the naive forecast (the last input value repeated over the
        horizon), and the model's RMSE as a fraction of the naive one (below 1: better than naive)."""
        test = getattr(data, "test", None)
        if test is None or test.y is None:
            return {}
        pred = self._predict(test.x)
        y = test.y.reshape(pred.shape).float()
        naive = test.x[:, -1:].float().expand_as(y)
        rmse = (pred - y).pow(2).mean().sqrt().item()
        naive_rmse = (naive - y).pow(2).mean().sqrt().item()
        return {
            "test_rmse": rmse,
            "test_mae": (pred - y).abs().mean().item(),
            "test_naive_rmse": naive_rmse,
            "test_naive_mae": (naive - y).abs().mean().item(),
            "test_rmse_vs_naive": rmse / naive_rmse if naive_rmse > 0 else float("nan"),
        }

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """Four test windows, evenly spread over the test period: past, true future, forecast and naive forecast."""
        test = getattr(data, "test", None)
        if test is None or test.y is None:
            return []
        n = len(test)
        picks = sorted({round(i * (n - 1) / 3) for i in range(4)})
        x, y = test.x[picks].float(), test.y[picks].float()
        pred = self._predict(test.x[picks])
        units = (getattr(data, "meta", {}) or {}).get("units", "")
        return [save_forecasts(x, y, pred, fig_dir / "forecast.png", title=f"{title}: test windows", units=units)]


def save_forecasts(
    x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, path: Path, title: str = "", units: str = ""
) -> Path:
    """Past window, true future, forecast and naive forecast, one panel per window (first feature)."""
    plt = pyplot()
    n = len(x)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    w, h = x.shape[1], y.shape[1]
    for i, ax in enumerate(axes.flat):
        past, fut, fc = x[i].reshape(w, -1)[:, 0], y[i].reshape(h, -1)[:, 0], pred[i].reshape(h, -1)[:, 0]
        ax.plot(range(w), past.numpy(), color="0.3", label="past (input)")
        ax.plot(range(w, w + h), fut.numpy(), color="tab:green", label="true future")
        ax.plot(range(w, w + h), fc.numpy(), color="tab:red", label="forecast")
        ax.plot([w, w + h - 1], [past[-1].item()] * 2, color="tab:blue", ls="--", label="naive (last value)")
        ax.set_xlabel("step")
        if i == 0:
            ax.set_ylabel(units)
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
