"""Translation data: a generated task (spelled-out dates into ISO form) and parallel text files, as token ids.

Both datasets return :class:`~deeprecipes.data.base.DataSplits` whose ``x`` is the padded source, int64
(n, source_len), and ``y`` the padded target followed by ``</s>``, int64 (n, target_len + 1); padding is id 0.
Every vocabulary starts with the four special tokens ``<pad>``, ``<s>``, ``</s>``, ``<unk>`` (ids 0-3) and is kept
in ``meta`` (``src_vocab``, ``tgt_vocab``, lists of tokens) with ``bleu_tokenize``, the sacrebleu tokenizer that
suits the targets' tokens.

``dates``: "tuesday , the twenty-third of march nineteen ninety-four" -> ``1994-03-23`` (one target token per
character). The ISO order (year, month, day) is not the spoken order and the wording varies, so the decoder must
find each field in the source: the task that attention solves and a fixed-size encoder state learns slowly.
``dates_per_line=2`` asks for a range ("from <date> to <date>" -> ``<iso>/<iso>``), twice as long.

``parallel-text``: two UTF-8 files with one sentence per line, line i of the source translating line i of the
target (the IWSLT / tensorflow-nmt layout); tokens are separated by whitespace. Empty lines, files with different
line counts and text that is not UTF-8 are errors naming the file and line.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..params import Seed
from ..registry import register_dataset
from .base import ArrayData, DataSplits
from .reading import read_bytes

__all__ = [
    "SPECIALS",
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "Vocab",
    "spell_date",
    "generate_dates",
    "read_parallel",
    "dates",
    "parallel_text",
]

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3


class Vocab:
    """Tokens <-> ids; ids 0-3 are ``<pad>``, ``<s>``, ``</s>``, ``<unk>``."""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[:4]) != SPECIALS:
            tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], max_size: int = 0, min_count: int = 1) -> Vocab:
        """The most frequent tokens (ties by first appearance), at most ``max_size`` ids in all (0 = no limit)."""
        counts = Counter(t for s in sentences for t in s)
        kept = [t for t, c in counts.most_common() if c >= min_count and t not in SPECIALS]
        if max_size:
            kept = kept[: max(max_size - len(SPECIALS), 0)]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.index.get(t, UNK) for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Tokens up to the first ``</s>``, without padding or ``<s>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return out


def _pad(seqs: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    out = torch.zeros(len(seqs), width, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.int64)
    return out


def encode_pairs(
    src: Sequence[Sequence[str]], tgt: Sequence[Sequence[str]], src_vocab: Vocab, tgt_vocab: Vocab
) -> ArrayData:
    """Token lists -> ArrayData(x: padded source ids, y: padded target ids + ``</s>``)."""
    xs = [src_vocab.encode(s) for s in src]
    ys = [tgt_vocab.encode(t) + [EOS] for t in tgt]
    return ArrayData(_pad(xs, max(map(len, xs), default=1)), _pad(ys, max(map(len, ys), default=1)))


# ----------------------------------------------------------------------------------------------------------------
# the generated task: spelled-out dates

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORD_ONES = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()
_ORD_TENS = "_ _ twentieth thirtieth".split()
_MONTHS = "january february march april may june july august september october november december".split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()


def _cardinal(n: int) -> str:
    """1..99 in words, one token: 23 -> 'twenty-three'."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("-" + _ONES[ones] if ones else "")


def _ordinal(n: int) -> str:
    """1..31 as an ordinal, one token: 23 -> 'twenty-third'."""
    if n < 20:
        return _ORD_ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + "-" + _ORD_ONES[ones] if ones else _ORD_TENS[tens]


