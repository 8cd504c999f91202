"""Encoder-decoder LSTM translation with optional attention (TensorFlow 1.x Deep Learning Cookbook 6.1-6.3).

The cookbook trains ``tensorflow/nmt``: embeddings, a ``BasicLSTMCell`` encoder whose final state starts the
decoder, teacher forcing (the decoder reads ``<s>`` + the reference), a projection without bias, cross-entropy
masked by the target lengths, summed and divided by the batch size, and gradients clipped by their global norm.
6.2 decodes greedily, by sampling or with beam search, at most ``round(2 x longest source in the batch)`` steps.
6.3 adds attention through ``AttentionWrapper`` (``LuongAttention``, ``attention_layer_size=num_units``).

As in TensorFlow's ``AttentionWrapper`` (and so in the cookbook), at decoder step t::

    h_t      = LSTM([embed(y_{t-1}); a_{t-1}], state)        # input feeding: the previous attention vector
    score_s  = h_t . W_m e_s                                 # luong (scaled_luong: times a learned scalar g)
             = v . tanh(W_m e_s + W_q h_t)                   # bahdanau (additive)
    alpha    = softmax(score) over the source positions that are not padding
    c_t      = sum_s alpha_s e_s
    a_t      = W_c [h_t; c_t]                                # no bias and no tanh, as TF's attention_layer
    logits_t = W_o a_t                                       # W_o h_t without attention

Weights start uniform in [-0.1, 0.1] (nmt's ``init_weight``) and the forget gates at +1 (``forget_bias=1``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import ConfigError, DataError
from ..params import NonNegative, OneOf, Positive, PositiveInt, Rate, check_arguments, choices
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Batch, Model

__all__ = ["Seq2Seq", "ATTENTIONS"]

PAD, BOS, EOS = 0, 1, 2  # as deeprecipes.data.translation
Attention = Annotated[str, OneOf("none", "luong", "scaled_luong", "bahdanau")]
ATTENTIONS = choices(Attention)
_PLACEHOLDER_VOCAB = 8  # size used until prepare_data sees the dataset's vocabularies


@register_model("seq2seq")
class Seq2Seq(Model):
    """Encoder-decoder LSTM over token ids, with or without attention.

    Registered as ``seq2seq`` (cookbook 6.1-6.3: 2 layers of 128, dropout 0.2); attention
    none/luong/scaled_luong/bahdanau; vocabulary sizes 0 = from the dataset.

    Parameters
    ----------
    src_vocab_size, tgt_vocab_size : int
        Vocabulary sizes, specials included; 0 = take them from the dataset (``meta["src_vocab"]``).
    embedding_size, hidden_size, num_layers : int
        nmt's ``num_units`` is both the embedding and the hidden size.
    dropout : float
        On every LSTM layer's input (nmt's ``DropoutWrapper(input_keep_prob=1 - dropout)``).
    attention : str
        ``none``, ``luong``, ``scaled_luong`` or ``bahdanau``.
    beam_width, length_penalty : int, float
        Beam search in ``reference_metrics`` (GNMT length penalty ``((5 + len) / 6) ** alpha``; 0 = none).
    max_length_factor : float
        Decoding stops after ``round(factor * longest source in the batch)`` steps (the cookbook: 2).
    temperature : float
        Softmax temperature of sampling decoding.
    init_scale : float
        Uniform initialisation range.
    """

    def __init__(
        self,
        src_vocab_size: int = 0,
        tgt_vocab_size: int = 0,
        embedding_size: PositiveInt = 128,
        hidden_size: PositiveInt = 128,
        num_layers: PositiveInt = 2,
        dropout: Rate = 0.2,
        attention: Attention = "none",
        beam_width: PositiveInt = 5,
        length_penalty: float = 0.0,
        max_length_factor: Positive = 2.0,
        temperature: Positive = 1.0,
        init_scale: NonNegative = 0.1,
    ) -> None:
        super().__init__()
        check_arguments(Seq2Seq.__init__, locals())
        for name, v in (
            ("src_vocab_size", src_vocab_size),
            ("tgt_vocab_size", tgt_vocab_size),
        ):
            if v != 0 and v <= EOS:
                raise ConfigError(f"model 'seq2seq' {name} must be 0 (from the data) or > {EOS + 1}, got {v}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.embedding_size, self.hidden_size, self.num_layers = embedding_size, hidden_size, num_layers
        self.dropout_p, self.attention = dropout, attention
        self.beam_width, self.length_penalty = beam_width, length_penalty
        self.max_length_factor, self.temperature, self.init_scale = max_length_factor, temperature, init_scale
        self._build_layers(src_vocab_size or _PLACEHOLDER_VOCAB, tgt_vocab_size or _PLACEHOLDER_VOCAB)

    def _build_layers(self, n_src: int, n_tgt: int) -> None:
        e, h, n = self.embedding_size, self.hidden_size, self.num_layers
        self.n_src, self.n_tgt = n_src, n_tgt
        self.src_embed = nn.Embedding(n_src, e)
        self.tgt_embed = nn.Embedding(n_tgt, e)
        self.drop = nn.Dropout(self.dropout_p)
        between = self.dropout_p if n > 1 else 0.0
        self.encoder = nn.LSTM(e, h, num_layers=n, batch_first=True, dropout=between)
        feed = h if self.attention != "none" else 0
        self.decoder = nn.LSTM(e + feed, h, num_layers=n, batch_first=True, dropout=between)
        self.memory_layer = self.query_layer = self.score_v = self.score_scale = self.attention_layer = None
        if self.attention != "none":
            self.memory_layer = nn.Linear(h, h, bias=False)
            self.attention_layer = nn.Linear(2 * h, h, bias=False)
            if self.attention == "bahdanau":
                self.query_layer = nn.Linear(h, h, bias=False)
                self.score_v = nn.Parameter(torch.empty(h))
            if self.attention == "scaled_luong":
                self.score_scale = nn.Parameter(torch.empty(()))
        self.projection = nn.Linear(h, n_tgt, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-self.init_scale, self.init_scale)
            for lstm in (self.encoder, self.decoder):
                for layer in range(n):
                    getattr(lstm, f"bias_ih_l{layer}")[h : 2 * h] += 1.0  # forget_bias=1 (torch order i, f, g, o)
            if self.score_scale is not None:
                self.score_scale.fill_(1.0)  # scaled_luong's g starts at 1

    # ------------------------------------------------------------------------------------------------------------
    # data

    def prepare_data(self, data: Any) -> Any:
        """Size the embeddings and projection from the dataset's vocabularies (when left at 0)."""
        meta = getattr(data, "meta", {}) or {}
        need = []
        for name, key, split_attr in (("src_vocab_size", "src_vocab", "x"), ("tgt_vocab_size", "tgt_vocab", "y")):
            if key in meta:
                n = len(meta[key])
            else:
                n = max(int(getattr(s, split_attr).max()) + 1 for s in data.splits().values())
            given = getattr(self, name)
            if given and given < n:
                raise ConfigError(f"model 'seq2seq' {name}={given} is smaller than the data's vocabulary ({n} ids)")
            need.append(given or n)
        if tuple(need) != (self.n_src, self.n_tgt):
            device = next(self.parameters()).device
            self._build_layers(*need)
            self.to(device)
        return data

    def check_data(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.dtype != torch.int64:
            raise ConfigError(
                f"model 'seq2seq' needs token ids, int64 of shape (n, source_len); got {x.dtype} {tuple(x.shape)}"
            )
        self._lengths(x, "training source")

    def _lengths(self, x: torch.Tensor, what: str = "source") -> torch.Tensor:
        lengths = (x != PAD).sum(1)
        if x.shape[1] == 0 or bool((lengths == 0).any()):
            row = int((lengths == 0).nonzero()[0, 0]) if x.shape[1] else 0
            raise DataError(f"{what} sentence {row + 1} has length zero (no tokens)")
        if int(x.max()) >= self.n_src or int(x.min()) < 0:
            raise ConfigError(f"model 'seq2seq' source ids must lie in 0..{self.n_src - 1} (src_vocab_size)")
        return lengths

    # ------------------------------------------------------------------------------------------------------------
    # the network

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """x (B, S) -> encoder outputs (B, S, H), final (h, c) each (layers, B, H), source mask (B, S)."""
        lengths = self._lengths(x)
        emb = self.drop(self.src_embed(x))
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)  # the state is the one at each sentence's own last token
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state, x != PAD

    def _attend(
        self, h: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, H) against memory (B, S, H) -> attention vector (B, H), weights (B, S)."""
        if self.attention == "bahdanau":
            score = torch.tanh(keys + self.query_layer(h)[:, None]) @ self.score_v  # (B, S)
        else:
            score = (keys @ h[:, :, None])[..., 0]
            if self.score_scale is not None:
                score = score * self.score_scale
        alpha = score.masked_fill(~mask, float("-inf")).softmax(-1)
        context = (alpha[:, None] @ memory)[:, 0]
        return self.attention_layer(torch.cat([h, context], -1)), alpha

    def _step(
        self, tok: torch.Tensor, state: Any, feed: torch.Tensor | None, memory: Any
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None, torch.Tensor | None]:
        """One decoder step: previous tokens (B,) -> output vector (B, H), state, next feed, attention (B, S)."""
        inp = self.drop(self.tgt_embed(tok))
        if self.attention == "none":
            out, state = self.decoder(inp[:, None], state)
            return out[:, 0], state, None, None
        out, state = self.decoder(torch.cat([inp, feed], -1)[:, None], state)
        a, alpha = self._attend(out[:, 0], *memory)
        return a, state, a, alpha

    def _memory(self, out: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if self.attention == "none":
            return None
        return out, self.memory_layer(out), mask

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: x (B, S), y (B, T) -> logits (B, T, V), the decoder reading ``<s>`` + y[:, :-1].
        Without ``y``: greedy translations, token ids (B, steps)."""
        if y is None:
            return self.translate(x)[0]
        out, state, mask = self._encode(x)
        dec_in = torch.cat([torch.full_like(y[:, :1], BOS), y[:, :-1]], 1)
        if self.attention == "none":  # no input feeding: the whole target in one call
            dec, _ = self.decoder(self.drop(self.tgt_embed(dec_in)), state)
            return self.projection(dec)
        memory = self._memory(out, mask)
        feed = out.new_zeros(x.shape[0], self.hidden_size)
        outs = []
        for t in range(dec_in.shape[1]):
            a, state, feed, _ = self._step(dec_in[:, t], state, feed, memory)
            outs.append(a)
        return self.projection(torch.stack(outs, 1))

    def _token_losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        logits = self(x, y).float()
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (B, T)
        mask = (y != PAD).to(ce.dtype)
        return ce * mask, mask

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """nmt's loss: masked cross-entropy summed over the target tokens, divided by the batch size."""
        ce, mask = self._token_losses(batch)
        loss = ce.sum() / ce.shape[0]
        return loss, {"token_loss": (ce.sum() / mask.sum().clamp_min(1)).detach()}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per sentence: summed token cross-entropy (``loss``, the training loss), tokens, greedy exact match."""
        ce, mask = self._token_losses(batch)
        tokens, _ = self.translate(batch[0])
        return {"loss": ce.sum(1), "tokens": mask.sum(1), "exact_match": _exact(tokens, batch[1]).float()}

    # ------------------------------------------------------------------------------------------------------------
    # decoding (6.2)

    def _limit(self, x: torch.Tensor) -> int:
        """round(factor x longest source in the batch), as the cookbook's ``maximum_iterations``."""
        return max(1, round(self.max_length_factor * int((x != PAD).sum(1).max())))

    @torch.no_grad()
    def translate(
        self, x: torch.Tensor, method: str = "greedy", beam_width: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode source ids (B, S) -> token ids (B, steps) ending in ``</s>`` then padding, and (greedy and
        sample only, with attention) the attention weights (B, steps, S).

        ``method``: ``greedy`` (argmax), ``sample`` (from the softmax at ``temperature``; torch's global RNG) or
        ``beam`` (``beam_width`` hypotheses per sentence, the best by total log-probability over the GNMT length
        penalty).
        """
        if method == "beam":
            return self._beam(x, beam_width or self.beam_width), None
        if method not in ("greedy", "sample"):
            raise ConfigError(f"decoding method must be greedy, sample or beam; got {method!r}")
        out, state, mask = self._encode(x)
        memory = self._memory(out, mask)
        b = x.shape[0]
        feed = out.new_zeros(b, self.hidden_size) if memory is not None else None
        tok = torch.full((b,), BOS, dtype=torch.int64, device=x.device)
        done = torch.zeros(b, dtype=torch.bool, device=x.device)
        toks, atts = [], []
        for _ in range(self._limit(x)):
            a, state, feed, alpha = self._step(tok, state, feed, memory)
            logits = self.projection(a).float()
            if method == "sample":
                tok = torch.multinomial((logits / self.temperature).softmax(-1), 1)[:, 0]
            else:
                tok = logits.argmax(-1)
            tok = tok.masked_fill(done, PAD)
            toks.append(tok)
            if alpha is not None:
                atts.append(alpha)
            done = done | (tok == EOS)
            if bool(done.all()):
                break
        return torch.stack(toks, 1), torch.stack(atts, 1) if atts else None

    def _beam(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Batched beam search: (B, S) -> best hypothesis per sentence (B, steps)."""
        out, state, mask = self._encode(x)
        b, v = x.shape[0], self.n_tgt
        rows = torch.arange(b, device=x.device)
        memory = self._memory(out, mask)
        if memory is not None:
            memory = tuple(m.repeat_interleave(k, 0) for m in memory)
        state = tuple(s.repeat_interleave(k, 1) for s in state)
        feed = out.new_zeros(b * k, self.hidden_size) if memory is not None else None
        tok = torch.full((b * k,), BOS, dtype=torch.int64, device=x.device)
        scores = out.new_full((b, k), float("-inf"))
        scores[:, 0] = 0.0  # one live hypothesis at the start
        finished = torch.zeros(b, k, dtype=torch.bool, device=x.device)
        seqs = torch.zeros(b, k, 0, dtype=torch.int64, device=x.device)
        ended = out.new_full((v,), float("-inf"))
        ended[PAD] = 0.0  # a finished hypothesis only grows padding, at no cost
        for _ in range(self._limit(x)):
            a, state, feed, _ = self._step(tok, state, feed, memory)
            logp = self.projection(a).float().log_softmax(-1).view(b, k, v)
            logp = torch.where(finished[..., None], ended, logp)
            top, idx = (scores[..., None] + logp).view(b, -1).topk(k, dim=1)  # (B, k)
            beam, tok2 = idx // v, idx % v
            flat = (beam + rows[:, None] * k).view(-1)
            state = tuple(s[:, flat] for s in state)
            feed = None if feed is None else feed[flat]
            seqs = torch.cat([seqs[rows[:, None], beam], tok2[..., None]], -1)
            finished = finished[rows[:, None], beam] | (tok2 == EOS)
            scores, tok = top, tok2.view(-1)
            if bool(finished.all()):
                break
        if self.length_penalty:
            length = (seqs != PAD).sum(-1).float()
            scores = scores / ((5.0 + length) / 6.0) ** self.length_penalty
        return seqs[rows, scores.argmax(1)]

    # ------------------------------------------------------------------------------------------------------------
    # end-of-run metrics and pictures

    @torch.no_grad()
    def _decode_split(self, x: torch.Tensor, method: str, batch_size: int = 500) -> list[torch.Tensor]:
        device = next(self.parameters()).device
        out = []
        for i in range(0, len(x), batch_size):
            toks, _ = self.translate(x[i : i + batch_size].to(device), method)
            out.extend(toks.cpu())
        return out

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """On the test split: exact match and corpus BLEU (sacrebleu) of greedy, beam and sampling decoding, and
        the per-token perplexity."""
        test = getattr(data, "test", None)
        if test is None or test.y is None:
            return {}
        meta = getattr(data, "meta", {}) or {}
        tokenize = meta.get("bleu_tokenize", "13a")
        vocab = meta.get("tgt_vocab")
        was = self.training
        self.eval()
        refs = [_words(y, vocab) for y in test.y]
        out: dict[str, float] = {}
        for method, suffix in (("greedy", ""), ("beam", "_beam"), ("sample", "_sample")):
            hyps = [_words(t, vocab) for t in self._decode_split(test.x, method)]
            out[f"test_exact_match{suffix}"] = sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)
            out[f"test_bleu{suffix}"] = corpus_bleu(hyps, refs, tokenize)
        device = next(self.parameters()).device
        total = tokens = 0.0
        for i in range(0, len(test.x), 500):
            ce, mask = self._token_losses((test.x[i : i + 500].to(device), test.y[i : i + 500].to(device)))
            total, tokens = total + ce.sum().item(), tokens + mask.sum().item()
        out["test_ppl"] = math.exp(total / max(tokens, 1.0))
        self.train(was)
        return out

    @torch.no_grad()
    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """The attention matrices of four test sentences (greedy decoding); none without attention."""
        test = getattr(data, "test", None)
        if self.attention == "none" or test is None:
            return []
        meta = getattr(data, "meta", {}) or {}
        src_vocab, tgt_vocab = meta.get("src_vocab"), meta.get("tgt_vocab")
        device = next(self.parameters()).device
        x = test.x[:4]
        toks, att = self.translate(x.to(device))
        return [
            save_attention(
                [_words(s, src_vocab, source=True) for s in x],
                [_words(t, tgt_vocab, keep_eos=True) for t in toks.cpu()],
                att.cpu(),
                fig_dir / "attention.png",
                title=f"{title}: {self.attention} attention, test sentences",
            )
        ]


def _exact(tokens: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per row: do the decoded tokens (up to and including ``</s>``) equal the reference (B, T) exactly?"""
    width = max(tokens.shape[1], y.shape[1])
    a = nn.functional.pad(tokens, (0, width - tokens.shape[1]), value=PAD)
    b = nn.functional.pad(y, (0, width - y.shape[1]), value=PAD)
    after = (a == EOS).long().cumsum(1) - (a == EOS).long() > 0  # positions after the first </s>
    a = a.masked_fill(after, PAD)
    return (a == b).all(1) & (a == EOS).any(1)


def _words(ids: torch.Tensor, vocab: list[str] | None, source: bool = False, keep_eos: bool = False) -> list[str]:
    out = []
    for i in ids.tolist():
        if i == EOS and not source:
            if keep_eos:
                out.append("</s>")
            break
        if i in (PAD, BOS):
            if source and i == PAD:
                break
            continue
        out.append(vocab[i] if vocab is not None and i < len(vocab) else str(i))
    return out


def corpus_bleu(hyps: list[list[str]], refs: list[list[str]], tokenize: str = "13a") -> float:
    """sacrebleu's corpus BLEU (0-100) of token lists joined by spaces, with one reference each."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(tokenize=tokenize)
    return float(bleu.corpus_score([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]]).score)


def save_attention(
    sources: list[list[str]], outputs: list[list[str]], weights: torch.Tensor, path: Path, title: str = ""
) -> Path:
    """Attention matrices, one panel per sentence: rows the output tokens, columns the source words."""
    plt = pyplot()
    n = len(sources)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        src, out = sources[i], outputs[i]
        w = weights[i, : len(out), : len(src)].numpy()
        ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(out)), out, fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
