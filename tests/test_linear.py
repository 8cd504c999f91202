"""Linear models: the course's line fit (A3), cookbook 2.5's multiple regression against the closed-form fit, the
selectable losses and penalties, softmax regression with and without the cookbook's double softmax, and the
course's sigmoid "logistic regression" on iris (A4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training import Engine
from deeprecipes.training.optim import build_optimizer


def fit_recipe(recipe: str, overrides: dict | None = None, seed: int = 0):
    """Build a recipe's data, model and optimizer as the runner does and train with the bare engine (no
    checkpoints or logs, so thousands of full-batch epochs take a second); returns (model, data, engine)."""
    cfg = load_recipe(recipe, overrides or {})
    torch.manual_seed(seed)
    data = create_dataset(cfg.data.name, **cfg.data.args)
    model = create_model(cfg.model.name, **cfg.model.args)
    t = cfg.train
    opt = build_optimizer(cfg.optimizer.name, list(model.parameters()), cfg.optimizer.lr, **cfg.optimizer.args)
    engine = Engine(model, optimizers=opt, l1=t.l1, l2=t.l2, max_steps=t.max_steps, log_every=10**9)
    train = Batches(*data.train.tensors(), batch_size=t.batch_size, shuffle=t.shuffle, seed=seed)
    engine.fit(train, epochs=t.epochs)
    return model, data, engine


def test_synthetic_linear_dataset():
    a, b = create_dataset("synthetic-linear"), create_dataset("synthetic-linear")
    c = create_dataset("synthetic-linear", seed=1)
    assert a.sizes() == {"train": 100, "test": 100}
    assert a.train.x.shape == (100, 1) and a.train.y.shape == (100,)
    assert a.train.x.equal(b.train.x) and not a.train.x.equal(c.train.x)
    assert not a.train.x.equal(a.test.x)
    x, y = a.train.x[:, 0].double(), a.train.y.double()
    assert float(x.min()) >= 0 and float(x.max()) < 1
    resid = y - (3 * x + 2)
    assert abs(float(resid.std()) - 0.1) < 0.03 and abs(float(resid.mean())) < 0.03
    with pytest.raises(ConfigError, match="n_train"):
        create_dataset("synthetic-linear", n_train=0)


def test_linear_regression_recipe_lands_near_a3_b2(tmp_path):
    result = deeprecipes.run("linear-regression", out=tmp_path / "run", progress=False)
    m = result.metrics
    assert abs(m["a"] - 3.0) < 0.1 and abs(m["b"] - 2.0) < 0.07  # the digest's band over 20 seeds
    assert m["test_mse"] < 1.2 * m["ols_test_mse"]
    assert result.summary["steps"] == 100
    model = result.model
    assert [s for s, _, _ in model.snapshots] == list(range(0, 100, 5))  # the course's 20 snapshots
    assert "figures/fitted-line.png" in result.summary["figures"]
    assert (tmp_path / "run" / "figures" / "fitted-line.png").stat().st_size > 1000


def test_linear_regression_course_init():
    m = create_model("linear-regression", init="constant", weight=1.0, bias=0.2)
    assert m.linear.weight.item() == 1.0 and m.linear.bias.item() == pytest.approx(0.2)
    z = create_model("linear-regression", n_inputs=5, init="zeros")
    assert torch.count_nonzero(z.linear.weight) == 0
    with pytest.raises(ConfigError, match="init"):
        create_model("linear-regression", init="xavier")
    with pytest.raises(ConfigError, match="loss"):
        create_model("linear-regression", loss="hinge")


def test_multiple_linear_regression_matches_closed_form():
    """2000 epochs of GD 0.01 from N(0, 1) get within 2% of scikit-learn's least-squares test MSE."""
    from sklearn.linear_model import LinearRegression as SkLinear

    model, data, _ = fit_recipe("multiple-linear-regression")
    sk = SkLinear().fit(data.train.x.double().numpy(), data.train.y.double().numpy())
    sk_mse = float(np.mean((sk.predict(data.test.x.double().numpy()) - data.test.y.double().numpy()) ** 2))
    with torch.no_grad():
        ours = float((model(data.test.x)[:, 0] - data.test.y).pow(2).mean())
    assert abs(ours - sk_mse) / sk_mse < 0.02, (ours, sk_mse)
    ref = model.reference_metrics(data)
    assert ref["ols_test_mse"] == pytest.approx(sk_mse, rel=1e-6)
    assert ref["test_rmse"] == pytest.approx(math.sqrt(ours), rel=1e-4)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_losses_selectable_from_the_recipe(loss):
    cfg = load_recipe("multiple-linear-regression", {"model.loss": loss})
    model = create_model(cfg.model.name, **cfg.model.args)
    x, y = torch.randn(16, 10), torch.randn(16) * 30
    got, _ = model.compute_loss((x, y))
    pred = model(x)[:, 0]
    want = {
        "mse": torch.nn.functional.mse_loss(pred, y),
        "l1": torch.nn.functional.l1_loss(pred, y),
        "huber": torch.nn.functional.huber_loss(pred, y, delta=1.0),
    }[loss]
    assert torch.allclose(got, want)


