"""Recurrent cells for every sequence model: one factory over torch's cuDNN-backed modules, plus a peephole LSTM.

``make_rnn("rnn" | "lstm" | "gru" | "peephole-lstm", ...)`` returns a batch-first module with torch's interface,
``out, state = rnn(x, state)``; stacking (``num_layers``), ``bidirectional`` and ``dropout`` between layers work
for all four. Torch has no peephole LSTM, so :class:`PeepholeLSTM` is written here from the equations (Gers &
Schmidhuber 2000, as TensorFlow's ``LSTMCell(use_peepholes=True)``):

    i = sigma(W_i x + U_i h + p_i * c_prev + b_i)        f = sigma(W_f x + U_f h + p_f * c_prev + b_f)
    g = tanh(W_g x + U_g h + b_g)                        c = f * c_prev + i * g
    o = sigma(W_o x + U_o h + p_o * c + b_o)             h = o * tanh(c)

:func:`run_rnn` runs any of them over padded sequences of different lengths: packed sequences for torch's modules,
a mask for the peephole LSTM, so padding never changes the state or the outputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import ConfigError

__all__ = ["CELLS", "PeepholeLSTMCell", "PeepholeLSTM", "make_rnn", "run_rnn", "detach_state", "is_lstm"]

CELLS = ("rnn", "lstm", "gru", "peephole-lstm")

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class PeepholeLSTMCell(nn.Module):
    """One step of an LSTM whose gates also see the cell state (peepholes ``p_i``, ``p_f``, ``p_o``).

    Weights are laid out as torch's ``nn.LSTMCell`` (gate order input, forget, cell, output) so the two can be
    compared; ``forget_bias`` is added to the forget gate at every step, as TensorFlow's cell does.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 0.0) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.forget_bias = input_size, hidden_size, forget_bias
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))  # p_i, p_f, p_o
        bound = 1.0 / math.sqrt(hidden_size)  # torch's LSTM default
        for p in (self.weight_ih, self.weight_hh, self.peephole):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """x (batch, input_size), state (h, c) each (batch, hidden) -> new (h, c)."""
        h, c = state
        gates = x @ self.weight_ih.T + h @ self.weight_hh.T + self.bias
        i, f, g, o = gates.chunk(4, 1)
        i = torch.sigmoid(i + self.peephole[0] * c)
        f = torch.sigmoid(f + self.peephole[1] * c + self.forget_bias)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + self.peephole[2] * c)
        return o * torch.tanh(c), c


class PeepholeLSTM(nn.Module):
    """Stacked (optionally bidirectional) peephole LSTM with ``nn.LSTM``'s batch-first interface.

    ``forward(x, state=None, lengths=None)``: x (batch, steps, input_size), state (h, c) each
    (layers * directions, batch, hidden); with ``lengths`` (batch,) the steps past each length leave the state as it
    was and give zero outputs, and the backward direction starts at each sequence's own last step.
    Returns ``out`` (batch, steps, directions * hidden) and the final ``(h, c)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        dirs = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            PeepholeLSTMCell(input_size if layer == 0 else dirs * hidden_size, hidden_size, forget_bias)
            for layer in range(num_layers)
            for _ in range(dirs)
        )

    def _direction(
        self, cell: PeepholeLSTMCell, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outs = []
        for t in range(x.shape[1]):
            h_new, c_new = cell(x[:, t], (h, c))
            if mask is not None:
                m = mask[:, t : t + 1]
                h_new, c_new = torch.where(m, h_new, h), torch.where(m, c_new, c)
                outs.append(h_new * m)
            else:
                outs.append(h_new)
            h, c = h_new, c_new
        return torch.stack(outs, 1), h, c

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, steps = x.shape[:2]
        dirs = 2 if self.bidirectional else 1
        if state is None:
            zeros = x.new_zeros(self.num_layers * dirs, batch, self.hidden_size)
            state = (zeros, zeros)
        mask = None
        rev_index = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            t = torch.arange(steps, device=x.device)
            mask = t[None, :] < lengths[:, None]
            # reverse each sequence within its own length (padding stays at the end)
            rev_index = torch.where(mask, lengths[:, None] - 1 - t[None, :], t[None, :])
        hs, cs = [], []
        inp = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                seq = inp
                if d == 1:
                    seq = inp.flip(1) if rev_index is None else _gather_steps(inp, rev_index)
                out, h, c = self._direction(self.cells[k], seq, state[0][k], state[1][k], mask)
                if d == 1:
                    out = out.flip(1) if rev_index is None else _gather_steps(out, rev_index)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            inp = torch.cat(outs, 2) if dirs == 2 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = nn.functional.dropout(inp, self.dropout, training=True)
        return inp, (torch.stack(hs), torch.stack(cs))


def _gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (batch, steps, d) reordered along steps by index (batch, steps)."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


def make_rnn(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    forget_bias: float = 0.0,
) -> nn.Module:
    """A batch-first recurrent module: ``"rnn"`` (tanh), ``"lstm"``, ``"gru"`` (torch's, cuDNN-backed on a GPU) or
    ``"peephole-lstm"`` (:class:`PeepholeLSTM`). ``dropout`` acts between stacked layers; ``forget_bias`` is put
    into the forget-gate bias of torch's LSTM (trainable there) and added at every step in the peephole cell."""
    if cell not in CELLS:
        raise ConfigError(f"model argument 'cell' must be one of {', '.join(CELLS)}; got {cell!r}")
    if hidden_size < 1 or num_layers < 1:
        raise ConfigError(f"hidden_size and num_layers must be >= 1, got {hidden_size} and {num_layers}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model argument 'dropout' must be in [0, 1), got {dropout}")
    if cell == "peephole-lstm":
        return PeepholeLSTM(input_size, hidden_size, num_layers, dropout, bidirectional, forget_bias)
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    rnn = cls(
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
    )
    if cell == "lstm" and forget_bias:
        with torch.no_grad():
            for name, p in rnn.named_parameters():
                if name.startswith("bias_ih"):
                    p[hidden_size : 2 * hidden_size] += forget_bias
    return rnn


def is_lstm(rnn: nn.Module) -> bool:
    """Whether the module's state is an (h, c) pair."""
    return isinstance(rnn, (nn.LSTM, PeepholeLSTM))


def run_rnn(
    rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None = None, state: State | None = None
) -> tuple[torch.Tensor, State]:
    """Run ``rnn`` (from :func:`make_rnn`) over x (batch, steps, features) -> outputs (batch, steps, features_out)
    and the final state; with ``lengths`` (batch,), padded steps are skipped (packed sequences / masking) and their
    outputs are zero."""
    if isinstance(rnn, PeepholeLSTM):
        return rnn(x, state, lengths)
    if lengths is None:
        return rnn(x, state)
    packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state


def detach_state(state: State | None) -> State | None:
    """The state cut from the graph (truncated backpropagation through time)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()
