"""Recurrent cells and sequence shapes: the peephole LSTM against its equations, padding that never leaks into the
state, the cell factory, the many-to-one / many-to-many / encoder-decoder models and the delayed lr decay."""

import pytest
import torch
from torch import nn

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.models.cells import CELLS, PeepholeLSTM, PeepholeLSTMCell, make_rnn, run_rnn
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training.optim import lr_factor

torch.set_num_threads(1)


def test_peephole_cell_follows_the_equations():
    torch.manual_seed(0)
    cell = PeepholeLSTMCell(3, 4, forget_bias=1.0)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    W, U, b, p = cell.weight_ih, cell.weight_hh, cell.bias, cell.peephole
    Wi, Wf, Wg, Wo = W.chunk(4)
    Ui, Uf, Ug, Uo = U.chunk(4)
    bi, bf, bg, bo = b.chunk(4)
    i = torch.sigmoid(x @ Wi.T + h @ Ui.T + p[0] * c + bi)
    f = torch.sigmoid(x @ Wf.T + h @ Uf.T + p[1] * c + bf + 1.0)
    g = torch.tanh(x @ Wg.T + h @ Ug.T + bg)
    c_new = f * c + i * g
    o = torch.sigmoid(x @ Wo.T + h @ Uo.T + p[2] * c_new + bo)
    h_new = o * torch.tanh(c_new)
    got_h, got_c = cell(x, (h, c))
    assert torch.allclose(got_h, h_new, atol=1e-6) and torch.allclose(got_c, c_new, atol=1e-6)


def test_peephole_cell_without_peepholes_is_torchs_lstm_cell():
    torch.manual_seed(0)
    cell = PeepholeLSTMCell(3, 4)
    ref = nn.LSTMCell(3, 4)
    with torch.no_grad():
        cell.peephole.zero_()
        ref.weight_ih.copy_(cell.weight_ih)
        ref.weight_hh.copy_(cell.weight_hh)
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x, h, c = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    for a, b in zip(cell(x, (h, c)), ref(x, (h, c)), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_reaches_the_state(cell, bidirectional):
    """A sequence padded with junk gives the same outputs and final state as the sequence alone."""
    torch.manual_seed(0)
    rnn = make_rnn(cell, 3, 5, num_layers=2, dropout=0.0, bidirectional=bidirectional).eval()
    dirs = 2 if bidirectional else 1
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 2, 4])
    out, state = run_rnn(rnn, x, lengths)
    assert out.shape == (3, 6, 5 * dirs)
    h = state[0] if isinstance(state, tuple) else state
    assert h.shape == (2 * dirs, 3, 5)
    for k, n in enumerate(lengths.tolist()):
        alone, s_alone = run_rnn(rnn, x[k : k + 1, :n])
        assert torch.allclose(out[k, :n], alone[0], atol=1e-5)
        assert torch.count_nonzero(out[k, n:]) == 0
        h_alone = s_alone[0] if isinstance(s_alone, tuple) else s_alone
        assert torch.allclose(h[:, k], h_alone[:, 0], atol=1e-5)


def test_peephole_stack_shapes_and_dropout_between_layers():
    rnn = PeepholeLSTM(3, 4, num_layers=3, dropout=0.5, bidirectional=True)
    out, (h, c) = rnn(torch.randn(2, 5, 3))
    assert out.shape == (2, 5, 8) and h.shape == c.shape == (6, 2, 4)
    rnn.eval()
    a, _ = rnn(torch.ones(2, 5, 3))
    b, _ = rnn(torch.ones(2, 5, 3))
    assert torch.equal(a, b)  # no dropout in evaluation


def test_make_rnn_uses_torch_modules_and_checks_arguments():
    assert isinstance(make_rnn("lstm", 3, 4), nn.LSTM)
    assert isinstance(make_rnn("gru", 3, 4), nn.GRU)
    rnn = make_rnn("rnn", 3, 4)
    assert isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh"
    lstm = make_rnn("lstm", 3, 4, forget_bias=1.0)
    fresh = make_rnn("lstm", 3, 4)
    assert lstm.bias_ih_l0[4:8].mean() > fresh.bias_ih_l0[4:8].mean() + 0.5
    with pytest.raises(ConfigError, match="cell"):
        make_rnn("transformer", 3, 4)
    with pytest.raises(ConfigError, match="dropout"):
        make_rnn("lstm", 3, 4, dropout=1.5)


