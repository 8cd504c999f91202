"""Recurrent classifiers. First: the row-by-row MNIST LSTM of the course lab and blogs 000/001.

Each 28x28 image is a sequence of 28 rows of 28 pixels; an LSTM reads them and a linear layer classifies its
output at the last step. Initialised as TensorFlow 1's ``BasicLSTMCell`` was: Glorot-uniform kernel over the
concatenated [input, hidden] -> 4*hidden matrix, zero biases, and ``forget_bias`` added to the forget gate (here
put into the forget-gate bias, where torch keeps it trainable).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register_model
from .base import Classifier

__all__ = ["LSTMClassifier", "lstm_classifier"]


class LSTMClassifier(Classifier):
    """LSTM over a sequence, linear readout of the last output.

    Parameters
    ----------
    input_size : int
        Features per step (28 pixels per row); inputs of shape (batch, steps * input_size) are reshaped.
    hidden_size, num_layers, num_classes : int
    forget_bias : float
        Added to the forget-gate bias at initialisation (TF's ``forget_bias=1.0``).
    readout_std : float
        Standard deviation of the readout weights and bias (001: ``tf.random_normal``, 1.0; 000: 0.01).
    """

    def __init__(
        self,
        input_size: int = 28,
        hidden_size: int = 128,
        num_layers: int = 1,
        num_classes: int = 10,
        forget_bias: float = 1.0,
        readout_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_classes)
        h = hidden_size
        with torch.no_grad():
            for layer in range(num_layers):
                n_in = input_size if layer == 0 else hidden_size
                bound = math.sqrt(6.0 / (n_in + h + 4 * h))  # glorot over the (n_in + h, 4h) TF kernel
                getattr(self.lstm, f"weight_ih_l{layer}").uniform_(-bound, bound)
                getattr(self.lstm, f"weight_hh_l{layer}").uniform_(-bound, bound)
                getattr(self.lstm, f"bias_hh_l{layer}").zero_()
                bias = getattr(self.lstm, f"bias_ih_l{layer}")
                bias.zero_()
                bias[h : 2 * h] = forget_bias  # torch gate order: input, forget, cell, output
            self.readout.weight.normal_(0.0, readout_std)
            self.readout.bias.normal_(0.0, readout_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, steps, input_size) or (batch, steps * input_size) -> logits (batch, num_classes)."""
        x = x.reshape(x.shape[0], -1, self.input_size)
        out, _ = self.lstm(x)  # (batch, steps, hidden)
        return self.readout(out[:, -1])


@register_model("lstm-classifier")
def lstm_classifier(
    input_size: int = 28,
    hidden_size: int = 128,
    num_layers: int = 1,
    num_classes: int = 10,
    forget_bias: float = 1.0,
    readout_std: float = 1.0,
) -> LSTMClassifier:
    """Row-by-row sequence classifier (course lab / blog 001: 128 units; blog 000: 28 units)."""
    return LSTMClassifier(input_size, hidden_size, num_layers, num_classes, forget_bias, readout_std)
