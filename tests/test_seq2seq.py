"""Encoder-decoder translation: the generated dates task, parallel text files, masking, attention, decoding, BLEU,
and short end-to-end runs of the seq2seq recipes."""

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.data.translation import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocab,
    dates,
    generate_dates,
    parallel_text,
    read_lines,
)
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.models.seq2seq import _exact, corpus_bleu
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model

torch.set_num_threads(1)
RECIPES = ["seq2seq-dates", "seq2seq-dates-luong", "seq2seq-dates-bahdanau"]


def _model(attention="none", **kw):
    torch.manual_seed(0)
    kw = {"src_vocab_size": 12, "tgt_vocab_size": 9, "embedding_size": 16, "hidden_size": 16, **kw}
    return create_model("seq2seq", attention=attention, dropout=0.0, **kw)


def _batch(n=6, s=5, t=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, 12, (n, s), generator=g)
    x[0, 3:] = PAD  # a short sentence
    y = torch.randint(4, 9, (n, t), generator=g)
    y[:, -1] = EOS
    y[1, 2] = EOS
    y[1, 3] = PAD
    return x, y


# ----------------------------------------------------------------------------------------------------------------
# data


def test_dates_are_right_and_reproducible():
    rng = np.random.default_rng(3)
    src, tgt = generate_dates(200, rng)
    assert all(len(t) == 10 and t[4] == "-" and t[7] == "-" for t in tgt)
    months = "january february march april may june july august september october november december".split()
    for s, t in zip(src, tgt, strict=True):
        month = next(m for m in months if m in s)
        assert int("".join(t[5:7])) == months.index(month) + 1
    s2, t2 = generate_dates(200, np.random.default_rng(3))
    assert (src, tgt) == (s2, t2)
    _, ranges = generate_dates(5, rng, per_line=2)
    assert all(len(r) == 21 and r[10] == "/" and "".join(r[:10]) <= "".join(r[11:]) for r in ranges)