def test_many_to_one_ignores_padding_and_learns():
    torch.manual_seed(0)
    model = create_model("rnn-sequence-classifier", hidden_size=32)
    x = torch.tensor([[3, 5, 2, 0, 0], [4, 0, 0, 0, 0]])
    wider = torch.cat([x, torch.zeros(2, 7, dtype=torch.int64)], 1)
    model.eval()
    assert torch.allclose(model(x), model(wider), atol=1e-6)
    data = create_dataset("sequence-toy", task="max", n_train=512, n_test=64)
    xb, yb = data.train.x, data.train.y
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(60):
        loss, _ = model.compute_loss((xb, yb))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_many_to_many_tags_every_step_and_scores_only_real_steps():
    torch.manual_seed(0)
    model = create_model("rnn-sequence-tagger", hidden_size=16)
    x = torch.tensor([[3, 5, 2, 0], [4, 1, 0, 0]])
    assert model(x).shape == (2, 4, 12)
    y = torch.tensor([[6, 4, 6, 0], [2, 5, 0, 0]])
    junk = y.clone()
    junk[:, 3] = 7  # targets under padding do not count
    m = model.eval_step((x, y))
    assert torch.allclose(m["loss"], model.eval_step((x, junk))["loss"])
    assert m["loss"].shape == (2,)


def test_encoder_decoder_decodes_and_learns_to_reverse():
    torch.manual_seed(0)
    data = create_dataset("sequence-toy", task="reverse", n_train=256, n_test=32, max_len=5)
    model = create_model("rnn-encoder-decoder", hidden_size=64)
    x, y = data.train.x, data.train.y
    assert model(x, y).shape == (256, 6, 13)
    assert model.decode(x[:3], 6).shape == (3, 6)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = model.compute_loss((x, y))[0].item()
    for _ in range(80):
        loss, _ = model.compute_loss((x, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    m = model.eval_step((data.test.x, data.test.y))
    assert set(m) == {"loss", "accuracy", "sequence_accuracy"}
    assert m["accuracy"].mean() > 0.3


def test_toy_targets():
    d = create_dataset("sequence-toy", task="max", n_train=50, n_test=5, seed=1)
    x, y = d.train.x, d.train.y
    for row, label in zip(x, y, strict=True):
        assert (row[row > 0] - 1).max() == label
    d = create_dataset("sequence-toy", task="reverse", n_train=5, n_test=5)
    row, target = d.train.x[0], d.train.y[0]
    n = int((row > 0).sum())
    assert torch.equal(target[:n], row[:n].flip(0)) and target[n] == 11
    with pytest.raises(deeprecipes.DataError, match="task"):
        create_dataset("sequence-toy", task="sort")
    with pytest.raises(deeprecipes.DataError, match="min_len"):
        create_dataset("sequence-toy", min_len=0)


def test_exponential_decay_after_a_delay_matches_the_ptb_schedule():
    # course A11: lr = 1.0 * 0.5 ** max(i - 4, 0) for epochs i = 0..12
    lrs = [lr_factor(i * 10, name="exponential", steps_per_epoch=10, gamma=0.5, delay=4) for i in range(13)]
    assert lrs == [0.5 ** max(i - 4, 0) for i in range(13)]
    assert lr_factor(25, name="exponential", steps_per_epoch=10, gamma=0.97) == 0.97**2  # no delay: as before


def test_many_to_one_recipe_runs(tmp_path):
    result = deeprecipes.run(
        "rnn-many-to-one",
        overrides={"train.epochs": 1, "train.train_subset": 4000, "train.eval_subset": 500, "train.threads": 1},
        out=tmp_path,
        progress=False,
    )
    assert result.metrics["test_accuracy"] > 0.5
