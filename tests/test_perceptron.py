"""The cookbook's single-layer perceptron (3.2): the truth table, the perceptron rule without autograd, the
error-threshold stop, and convergence on Y = AB + BC over ten seeds."""

from __future__ import annotations

import pytest
import torch

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.models.perceptron import threshold
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training import Engine


def test_truth_table_in_the_books_order():
    data = create_dataset("boolean-function")
    x, y = data.train.x, data.train.y
    assert x.shape == (8, 4) and torch.all(x[:, 3] == 1)  # the bias column
    assert x[:, :3].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert y.tolist() == [1, 1, 0, 0, 1, 0, 0, 0]  # the book's [T, T, F, F, T, F, F, F]
    assert data.test.x.equal(x) and data.test.y.equal(y)
    assert create_dataset("boolean-function", bias_column=False).train.x.shape == (8, 3)
    with pytest.raises(ConfigError, match="function"):
        create_dataset("boolean-function", function="nand3")


def test_threshold_is_the_books_step():
    assert threshold(torch.tensor([-0.5, 0.0, 2.0])).tolist() == [0.0, 1.0, 1.0]


def test_train_step_applies_the_perceptron_rule_without_autograd():
    torch.manual_seed(3)
    m = create_model("perceptron", n_inputs=4, bias=False)
    data = create_dataset("boolean-function")
    x, y = data.train.x, data.train.y
    w0 = m.weight.detach().clone()
    y_hat = (x @ w0 >= 0).float()
    engine = Engine(m, optimizers=torch.optim.SGD(m.parameters(), lr=0.0))
    logs = m.train_step((x, y), engine)
    expected = w0 + 0.4 * x.T @ (y[:, None] - y_hat)
    assert torch.allclose(m.weight, expected)
    assert float(logs["error"]) == pytest.approx(float(((y[:, None] - y_hat) ** 2).mean()))
    assert m.weight.grad is None  # no autograd involved


def test_perceptron_criterion_gradient_is_the_rule():
    """One SGD step of lr eta on compute_loss's criterion equals the perceptron rule (bias included)."""
    torch.manual_seed(1)
    a = create_model("perceptron", n_inputs=3, bias=True)
    b = create_model("perceptron", n_inputs=3, bias=True)
    b.load_state_dict(a.state_dict())
    data = create_dataset("boolean-function", bias_column=False)
    batch = (data.train.x, data.train.y)
    opt = torch.optim.SGD(a.parameters(), lr=a.eta)
    loss, _ = a.compute_loss(batch)
    loss.backward()
    opt.step()
    b.train_step(batch, Engine(b, optimizers=torch.optim.SGD(b.parameters(), lr=0.0)))
    assert torch.allclose(a.weight, b.weight) and torch.allclose(a.bias, b.bias)


def converge(seed: int, function: str = "ab+bc") -> Engine:
    cfg = load_recipe("perceptron", {"data.function": function})
    torch.manual_seed(seed)
    data = create_dataset(cfg.data.name, **cfg.data.args)
    model = create_model(cfg.model.name, **cfg.model.args)
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.0), log_every=10**9)
    engine.fit(Batches(*data.train.tensors(), batch_size=8, shuffle=False), epochs=cfg.train.epochs)
    return engine


@pytest.mark.parametrize("seed", range(10))
def test_converges_on_ab_plus_bc(seed):
    engine = converge(seed)
    assert engine.should_stop and "<= epsilon" in engine.stop_reason
    assert engine.epoch < 100
    data = create_dataset("boolean-function")
    assert engine.model(data.test.x)[:, 0].equal(data.test.y)  # every row right


def test_xor_never_converges():
    engine = converge(0, "xor")  # not linearly separable (Minsky): the rule cycles for all 100 epochs
    assert not engine.should_stop and engine.epoch == 100


def test_perceptron_recipe_end_to_end(tmp_path):
    result = deeprecipes.run("perceptron", seed=0, out=tmp_path, progress=False)
    assert result.metrics["test_mse"] == 0.0 and result.metrics["test_accuracy"] == 1.0
    assert result.summary["status"] == "stopped early" and result.summary["epochs"] < 100
