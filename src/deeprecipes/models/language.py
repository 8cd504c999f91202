"""Recurrent language models (character and word level), their metrics, and text generation.

:class:`RNNLanguageModel` is an embedding (or one-hot input), a stacked recurrent network from
:func:`deeprecipes.models.cells.make_rnn` and a linear readout over the vocabulary. It trains two ways:

- on stream windows (``x``, ``y`` both (batch, steps), y = x shifted by one) with truncated backpropagation
  through time: the detached state of one batch starts the next (the course's char model and TF's PTB model). The
  state is reset at the start of every epoch, whenever the model switches between training and evaluation (so each
  evaluated split starts from zeros and carries its state across its own batches), and whenever a batch does not
  continue the previous one (its first inputs are not the previous targets). A run resumed in mid-epoch starts its
  first batch from a zero state;
- on windows labelled with the next token (``y`` (batch,), TFLearn's ``SequenceGenerator`` in the cookbook 6.4):
  no state is carried and only the last step is scored.

Evaluation reports the mean cross-entropy per token (``loss``, nats) and ``bpc`` (bits per token, loss / ln 2);
at the end of a run ``reference_metrics`` adds ``val_perplexity`` and ``test_perplexity`` (exp of the mean loss).
The vocabulary is kept in the weights (``vocab_codes``), so ``generate_text`` (and :func:`deeprecipes.sample` on a
saved run) need no data. Its export view (``export_module``) is one step of the recurrence, :class:`LanguageModelStep`:
a token and the state in, the next token's logits and the new state out, every tensor batch-first.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch import nn

from ..data.text import EOS, Vocabulary, word_tokens
from ..errors import CheckpointError, ConfigError, DataError
from ..params import NonNegative, NonNegativeInt, OneOf, PositiveInt, check_arguments, choices
from ..registry import register_model
from .base import Batch, Model
from .cells import detach_state, make_rnn, run_rnn

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["RNNLanguageModel", "LanguageModelStep", "LSTMLanguageModelStep"]

log = logging.getLogger(__name__)

Init = Annotated[str, OneOf("torch", "uniform", "glorot")]
INITS = choices(Init)


@register_model("rnn-lm")
class RNNLanguageModel(Model):
    """Next-token model: embedding or one-hot -> recurrent stack -> dropout -> linear readout.

    Registered as ``rnn-lm``: a character or word language model (course char model: rnn 2 x 128; TF PTB small: lstm
    2 x 200).

    Parameters
    ----------
    vocab_size : int
        Tokens before any data is seen; ``prepare_data`` resizes the input and readout layers to the corpus.
    cell : {"rnn", "lstm", "gru", "peephole-lstm"}
    hidden_size, num_layers : int
    embed_size : int
        Embedding width; 0 feeds one-hot vectors (TFLearn's ``input_data`` of one-hot characters).
    dropout : float
        Dropout after every recurrent layer (between layers and before the readout), as TFLearn's ``dropout(0.5)``
        after each ``lstm``, and on the embeddings (TF PTB's ``keep_prob``).
    init : {"torch", "uniform", "glorot"}
        ``uniform``: every weight U(-init_scale, init_scale) (TF PTB's ``init_scale``); ``glorot``: Glorot-uniform
        embedding and readout (``tf.get_variable``'s default, the course's char model); ``torch``: torch defaults.
    forget_bias : float
        Added to the LSTM forget gate (TF PTB: 0.0; TF's ``BasicLSTMCell`` default 1.0).
    carry_state : bool
        Carry the hidden state across consecutive batches (truncated BPTT); needs ``train.shuffle = false``.
    sum_steps : bool
        Train on the cross-entropy summed over the steps and averaged over the batch (TF PTB's ``cost``, ``steps``
        times the mean per token); logged and evaluated losses stay per token.
    """

    steps_through_engine = True  # every weight change goes through engine.step: data-parallel ready

    def __init__(
        self,
        vocab_size: PositiveInt = 65,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        embed_size: NonNegativeInt = 128,
        dropout: float = 0.0,
        init: Init = "torch",
        init_scale: NonNegative = 0.1,
        forget_bias: float = 0.0,
        carry_state: bool = True,
        sum_steps: bool = False,
    ) -> None:
        super().__init__()
        check_arguments(RNNLanguageModel.__init__, locals())
        if vocab_size < 1 or embed_size < 0:
            raise ConfigError(f"vocab_size must be >= 1 and embed_size >= 0, got {vocab_size} and {embed_size}")
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.embed_size, self.init, self.init_scale = embed_size, init, init_scale
        self.carry_state, self.forget_bias, self.sum_steps = carry_state, forget_bias, sum_steps
        self.level = "char"
        self.unk: str | None = None
        self.register_buffer("vocab_codes", torch.zeros(0, dtype=torch.int32))
        self.rnn = make_rnn(cell, embed_size or vocab_size, hidden_size, num_layers, dropout, False, forget_bias)
        self.drop = nn.Dropout(dropout)
        self._build_io(vocab_size)
        self._state: Any = None
        self._last: torch.Tensor | None = None  # targets of the last step of the previous batch

    def _build_io(self, vocab_size: int) -> None:
        """(Re)build the vocabulary-sized layers and initialise every weight. The new layers are built and
        initialised on the CPU, as every model is, then moved to the device of the existing weights (``prepare_data``
        runs after the model was moved to the run's device)."""
        device = next(self.rnn.parameters()).device
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, self.embed_size) if self.embed_size else None
        if not self.embed_size:
            self.rnn = make_rnn(
                self.cell, vocab_size, self.hidden_size, self.num_layers, self.drop.p, False, self.forget_bias
            )
        self.readout = nn.Linear(self.hidden_size, vocab_size)
        with torch.no_grad():
            if self.init == "uniform":
                for p in self.parameters():
                    p.uniform_(-self.init_scale, self.init_scale)
            elif self.init == "glorot":
                for layer in (self.embedding, self.readout):
                    if layer is not None:
                        nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(self.readout.bias)
        for layer in (self.embedding, self.rnn, self.readout):
            if layer is not None:
                layer.to(device)

    # ------------------------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """x int64 (batch, steps) -> logits (batch, steps, vocab) and the final state."""
        if self.embedding is not None:
            h = self.drop(self.embedding(x))
        else:
            h = nn.functional.one_hot(x, self.vocab_size).float()
        out, state = run_rnn(self.rnn, h, state=state)
        return self.readout(self.drop(out)), state

    def train(self, mode: bool = True) -> RNNLanguageModel:
        """Switching mode (each evaluation, each epoch) starts the carried state afresh."""
        self.reset_state()
        return super().train(mode)

    def reset_state(self) -> None:
        self._state, self._last = None, None

    def _start_state(self, x: torch.Tensor, strict: bool) -> Any:
        """The carried state if this batch continues the previous one, else None (or, with ``strict``, an error
        when the batches are not laid out as parallel streams)."""
        if not self.carry_state or self._state is None or self._last is None:
            return None
        if self._last.shape[0] == x.shape[0] and bool((x[:, 0] == self._last).all()):
            return self._state
        if strict:
            raise ConfigError(
                "consecutive training batches do not continue each other: a model with carry_state needs "
                "train.shuffle = false and train.batch_size equal to the dataset's batch_size "
                "(or set model.carry_state = false)"
            )
        return None

    def _sequence_loss(self, batch: Batch, strict: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token cross-entropy (batch, steps) -- or (batch, 1) for next-token windows -- and the targets."""
        x, y = batch[0].long(), batch[1].long()
        if y.ndim == 1:  # a window labelled with the token after it: stateless, last step scored
            logits, _ = self(x)
            return nn.functional.cross_entropy(logits[:, -1], y, reduction="none")[:, None], y
        logits, state = self(x, self._start_state(x, strict))
        if self.carry_state:
            self._state, self._last = detach_state(state), y[:, -1]
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none")
        return loss.view(y.shape), y

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, _ = self._sequence_loss(batch, strict=False)
        return loss.mean(), {}

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        if engine.batch == 0:
            self.reset_state()
        with engine.autocast():
            loss, _ = self._sequence_loss(batch, strict=True)
            loss = loss.mean()
        engine.step(loss * loss.new_tensor(batch[0].shape[1]) if self.sum_steps else loss)
        return {"loss": loss.detach()}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss, _ = self._sequence_loss(batch, strict=False)
        per_sample = loss.float().mean(1)
        return {"loss": per_sample, "bpc": per_sample / math.log(2)}

    # ------------------------------------------------------------------------------------------------------------

    def check_data(self, x: torch.Tensor) -> None:
        if x.dtype not in (torch.int64, torch.int32) or x.ndim != 2:
            raise ConfigError(f"model 'rnn-lm' needs token ids of shape (n, steps); got {x.dtype} {tuple(x.shape)}")
        if x.shape[1] < 1:
            raise ConfigError("model 'rnn-lm' needs sequences of at least one step (steps = 0)")

    def prepare_data(self, data: Any) -> Any:
        """Size the input and readout to the corpus vocabulary and keep the vocabulary with the weights."""
        meta = getattr(data, "meta", {})
        vocab = meta.get("vocab")
        if vocab is None:
            return data
        if len(vocab) != self.vocab_size:
            log.info("vocabulary of %d tokens: sizing the model to it", len(vocab))
            self._build_io(len(vocab))
        self.restore_data(meta)
        return data

    def data_args(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size}

    def restore_data(self, meta: dict[str, Any]) -> None:
        """The vocabulary (kept with the weights as ``vocab_codes``), tokenisation level and layout of the corpus."""
        vocab = meta.get("vocab")
        if vocab is None:
            return
        self.level, self.unk = meta.get("level", "char"), meta.get("unk")
        self.vocab_codes = Vocabulary(list(vocab), self.unk).to_codes().to(self.vocab_codes.device)
        self.carry_state = self.carry_state and meta.get("layout", "streams") == "streams"

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """Perplexity (exp of the mean loss per token) of the val and test splits, state carried in order."""
        out: dict[str, float] = {}
        meta = getattr(data, "meta", {})
        device = next(self.parameters()).device
        was = self.training
        for name, part in (("val", data.val), ("test", data.test)):
            if part is None or part.y is None:
                continue
            self.eval()
            b = (meta.get("eval_batch_size") or 1000) if self.carry_state else 1000
            total = 0.0
            for i in range(0, len(part), b):
                total += (
                    self._sequence_loss((part.x[i : i + b].to(device), part.y[i : i + b].to(device)), False)[0]
                    .sum()
                    .item()
                )
            mean = total / max(part.y.numel(), 1)
            out[f"{name}_perplexity"] = math.exp(min(mean, 700.0))
        self.train(was)
        return out

    # ------------------------------------------------------------------------------------------------------------
    # deployment: one step of the recurrence

    @property
    def state_names(self) -> list[str]:
        """The parts of the recurrent state: ``h`` and, for LSTMs, ``c``."""
        return ["h", "c"] if self.cell in ("lstm", "peephole-lstm") else ["h"]

    def export_module(self) -> nn.Module:
        return LSTMLanguageModelStep(self) if len(self.state_names) == 2 else LanguageModelStep(self)

    @torch.no_grad()
    def export_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The last token of each window of ``x`` (batch, steps) and the state the model reached over the tokens
        before it (zeros for one-token windows): ``token`` (batch,), ``h`` [and ``c``] (batch, layers, hidden)."""
        x = x.long()
        if x.shape[1] > 1:
            state = self(x[:, :-1])[1]
        else:
            zeros = torch.zeros(self.num_layers, len(x), self.hidden_size, device=x.device)
            state = (zeros, zeros) if len(self.state_names) == 2 else zeros
        parts = state if isinstance(state, tuple) else (state,)
        states = {n: s.transpose(0, 1).contiguous() for n, s in zip(self.state_names, parts)}
        return {"token": x[:, -1].contiguous(), **states}

    def export_outputs(self) -> list[str]:
        return ["logits", *(f"{n}_next" for n in self.state_names)]

    # ------------------------------------------------------------------------------------------------------------
    # generation

    def vocabulary(self) -> Any:
        if not len(self.vocab_codes):
            raise CheckpointError("the model holds no vocabulary (it was never given a corpus)")
        return Vocabulary.from_codes(self.vocab_codes.cpu(), "<unk>")

    @torch.no_grad()
    def generate(
        self, prime: torch.Tensor, length: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Feed the prime ids (steps,) one batch, then draw ``length`` ids from softmax(logits / temperature) (the
        most likely one when ``temperature`` is 0); returns the drawn ids (length,)."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        logits, state = self(prime.to(device)[None])
        last = logits[0, -1]
        out = []
        for _ in range(length):
            if temperature == 0:
                nxt = last.argmax()
            else:
                probs = torch.softmax(last.float() / temperature, 0).cpu()
                nxt = torch.multinomial(probs, 1, generator=generator)[0]
            out.append(int(nxt))
            logits, state = self(torch.tensor([[int(nxt)]], device=device), state)
            last = logits[0, -1]
        self.train(was)
        return torch.tensor(out, dtype=torch.int64)

    def generate_text(self, prime: str = "", length: int = 500, temperature: float = 1.0, seed: int = 0) -> str:
        """The prime followed by ``length`` generated tokens, as text."""
        if length < 1:
            raise ConfigError(f"length must be >= 1 generated tokens, got {length}")
        if not (temperature >= 0 and math.isfinite(temperature)):
            raise ConfigError(f"temperature must be >= 0 (0 = always the most likely token), got {temperature}")
        vocab = self.vocabulary()
        if self.level == "word" or vocab.unk is not None:
            toks = word_tokens(prime)
            if toks and not prime.endswith("\n"):
                toks = toks[:-1]  # no <eos> after an unfinished line
            ids = vocab.encode(toks or [EOS], "the prime")
            words = vocab.decode(self.generate(ids, length, temperature, _gen(seed)).tolist(), sep=" ")
            return prime + " " + words.replace(f" {EOS} ", "\n").replace(EOS, "\n")
        if prime:
            bad = sorted({c for c in prime if c not in vocab.index})
            if bad:
                raise DataError(f"the prime has characters outside the model's vocabulary: {', '.join(map(repr, bad))}")
            ids = vocab.encode(list(prime), "the prime")
        else:
            ids = vocab.encode(["\n"] if "\n" in vocab.index else [vocab.tokens[0]])
        return prime + vocab.decode(self.generate(ids, length, temperature, _gen(seed)).tolist())


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LanguageModelStep(nn.Module):
    """One step of an :class:`RNNLanguageModel` with one state tensor (rnn, gru), batch-first for export:
    token (batch,) int64, h (batch, layers, hidden) -> logits (batch, vocab), h_next (batch, layers, hidden)."""

    def __init__(self, model: RNNLanguageModel) -> None:
        super().__init__()
        self.model = model

    def step(self, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, ...]:
        logits, new = self.model(token[:, None], state)
        parts = new if isinstance(new, tuple) else (new,)
        return (logits[:, 0], *(s.transpose(0, 1) for s in parts))

    def forward(self, token: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.step(token, h.transpose(0, 1).contiguous())


class LSTMLanguageModelStep(LanguageModelStep):
    """:class:`LanguageModelStep` for LSTMs: token, h, c -> logits, h_next, c_next (states batch-first)."""

    def forward(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return self.step(token, (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()))
