"""Text data and language models: reading and checking text, vocabularies, the stream layout for truncated BPTT,
the carried state, perplexity / bits per character, generation and ``deeprecipes sample``."""

import gzip
import math
import types

import pytest
import torch

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.data.text import (
    SHIPPED,
    SHIPPED_WORKS,
    Vocabulary,
    load_ptb,
    read_text,
    stream_windows,
    word_tokens,
)
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training import Engine

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------------------------
# text and vocabularies


def test_read_text_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nsecond \xff line\n")
    with pytest.raises(DataError, match=r"bad.txt: not UTF-8 .* line 2"):
        read_text(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(DataError, match="empty.txt: the text is empty"):
        read_text(empty)
    with pytest.raises(DataError, match="missing.txt: no such text file"):
        read_text(tmp_path / "missing.txt")
    crlf = tmp_path / "crlf.txt.gz"
    crlf.write_bytes(gzip.compress(b"a\r\nb"))
    assert read_text(crlf) == "a\nb"


def test_shipped_corpus_is_about_a_megabyte_of_whole_plays():
    sizes = [len(read_text(SHIPPED / f"{w}.txt.gz")) for w in SHIPPED_WORKS]
    assert 0.9e6 < sum(sizes) < 1.2e6
    compressed = sum((SHIPPED / f"{w}.txt.gz").stat().st_size for w in SHIPPED_WORKS)
    assert compressed < 1.5e6
    assert read_text(SHIPPED / "hamlet.txt.gz").startswith("HAMLET")


def test_vocabulary_order_encoding_and_round_trip():
    v = Vocabulary.build("abbccc")
    assert v.tokens == ["c", "b", "a"]  # most frequent first, as the course's TextLoader
    assert v.encode(list("cab")).tolist() == [0, 2, 1]
    with pytest.raises(DataError, match="'z'"):
        v.encode(list("az"), "the prime")
    w = Vocabulary.build(["x", "y", "y", "z", "z", "z"], max_size=3, unk="<unk>")
    assert w.tokens == ["z", "y", "<unk>"] and w.encode(["x"]).tolist() == [2]
    back = Vocabulary.from_codes(w.to_codes(), "<unk>")
    assert back.tokens == w.tokens and back.unk == "<unk>"
    chars = Vocabulary.build("a\n b")
    assert Vocabulary.from_codes(chars.to_codes()).tokens == chars.tokens


def test_word_tokens_are_ptb_like():
    assert word_tokens("Rom. O, she doth teach!\n\nthe torches' light\n") == [
        "rom",
        ".",
        "o",
        ",",
        "she",
        "doth",
        "teach",
        "!",
        "<eos>",
        "the",
        "torches",
        "'",
        "light",
        "<eos>",
    ]


# ----------------------------------------------------------------------------------------------------------------
# layout


def test_stream_windows_continue_from_batch_to_batch():
    ids = torch.arange(103)
    d = stream_windows(ids, batch_size=4, steps=5)
    b = 4
    n_windows = len(d.x) // b
    assert d.x.shape == (n_windows * b, 5) and torch.equal(d.y, d.x + 1)
    for k in range(1, n_windows):
        assert torch.equal(d.x[k * b : (k + 1) * b, 0], d.y[(k - 1) * b : k * b, -1])
    # stream j holds the j-th quarter of the text, in order
    stream0 = d.x[0::b].flatten()
    assert torch.equal(stream0, torch.arange(len(stream0)))
    assert d.x[1, 0] == 103 // 4
    with pytest.raises(DataError, match="too few"):
        stream_windows(torch.arange(10), batch_size=4, steps=5)


def test_shakespeare_datasets():
    d = create_dataset("shakespeare-char", batch_size=10, steps=20)
    assert d.meta["num_classes"] == len(d.meta["vocab"]) == 76
    assert d.train.x.shape[1] == 20 and len(d.train) % 10 == 0
    assert d.meta["tokens"]["train"] > 900_000
    w = create_dataset("shakespeare-words", vocab_size=5000)
    assert w.meta["num_classes"] == 5000 and w.meta["vocab"][-1] == "<unk>"
    win = create_dataset("shakespeare-char", layout="windows", steps=25, redundancy=3)
    assert win.train.x.shape[1] == 25 and win.train.y.ndim == 1
    with pytest.raises(DataError, match="steps"):
        create_dataset("shakespeare-char", steps=0)
    with pytest.raises(DataError, match="layout"):
        create_dataset("shakespeare-char", layout="pages")


def test_text_file_source_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xfe\xfe")
    with pytest.raises(DataError, match="bad.txt"):
        create_dataset("shakespeare-char", source=str(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.txt: the text is empty"):
        create_dataset("shakespeare-words", source=str(empty))


def test_ptb_loader_checks_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPRECIPES_OFFLINE", "1")
    with pytest.raises(DataError, match="ptb.train.txt.*DEEPRECIPES_OFFLINE"):
        load_ptb(str(tmp_path))
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        (tmp_path / name).write_text("not the treebank\n")
    with pytest.raises(DataError, match=r"ptb.train.txt: expected PTB's 42068 lines and 929589 tokens"):
        load_ptb(str(tmp_path))


def test_ptb_download_is_checked_against_its_md5_and_leaves_nothing_behind(tmp_path, monkeypatch):
    import io
    import urllib.request

    from deeprecipes.data import text

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=0: io.BytesIO(b"a changed file\n"))
    with pytest.raises(DataError, match=r"ptb.train.txt: MD5 \w+ does not match PTB's f26c4b92"):
        text._download_ptb(tmp_path / "ptb")
    assert list((tmp_path / "ptb").iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------
# the model


def _model(**kw):
    torch.manual_seed(0)
    return create_model("rnn-lm", vocab_size=11, hidden_size=16, embed_size=8, **kw)


def test_carried_state_equals_one_long_sequence():
    """Two consecutive windows with the state carried give the logits of the whole sequence at once."""
    m = _model().eval()
    seq = torch.randint(0, 11, (3, 13))
    full, _ = m(seq[:, :12])
    m.eval()
    m.eval_step((seq[:, :6], seq[:, 1:7]))
    loss2 = m.eval_step((seq[:, 6:12], seq[:, 7:13]))["loss"]
    expect = torch.nn.functional.cross_entropy(full[:, 6:12].transpose(1, 2), seq[:, 7:13], reduction="none")
    assert torch.allclose(loss2, expect.mean(1), atol=1e-5)
    m.train(False)  # a mode switch starts afresh
    fresh = m.eval_step((seq[:, 6:12], seq[:, 7:13]))["loss"]
    assert not torch.allclose(fresh, loss2)


def test_engine_evaluation_of_streams_is_the_per_token_loss_of_each_stream():
    m = _model()
    ids = torch.randint(0, 11, (401,))
    d = stream_windows(ids, batch_size=4, steps=10)
    got = Engine(m).evaluate(deeprecipes.Batches(d.x, d.y, batch_size=4, shuffle=False))
    m.eval()
    streams = ids[: 4 * 100].reshape(4, 100)
    logits, _ = m(streams[:, :90])
    want = torch.nn.functional.cross_entropy(logits.transpose(1, 2), streams[:, 1:91]).item()
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["bpc"] == pytest.approx(want / math.log(2), rel=1e-5)


def test_training_batches_that_do_not_continue_are_an_error():
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    engine = Engine(m, optimizers=opt)
    x = torch.randint(0, 11, (4, 5))
    m.train_step((x, x), engine)
    engine.batch = 1
    other = (x + 1) % 11
    with pytest.raises(ConfigError, match="train.shuffle = false"):
        m.train_step((other, other), engine)
    m2 = _model(carry_state=False)
    m2.train_step((x, x), Engine(m2, optimizers=torch.optim.SGD(m2.parameters(), lr=0.1)))
    m2.train_step((other, other), Engine(m2, optimizers=torch.optim.SGD(m2.parameters(), lr=0.1)))


def test_model_takes_the_corpus_vocabulary_and_one_hot_inputs():
    d = create_dataset("shakespeare-char", batch_size=10, steps=20)
    m = create_model("rnn-lm", embed_size=0, hidden_size=8, num_layers=1)
    m.prepare_data(d)
    assert m.vocab_size == 76 and m.readout.out_features == 76 and m.rnn.input_size == 76
    assert m.vocabulary().tokens == d.meta["vocab"]
    logits, _ = m(d.train.x[:2])
    assert logits.shape == (2, 20, 76)
    windows = (d.train.x[:3], d.train.y[:3, -1])  # next-token windows: one label per window
    assert m.eval_step(windows)["loss"].shape == (3,)
    with pytest.raises(ConfigError, match="steps"):
        m.check_data(torch.zeros(4, 0, dtype=torch.int64))


@pytest.mark.parametrize("embed_size, init", [(8, "torch"), (8, "glorot"), (8, "uniform"), (0, "glorot")])
def test_layers_sized_to_the_corpus_land_on_the_models_device(embed_size, init):
    """The runner moves the model to its device before ``prepare_data``, which rebuilds the vocabulary-sized layers
    (the one-hot recurrent stack too): they must follow the other weights there. The meta device stands in for a GPU
    here; tests/test_cuda.py runs the real thing."""
    vocab = [chr(c) for c in range(33, 33 + 40)]
    m = create_model("rnn-lm", vocab_size=11, hidden_size=8, num_layers=1, embed_size=embed_size, init=init)
    m = m.to("meta")
    m.prepare_data(types.SimpleNamespace(meta={"vocab": vocab, "level": "char"}))
    assert m.vocab_size == 40 and m.readout.out_features == 40
    assert {p.device.type for p in m.parameters()} == {"meta"}
    assert {b.device.type for b in m.buffers()} == {"meta"}


def test_generation_is_seeded_and_checks_its_prime():
    d = create_dataset("shakespeare-char", batch_size=10, steps=20)
    m = create_model("rnn-lm", hidden_size=16, embed_size=8)
    m.prepare_data(d)
    a = m.generate_text("ROMEO:", length=40, temperature=0.8, seed=3)
    assert a.startswith("ROMEO:") and len(a) == 46
    assert a == m.generate_text("ROMEO:", length=40, temperature=0.8, seed=3)
    greedy = m.generate_text("ROMEO:", length=20, temperature=0.0, seed=1)
    assert greedy == m.generate_text("ROMEO:", length=20, temperature=0.0, seed=2)
    with pytest.raises(DataError, match="outside the model's vocabulary: '~'"):
        m.generate_text("ROMEO~", length=5)
    with pytest.raises(ConfigError, match="length"):
        m.generate_text("A", length=0)
    with pytest.raises(ConfigError, match="temperature"):
        m.generate_text("A", length=5, temperature=-1.0)


# ----------------------------------------------------------------------------------------------------------------
# end to end


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("char")
    return deeprecipes.run(
        "char-rnn-shakespeare",
        overrides={"train.epochs": 1, "train.max_steps": 120, "train.threads": 1},
        out=out,
        progress=False,
    )


def test_char_model_learns_and_reports_bits_per_character(char_run):
    m = char_run.metrics
    assert m["test_loss"] < 0.7 * math.log(76)  # untrained: ln 76 = 4.33 nats
    assert m["test_bpc"] == pytest.approx(m["test_loss"] / math.log(2), rel=1e-6)
    assert m["test_perplexity"] == pytest.approx(math.exp(m["test_loss"]), rel=1e-3)


def test_sample_command_and_function(char_run, capsys):
    text = deeprecipes.sample(char_run.run_dir, prime="ROMEO:", temperature=0.8, length=50, seed=0)
    assert text.startswith("ROMEO:") and len(text) == 56
    assert main(["sample", str(char_run.run_dir), "--prime", "ROMEO:", "--temperature", "0.8", "--length", "50"]) == 0
    assert capsys.readouterr().out.strip() == text.strip()
    assert main(["sample", str(char_run.run_dir), "--prime", "ROMEO\u00e9"]) == 2
    assert "outside the model's vocabulary" in capsys.readouterr().err
    assert main(["sample", str(char_run.run_dir), "--length", "0"]) == 2
    assert "length must be >= 1" in capsys.readouterr().err
    assert main(["sample", str(char_run.run_dir), "--interpolate"]) == 2
    assert "--interpolate is for image models (a VAE, a GAN)" in capsys.readouterr().err


def test_word_model_on_shakespeare_learns(tmp_path):
    result = deeprecipes.run(
        "word-lm-shakespeare",
        overrides={"train.epochs": 1, "train.max_steps": 100, "train.threads": 1, "data.vocab_size": 2000},
        out=tmp_path,
        progress=False,
    )
    assert result.metrics["test_loss"] < 0.85 * math.log(2000)
    text = deeprecipes.sample(tmp_path, prime="to be", length=10, temperature=1.0)
    assert text.startswith("to be ") and len(text.split()) >= 10
