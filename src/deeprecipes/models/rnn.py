"""Recurrent classifiers and the sequence shapes. First: the row-by-row MNIST LSTM of the course lab and blogs 000/001.

Each 28x28 image is a sequence of 28 rows of 28 pixels; an LSTM reads them and a linear layer classifies its
output at the last step. Initialised as TensorFlow 1's ``BasicLSTMCell`` was: Glorot-uniform kernel over the
concatenated [input, hidden] -> 4*hidden matrix, zero biases, and ``forget_bias`` added to the forget gate (here
put into the forget-gate bias, where torch keeps it trainable).

Then the shapes of the cookbook's 6.6 over 0-padded token sequences of varying length, with any cell of
:func:`deeprecipes.models.cells.make_rnn`: many-to-one (:class:`SequenceClassifier`), many-to-many of the same length
(:class:`SequenceTagger`) and encoder-decoder (:class:`EncoderDecoder`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..params import NonNegative, PositiveInt, check_arguments, with_defaults
from ..registry import register_model
from .base import Classifier, Model
from .cells import make_rnn, run_rnn

__all__ = [
    "LSTMClassifier",
    "TokenRNN",
    "SequenceClassifier",
    "SequenceTagger",
    "EncoderDecoder",
]


@register_model("lstm-classifier")
class LSTMClassifier(Classifier):
    """LSTM over a sequence, linear readout of the last output.

    Registered as ``lstm-classifier``: row-by-row sequence classifier (course lab / blog 001: 128 units; blog 000:
    28 units).

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
        input_size: PositiveInt = 28,
        hidden_size: PositiveInt = 128,
        num_layers: PositiveInt = 1,
        num_classes: PositiveInt = 10,
        forget_bias: float = 1.0,
        readout_std: NonNegative = 1.0,
    ) -> None:
        check_arguments(LSTMClassifier.__init__, locals())
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


# ----------------------------------------------------------------------------------------------------------------
# sequence shapes (cookbook 6.6, Karpathy's figure): many-to-one, many-to-many of the same length, encoder-decoder.
# Inputs are token ids (batch, steps) padded with 0 at the end; lengths are where the padding starts, and padded steps
# never reach the state (packed sequences, or the peephole LSTM's mask).


def _lengths(x: torch.Tensor) -> torch.Tensor:
    return (x != 0).sum(1)


def _final_hidden(state: torch.Tensor | tuple[torch.Tensor, torch.Tensor], bidirectional: bool) -> torch.Tensor:
    """Last layer's final hidden state (both directions concatenated) -> (batch, hidden * directions)."""
    h = state[0] if isinstance(state, tuple) else state
    return torch.cat([h[-2], h[-1]], 1) if bidirectional else h[-1]


class TokenRNN(Model):
    """What the sequence classifier and the tagger share: a token embedding (0 = padding), the recurrent stack and
    a linear readout of its (both directions') output, built in this order.

    Parameters
    ----------
    vocab_size, embed_size : int
        Token ids 0..vocab_size-1, 0 being padding.
    cell : {"rnn", "lstm", "gru", "peephole-lstm"}
    hidden_size, num_layers : int
    bidirectional : bool
    dropout : float
        Between stacked layers.
    num_classes : int
    """

    def __init__(
        self,
        vocab_size: PositiveInt = 12,
        embed_size: PositiveInt = 16,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        num_classes: PositiveInt = 10,
    ) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.rnn = make_rnn(cell, embed_size, hidden_size, num_layers, dropout, bidirectional)
        self.readout = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def run_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """The recurrent stack over the embedded tokens x (batch, steps), each sequence to its own end: its
        outputs (batch, steps, hidden * directions) and final state."""
        x = x.long()
        return run_rnn(self.rnn, self.embedding(x), _lengths(x))


@register_model("rnn-sequence-classifier")
class SequenceClassifier(Classifier, TokenRNN):
    """Many-to-one: embed the tokens, run the recurrent stack to each sequence's own end, classify its final state.

    Registered as ``rnn-sequence-classifier``: over 0-padded token sequences of any length. Parameters as
    :class:`TokenRNN`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x int64 (batch, steps), 0-padded -> logits (batch, num_classes)."""
        _, state = self.run_tokens(x)
        return self.readout(_final_hidden(state, self.bidirectional))