def test_dates_dataset_splits_and_vocab():
    d = dates(n_train=300, n_val=50, n_test=100)
    assert d.train.x.dtype == torch.int64 and d.train.y.shape == (300, 11)
    assert (d.train.y[:, 10] == EOS).all() and d.meta["tgt_vocab"][:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    train = {tuple(r.tolist()) for r in d.train.x}
    assert not any(tuple(r.tolist()) in train for r in d.test.x)  # test sentences never seen in training
    assert ((d.test.x != PAD).sum(1) >= 4).all()
    with pytest.raises(ConfigError, match="n_test"):
        dates(n_test=0)
    with pytest.raises(ConfigError, match="dates_per_line"):
        dates(dates_per_line=3)


def test_vocab_specials_and_unknowns():
    v = Vocab.build([["a", "b", "a"], ["c"]], max_size=6)
    assert v.tokens == ["<pad>", "<s>", "</s>", "<unk>", "a", "b"]
    assert v.encode(["a", "c", "zzz"]) == [4, UNK, UNK]
    assert v.decode([BOS, 4, 5, EOS, 4]) == ["a", "b"]


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_parallel_files_read(tmp_path):
    s = _write(tmp_path / "train.vi", "xin chào\ncảm ơn bạn\n")
    t = _write(tmp_path / "train.en", "hello\nthank you\n")
    d = parallel_text(src_train=s, tgt_train=t, src_test=s, tgt_test=t)
    assert d.train.x.shape == (2, 3) and d.train.y.shape == (2, 3)
    assert d.meta["bleu_tokenize"] == "13a" and "chào" in d.meta["src_vocab"]
    assert d.train.y[0].tolist() == [d.meta["tgt_vocab"].index("hello"), EOS, PAD]


@pytest.mark.parametrize(
    "content, message",
    [
        ("one\n\nthree\n", r"src\.txt: line 2 is empty"),
        ("", r"src\.txt: empty file"),
        (b"ok\n\xff\xfe bad\n", r"src\.txt: line 2: not UTF-8"),
    ],
)
def test_bad_text_files_name_file_and_line(tmp_path, content, message):
    path = _write(tmp_path / "src.txt", content)
    with pytest.raises(DataError, match=message):
        read_lines(path, "src_train")


def test_parallel_files_must_have_equal_line_counts(tmp_path):
    s = _write(tmp_path / "a.src", "a\nb\nc\n")
    t = _write(tmp_path / "a.tgt", "x\ny\n")
    with pytest.raises(DataError, match=r"a\.tgt: 2 lines, but .*a\.src has 3"):
        parallel_text(src_train=s, tgt_train=t, src_test=s, tgt_test=s)
    with pytest.raises(DataError, match="no such file"):
        parallel_text(src_train=s, tgt_train=str(tmp_path / "missing"), src_test=s, tgt_test=s)
    with pytest.raises(ConfigError, match="src_train"):
        parallel_text()


# ----------------------------------------------------------------------------------------------------------------
# the model


@pytest.mark.parametrize("attention", ["none", "luong", "scaled_luong", "bahdanau"])
def test_shapes_masking_and_padding_ignored(attention):
    m = _model(attention)
    x, y = _batch()
    logits = m(x, y)
    assert logits.shape == (6, 4, 9)
    loss, logs = m.compute_loss((x, y))
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
    assert torch.allclose(loss, (ce * (y != PAD)).sum() / 6)  # nmt: masked sum over tokens / batch size
    # padding in the source changes nothing: the same sentence with extra padding gives the same logits
    wide = torch.nn.functional.pad(x, (0, 3), value=PAD)
    assert torch.allclose(m(wide, y), logits, atol=1e-5)
    # what the model outputs after </s> does not enter the loss
    y2 = y.clone()
    y2[1, 3] = PAD
    assert torch.allclose(m.compute_loss((x, y2))[0], loss)
    ev = m.eval_step((x, y))
    assert set(ev) == {"loss", "tokens", "exact_match"} and all(v.shape == (6,) for v in ev.values())
    assert ev["tokens"].tolist() == [4, 3, 4, 4, 4, 4]


def test_attention_weights_are_a_distribution_over_real_tokens():
    m = _model("bahdanau").eval()
    x, _ = _batch()
    toks, att = m.translate(x)
    assert att.shape[:2] == toks.shape and att.shape[2] == x.shape[1]
    assert torch.allclose(att.sum(-1), torch.ones(att.shape[:2]), atol=1e-5)
    assert (att[0, :, 3:] == 0).all()  # never on padding


def test_decoding_limits_and_beam_of_one_is_greedy():
    m = _model("luong").eval()
    x, _ = _batch()
    greedy, _ = m.translate(x)
    assert greedy.shape[1] <= 2 * 5  # at most round(2 x longest source)
    beam1, _ = m.translate(x, "beam", beam_width=1)
    assert torch.equal(beam1[:, : greedy.shape[1]], greedy)
    beam4, _ = m.translate(x, "beam", beam_width=4)
    assert beam4.shape[0] == 6
    torch.manual_seed(1)
    a = m.translate(x, "sample")[0]
    torch.manual_seed(1)
    assert torch.equal(a, m.translate(x, "sample")[0])
    with pytest.raises(ConfigError, match="greedy, sample or beam"):
        m.translate(x, "nucleus")


def test_beam_search_finds_at_least_the_greedy_log_probability():
    m = _model("scaled_luong", tgt_vocab_size=6).eval()
    x, _ = _batch(n=8, seed=4)

    def logprob(tokens):
        y = tokens.clone()
        logp = m(x, y).log_softmax(-1).gather(2, y[..., None])[..., 0]
        ended = (y == EOS).long().cumsum(1) - (y == EOS).long() > 0
        return (logp * (~ended & (y != PAD))).sum(1)

    with torch.no_grad():
        greedy, _ = m.translate(x)
        beam, _ = m.translate(x, "beam", beam_width=5)
        done = (greedy == EOS).any(1) & (beam == EOS).any(1)
        assert (logprob(beam)[done] >= logprob(greedy)[done] - 1e-4).all()


def test_exact_match_and_bleu():
    y = torch.tensor([[5, 6, EOS, PAD], [5, 6, 7, EOS]])
    out = torch.tensor([[5, 6, EOS, 9, 9], [5, 6, 7, 8, EOS]])
    out[0, 3:] = PAD
    assert _exact(out, y).tolist() == [True, False]
    assert corpus_bleu([["a", "b", "c", "d"]], [["a", "b", "c", "d"]], "none") == pytest.approx(100.0)
    assert corpus_bleu([["x", "y", "z", "w"]], [["a", "b", "c", "d"]], "none") == pytest.approx(0.0)


def test_vocabulary_sizes_come_from_the_data_and_zero_length_is_an_error():
    d = dates(n_train=50, n_val=0, n_test=20)
    m = create_model("seq2seq", hidden_size=8, embedding_size=8)
    m.prepare_data(d)
    assert m.src_embed.num_embeddings == len(d.meta["src_vocab"]) and m.projection.out_features == 16
    m.check_data(d.train.x)
    bad = d.train.x.clone()
    bad[7] = PAD
    with pytest.raises(DataError, match="sentence 8 has length zero"):
        m.check_data(bad)
    with pytest.raises(ConfigError, match="src_vocab_size=10 is smaller"):
        create_model("seq2seq", src_vocab_size=10).prepare_data(d)
    with pytest.raises(ConfigError, match="attention"):
        create_model("seq2seq", attention="dot")


def test_overfits_a_small_batch():
    m = _model("luong")
    x, y = _batch()
    opt = torch.optim.Adam(m.parameters(), 0.02)
    for _ in range(150):
        loss, _ = m.compute_loss((x, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert loss.item() < 0.05
    assert m.eval_step((x, y))["exact_match"].all()


# ----------------------------------------------------------------------------------------------------------------
# recipes end to end


def test_recipes_check_and_share_the_task():
    cfgs = [load_recipe(r) for r in RECIPES]
    assert [c.model.args.get("attention", "none") for c in cfgs] == ["none", "scaled_luong", "bahdanau"]
    assert all(c.data.args == cfgs[0].data.args and c.train.grad_clip > 0 for c in cfgs)


@pytest.mark.parametrize("recipe", ["seq2seq-dates-luong"])
def test_short_run_learns_reports_bleu_and_draws_attention(recipe, tmp_path):
    over = {
        "train.max_steps": 300,
        "train.epochs": 4,
        "data.n_train": 10000,
        "data.n_test": 300,
        "data.n_val": 100,
        "train.threads": 1,
    }
    r = deeprecipes.run(recipe, overrides=over, out=tmp_path, progress=False)
    m = r.metrics
    assert m["test_exact_match"] > 0.3 and m["test_bleu"] > 50
    for k in ("test_bleu_beam", "test_exact_match_beam", "test_bleu_sample", "test_ppl"):
        assert k in m
    assert (tmp_path / "figures" / "attention.png").stat().st_size > 5000
    # the data do not depend on the training seed: the task is fixed
    a = create_dataset("dates", n_train=10, n_test=10, n_val=0)
    assert torch.equal(a.test.x, create_dataset("dates", n_train=10, n_test=10, n_val=0).test.x)


def test_parallel_text_files_run_end_to_end(tmp_path):
    src = ["ich sehe die katze", "die katze schläft", "ich sehe den hund", "der hund schläft"] * 10
    tgt = ["i see the cat", "the cat sleeps", "i see the dog", "the dog sleeps"] * 10
    (tmp_path / "train.de").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "train.en").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    recipe = tmp_path / "toy.toml"
    recipe.write_text(
        f"""name = "toy"
[target]
metric = "test_bleu"
[data]
name = "parallel-text"
src_train = "{tmp_path / "train.de"}"
tgt_train = "{tmp_path / "train.en"}"
src_test = "{tmp_path / "train.de"}"
tgt_test = "{tmp_path / "train.en"}"
[model]
name = "seq2seq"
attention = "luong"
hidden_size = 32
embedding_size = 32
dropout = 0.0
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 40
batch_size = 8
eval_on = ["test"]
histograms = false
threads = 1
"""
    )
    r = deeprecipes.run(str(recipe), out=tmp_path / "run", progress=False)
    assert r.metrics["test_bleu"] > 90 and r.metrics["test_exact_match"] == 1.0
    (tmp_path / "train.en").write_text("\n".join(tgt[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.en: 39 lines, but .*train\.de has 40"):
        deeprecipes.run(str(recipe), out=tmp_path / "run2", progress=False)