def _year(y: int, rng: np.random.Generator) -> list[str]:
    """A year 1000..2999 as spoken, in one of its usual forms: 1905 'nineteen oh five', 2007 'two thousand and
    seven' or 'two thousand seven', 2012 also 'twenty twelve'."""
    hi, lo = divmod(y, 100)
    if hi % 10 == 0 and lo < 10 or (hi % 10 == 0 and rng.random() < 0.5):
        words = [_ONES[hi // 10], "thousand"]
        if lo:
            words += (["and"] if rng.random() < 0.5 else []) + [_cardinal(lo)]
        return words
    if lo == 0:
        return [_cardinal(hi), "hundred"]
    return [_cardinal(hi)] + (["oh", _ONES[lo]] if lo < 10 else [_cardinal(lo)])


def spell_date(d: datetime.date, rng: np.random.Generator) -> list[str]:
    """One of six spoken forms of ``d``, as word tokens (the weekday, when said, is the true one)."""
    month, year = _MONTHS[d.month - 1], _year(d.year, rng)
    day_o, day_c, wd = _ordinal(d.day), _cardinal(d.day), _WEEKDAYS[d.weekday()]
    form = int(rng.integers(6))
    if form == 0:
        return [month, day_o, ","] + year
    if form == 1:
        return ["the", day_o, "of", month, ","] + year
    if form == 2:
        return [wd, month, day_o] + year
    if form == 3:
        return [wd, ",", "the", day_o, "of", month] + year
    if form == 4:
        return [day_c, month] + year
    return [month, "the", day_o, "in", "the", "year"] + year


def generate_dates(
    n: int, rng: np.random.Generator, *, year_min: int = 1900, year_max: int = 2099, per_line: int = 1
) -> tuple[list[list[str]], list[list[str]]]:
    """``n`` pairs (source words, target characters): spoken dates and their ISO 8601 form."""
    first = datetime.date(year_min, 1, 1).toordinal()
    span = datetime.date(year_max, 12, 31).toordinal() - first + 1
    src, tgt = [], []
    for _ in range(n):
        days = sorted(datetime.date.fromordinal(first + int(k)) for k in rng.integers(span, size=per_line))
        if per_line == 1:
            words, iso = spell_date(days[0], rng), days[0].isoformat()
        else:
            words = ["from"] + spell_date(days[0], rng) + ["to"] + spell_date(days[1], rng)
            iso = f"{days[0].isoformat()}/{days[1].isoformat()}"
        src.append(words)
        tgt.append(list(iso))
    return src, tgt


@register_dataset("dates")
def dates(
    n_train: int = 20000,
    n_val: int = 1000,
    n_test: int = 2000,
    dates_per_line: int = 1,
    year_min: int = 1900,
    year_max: int = 2099,
    seed: Seed = 1234,
) -> DataSplits:
    """Spelled-out dates -> ISO dates, generated (no files): train, val and test pairs drawn independently with
    their own generator ``seed`` (the same task whatever the training seed), test pairs never seen in training."""
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if v < (0 if name == "n_val" else 1):
            raise ConfigError(f"dataset 'dates' argument '{name}' must be >= {0 if name == 'n_val' else 1}, got {v}")
    if dates_per_line not in (1, 2):
        raise ConfigError(f"dataset 'dates' argument 'dates_per_line' must be 1 or 2, got {dates_per_line}")
    if not 1000 <= year_min <= year_max <= 2999:
        raise ConfigError(
            f"dataset 'dates' arguments 'year_min' <= 'year_max' must lie in 1000..2999, got {year_min}, {year_max}"
        )
    rng = np.random.default_rng(seed)
    kw = dict(year_min=year_min, year_max=year_max, per_line=dates_per_line)
    train = generate_dates(n_train, rng, **kw)
    seen = {" ".join(s) for s in train[0]}
    held: dict[str, tuple[list[list[str]], list[list[str]]]] = {}
    for name, n in (("val", n_val), ("test", n_test)):
        src, tgt = [], []
        while len(src) < n:
            s, t = generate_dates(n - len(src), rng, **kw)
            for a, b in zip(s, t, strict=True):
                if " ".join(a) not in seen:
                    seen.add(" ".join(a))
                    src.append(a)
                    tgt.append(b)
        held[name] = (src, tgt)
    src_vocab = Vocab.build(train[0] + held["val"][0] + held["test"][0])  # the task's whole word list
    tgt_vocab = Vocab(list("0123456789-/"))
    splits = {k: encode_pairs(*v, src_vocab, tgt_vocab) for k, v in (("train", train), *held.items())}
    return DataSplits(
        name="dates",
        split="generated",
        train=splits["train"],
        val=splits["val"] if n_val else None,
        test=splits["test"],
        meta={
            "src_vocab": src_vocab.tokens,
            "tgt_vocab": tgt_vocab.tokens,
            "bleu_tokenize": "none",  # BLEU over the target's own tokens (characters)
            "generator_seed": seed,
        },
    )


# ----------------------------------------------------------------------------------------------------------------
# parallel text files


def read_lines(path: str | os.PathLike[str], role: str) -> list[list[str]]:
    """Whitespace tokens of every line of a UTF-8 text file; DataError naming the file (and line) when the file
    is missing, empty, not UTF-8, or has an empty line (a sentence of zero tokens)."""
    where = os.fspath(path)
    if not where:
        raise ConfigError(f"dataset 'parallel-text' needs {role}=<file>")
    raw = read_bytes(where, "a text file", role=role)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{where}: line {line}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if not lines or not text.strip():
        raise DataError(f"{where}: empty file ({role})")
    out = []
    for i, line in enumerate(lines):
        tokens = line.split()
        if not tokens:
            raise DataError(f"{where}: line {i + 1} is empty; every line must hold a sentence")
        out.append(tokens)
    return out


def read_parallel(src_path: str, tgt_path: str, roles: tuple[str, str]) -> tuple[list[list[str]], list[list[str]]]:
    """Both sides of a parallel corpus; their line counts must agree."""
    src, tgt = read_lines(src_path, roles[0]), read_lines(tgt_path, roles[1])
    if len(src) != len(tgt):
        raise DataError(
            f"{tgt_path}: {len(tgt)} lines, but {src_path} has {len(src)}; parallel files need one sentence per "
            f"line on both sides (first line past the shorter file: {min(len(src), len(tgt)) + 1})"
        )
    return src, tgt


@register_dataset("parallel-text")
def parallel_text(
    src_train: str = "",
    tgt_train: str = "",
    src_test: str = "",
    tgt_test: str = "",
    src_val: str = "",
    tgt_val: str = "",
    src_vocab_size: int = 0,
    tgt_vocab_size: int = 0,
    min_count: int = 1,
    max_len: int = 0,
    lowercase: bool = False,
) -> DataSplits:
    """A parallel corpus from text files (one sentence per line, tokens separated by whitespace).

    Vocabularies come from the training files: the most frequent tokens, at most ``*_vocab_size`` ids including the
    four specials (0 = every token seen ``min_count`` times or more); other tokens become ``<unk>``. ``max_len``
    drops training pairs with a side longer than this many tokens (0 = keep all; evaluation pairs are always
    kept). BLEU is computed with sacrebleu's ``13a`` tokenizer on the space-joined tokens.
    """
    for name, v in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size), ("max_len", max_len)):
        if v < 0:
            raise ConfigError(f"dataset 'parallel-text' argument '{name}' must be >= 0, got {v}")
        if name != "max_len" and 0 < v <= len(SPECIALS):
            raise ConfigError(f"dataset 'parallel-text' argument '{name}' must be 0 or > {len(SPECIALS)}, got {v}")
    if min_count < 1:
        raise ConfigError(f"dataset 'parallel-text' argument 'min_count' must be >= 1, got {min_count}")
    if bool(src_val) != bool(tgt_val):
        raise ConfigError("dataset 'parallel-text' needs both src_val and tgt_val, or neither")

    def load(a: str, b: str, ra: str, rb: str) -> tuple[list[list[str]], list[list[str]]]:
        s, t = read_parallel(a, b, (ra, rb))
        if lowercase:
            s = [[w.lower() for w in x] for x in s]
            t = [[w.lower() for w in x] for x in t]
        return s, t

    train = load(src_train, tgt_train, "src_train", "tgt_train")
    if max_len:
        kept = [(s, t) for s, t in zip(*train, strict=True) if len(s) <= max_len and len(t) <= max_len]
        if not kept:
            raise DataError(f"{src_train}: no training pair has both sides within max_len={max_len} tokens")
        train = ([s for s, _ in kept], [t for _, t in kept])
    test = load(src_test, tgt_test, "src_test", "tgt_test")
    val = load(src_val, tgt_val, "src_val", "tgt_val") if src_val else None
    src_vocab = Vocab.build(train[0], src_vocab_size, min_count)
    tgt_vocab = Vocab.build(train[1], tgt_vocab_size, min_count)
    return DataSplits(
        name="parallel-text",
        split="files",
        train=encode_pairs(*train, src_vocab, tgt_vocab),
        val=None if val is None else encode_pairs(*val, src_vocab, tgt_vocab),
        test=encode_pairs(*test, src_vocab, tgt_vocab),
        meta={
            "src_vocab": src_vocab.tokens,
            "tgt_vocab": tgt_vocab.tokens,
            "bleu_tokenize": "13a",
            "files": [p for p in (src_train, tgt_train, src_val, tgt_val, src_test, tgt_test) if p],
        },
    )