@register_model("rnn-sequence-tagger")
class SequenceTagger(TokenRNN):
    """Many-to-many, same length: one class per input step (0 = padding, not scored).

    Registered as ``rnn-sequence-tagger``: stacked and bidirectional by default (a GRU of 2 layers each way, 12
    classes); otherwise the parameters of :class:`TokenRNN`.

    Evaluation reports per-sequence ``loss`` and ``accuracy``, each the mean over the sequence's own steps.
    """

    __init__ = with_defaults(
        TokenRNN.__init__,
        "SequenceTagger.__init__",
        cell="gru",
        num_layers=2,
        bidirectional=True,
        num_classes=12,
    )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x int64 (batch, steps) -> logits (batch, steps, num_classes)."""
        return self.readout(self.run_tokens(x)[0])

    def _scores(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch[0].long(), batch[1].long()
        logits = self(x).float()
        mask = (x != 0).float()
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
        return ce * mask, (logits.argmax(2) == y).float() * mask, mask

    def compute_loss(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ce, right, mask = self._scores(batch)
        n = mask.sum().clamp(min=1)
        return ce.sum() / n, {"accuracy": right.sum() / n}

    def eval_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        ce, right, mask = self._scores(batch)
        n = mask.sum(1).clamp(min=1)
        return {"loss": ce.sum(1) / n, "accuracy": right.sum(1) / n}


@register_model("rnn-encoder-decoder")
class EncoderDecoder(Model):
    """Encoder-decoder (unsynced many-to-many): the encoder's final state starts a decoder that writes the target
    sequence, fed the previous target token while training (teacher forcing) and its own output when decoding.

    Registered as ``rnn-encoder-decoder`` (teacher forcing in training, greedy decoding in evaluation).

    Targets ``y`` (batch, out_steps) end with ``eos`` and are 0-padded after it. The decoder reads token ``go``
    first. Evaluation reports per-sequence ``loss`` (teacher-forced, mean over the target's own tokens),
    ``accuracy`` (per token) and ``sequence_accuracy`` of greedy decoding (every token up to ``eos`` right).
    """

    def __init__(
        self,
        vocab_size: PositiveInt = 13,
        embed_size: PositiveInt = 16,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        eos: PositiveInt = 11,
        go: PositiveInt = 12,
    ) -> None:
        super().__init__()
        check_arguments(EncoderDecoder.__init__, locals())
        for name, token in (("eos", eos), ("go", go)):
            if token >= vocab_size:
                raise ConfigError(f"model.{name} must be a token below vocab_size = {vocab_size}, got {token}")
        self.eos, self.go = eos, go
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.encoder = make_rnn(cell, embed_size, hidden_size, num_layers, dropout)
        self.decoder = make_rnn(cell, embed_size, hidden_size, num_layers, dropout)
        self.readout = nn.Linear(hidden_size, vocab_size)

    def encode_state(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (batch, steps) -> the encoder's final state (the decoder's initial state)."""
        x = x.long()
        return run_rnn(self.encoder, self.embedding(x), _lengths(x))[1]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, out_steps, vocab) for targets y."""
        y = y.long()
        prev = torch.cat([torch.full_like(y[:, :1], self.go), y[:, :-1]], 1)
        out, _ = run_rnn(self.decoder, self.embedding(prev), state=self.encode_state(x))
        return self.readout(out)

    @torch.no_grad()
    def decode(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Greedy decoding of ``steps`` tokens (batch, steps)."""
        state = self.encode_state(x)
        tok = torch.full((x.shape[0], 1), self.go, dtype=torch.int64, device=x.device)
        out = []
        for _ in range(steps):
            h, state = run_rnn(self.decoder, self.embedding(tok), state=state)
            tok = self.readout(h).argmax(2)
            out.append(tok)
        return torch.cat(out, 1)

    def _ce(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1].long()
        logits = self(x, y).float()
        mask = (y != 0).float()
        return nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none") * mask, mask

    def compute_loss(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ce, mask = self._ce(batch)
        return ce.sum() / mask.sum().clamp(min=1), {}

    def eval_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        ce, mask = self._ce(batch)
        y = batch[1].long()
        n = mask.sum(1).clamp(min=1)
        right = (self.decode(batch[0], y.shape[1]) == y).float() * mask
        return {
            "loss": ce.sum(1) / n,
            "accuracy": right.sum(1) / n,
            "sequence_accuracy": (right.sum(1) == mask.sum(1)).float(),
        }