def test_l1_and_l2_penalties_from_the_recipe():
    """train.l1 / train.l2 reach the engine and shrink the weights; L1 drives weak weights towards zero."""
    plain, _, _ = fit_recipe("multiple-linear-regression", {"train.epochs": 300})
    l2, _, e2 = fit_recipe("multiple-linear-regression", {"train.epochs": 300, "train.l2": 0.5})
    l1, _, e1 = fit_recipe("multiple-linear-regression", {"train.epochs": 300, "train.l1": 20.0})
    assert e2.l2 == 0.5 and e1.l1 == 20.0
    norm = lambda m: float(m.linear.weight.detach().norm())  # noqa: E731
    assert norm(l2) < 0.8 * norm(plain)
    w1 = l1.linear.weight.detach().abs()
    assert norm(l1) < norm(plain) and int((w1 < 1.0).sum()) >= 3  # the L1 penalty pushes weak weights to 0


def test_regularised_recipe_runs_end_to_end(tmp_path):
    overrides = {"model.loss": "huber", "train.l2": 0.01, "train.epochs": 3}
    result = deeprecipes.run("multiple-linear-regression", overrides=overrides, out=tmp_path, progress=False)
    assert result.summary["config"]["model"]["loss"] == "huber"
    assert result.summary["config"]["train"]["l2"] == 0.01
    assert "figures/predicted-vs-actual.png" in result.summary["figures"]
    assert {"test_rmse", "test_r2", "ols_test_mse"} <= set(result.metrics)


def test_wrong_number_of_inputs_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="n_inputs=3 but the data have 10"):
        deeprecipes.run("multiple-linear-regression", overrides={"model.n_inputs": 3}, out=tmp_path, progress=False)


# ----------------------------------------------------------------------------------------------------------------
# softmax regression


def test_double_softmax_is_the_cookbook_bug():
    torch.manual_seed(0)
    m = create_model("softmax-regression", init="normal", std=0.1, double_softmax=True)
    x, y = torch.rand(6, 784), torch.randint(0, 10, (6,))
    logits = m.linear(x)
    probs = torch.softmax(logits, 1)
    assert torch.allclose(m(x), probs)
    loss, _ = m.compute_loss((x, y))
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(probs, y))  # softmax applied twice
    with torch.no_grad():
        ev = m.eval_step((x, y))
    assert torch.allclose(ev["loss"], torch.nn.functional.cross_entropy(logits, y, reduction="none"))
    # the doubly-softmaxed loss cannot go below log((e + 9) / e) = 1.4612, however confident the model
    assert float(ev["objective"].min()) >= math.log((math.e + 9) / math.e) - 1e-6
    fixed = create_model("softmax-regression")
    assert torch.count_nonzero(fixed.linear.weight) == 0 and torch.count_nonzero(fixed.linear.bias) == 0
    assert fixed.weight_images()["weights"].shape == (10, 28, 28)


def test_softmax_recipes_use_the_sources_settings():
    book = load_recipe("softmax-regression-cookbook")
    assert book.model.args["double_softmax"] is True
    assert (book.optimizer.name, book.optimizer.lr, book.train.batch_size, book.train.epochs) == ("sgd", 0.01, 100, 100)
    course = load_recipe("softmax-regression-course")
    assert (course.optimizer.lr, course.train.batch_size, course.train.max_steps) == (0.5, 50, 1000)
    assert not load_recipe("softmax-regression").model.args.get("double_softmax", False)


# ----------------------------------------------------------------------------------------------------------------
# the course's iris "logistic regression"


def test_iris_course_split():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    cfg = load_recipe("logistic-regression-iris")
    data = create_dataset(cfg.data.name, **cfg.data.args)
    assert data.sizes() == {"train": 99, "test": 50}
    iris = load_iris()
    x_tr, x_te, _, _ = train_test_split(iris.data[:-1], iris.target[:-1], test_size=0.33, random_state=42)
    np.testing.assert_allclose(data.train.x.numpy(), x_tr, rtol=1e-6)
    np.testing.assert_allclose(data.test.x.numpy(), x_te, rtol=1e-6)


def test_logistic_cost_is_tf_l2_loss():
    torch.manual_seed(0)
    m = create_model("logistic-regression")
    assert float(m.linear.weight.detach().std()) < 0.05
    x, y = torch.rand(7, 4), torch.randint(0, 3, (7,))
    act = torch.sigmoid(m.linear(x))
    onehot = torch.nn.functional.one_hot(y, 3).float()
    loss, _ = m.compute_loss((x, y))
    assert torch.allclose(loss, ((act - onehot) ** 2).sum() / 2)  # tf.nn.l2_loss: sum of squares / 2
    assert torch.allclose(m.eval_step((x, y))["cost"].sum(), loss)


def test_logistic_regression_iris_learns():
    model, data, engine = fit_recipe("logistic-regression-iris")
    with torch.no_grad():
        acc = float((model.predict(data.test.x) == data.test.y).float().mean())
    assert acc >= 0.8
    assert engine.epoch <= 700


def test_logistic_regression_stops_on_a_flat_cost():
    """The course's rule: every 10 epochs, stop when the cost changed by less than tol (here a huge tol)."""
    _, _, engine = fit_recipe("logistic-regression-iris", {"model.tol": 1e9})
    assert engine.should_stop and engine.epoch == 11  # first check at epoch 0, the second (epoch 10) stops
    assert "change in cost" in engine.stop_reason
    _, _, never = fit_recipe("logistic-regression-iris", {"model.check_every": 0, "train.epochs": 30})
    assert not never.should_stop and never.epoch == 30
