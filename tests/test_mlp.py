"""MLPs: the hand-written backpropagation of cookbook 3.3 against autograd, and the general MLP classifier."""

import math

import pytest
import torch

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.machine import Precision
from deeprecipes.models.mlp import BackpropMLP, MLPClassifier
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_model
from deeprecipes.training import Engine
from deeprecipes.training.optim import build_optimizer


def batch(m=10, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, 784, generator=g, dtype=dtype), torch.randint(0, 10, (m,), generator=g)


def backprop_model(seed=0, **kw):
    torch.manual_seed(seed)
    return BackpropMLP(**kw).double()


def autograd_grads(model, x, y):
    model.zero_grad()
    model.loss(model.layers(x)[3], y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


# ----------------------------------------------------------------------------------------------------------------
# cookbook 3.3: the hand-written gradients


@pytest.mark.parametrize("m", [1, 10, 37])
def test_hand_written_gradients_equal_autograd(m):
    model = backprop_model(init_std=0.3)  # N(0, 1) saturates most units: small weights test every path
    x, y = batch(m, seed=m)
    manual = model.gradients(x, y)
    auto = autograd_grads(model, x, y)
    assert set(manual) == set(auto) == {"w_h1", "b_h1", "w_out", "b_out"}
    for name in auto:
        assert manual[name].shape == auto[name].shape
        torch.testing.assert_close(manual[name], auto[name], rtol=1e-10, atol=1e-13, msg=name)
        assert auto[name].abs().max() > 1e-6  # a real gradient, not zeros on both sides


def test_hand_written_gradients_equal_autograd_with_books_init():
    model = backprop_model(init_std=1.0)
    x, y = batch(10, seed=3)
    manual, auto = model.gradients(x, y), autograd_grads(model, x, y)
    for name in auto:
        torch.testing.assert_close(manual[name], auto[name], rtol=1e-10, atol=1e-13, msg=name)


def test_bundle_update_direction_lowers_the_loss():
    model = backprop_model(init_std=0.3)
    x, y = batch(10)
    before = model.loss(model.layers(x)[3], y).item()
    model.manual_step(x, y, eta=0.05)
    assert model.loss(model.layers(x)[3], y).item() < before


def test_manual_step_mean_equals_autograd_sgd_step():
    """weight_update = 'mean': the hand-written step is one torch SGD step on J."""
    x, y = batch(10, seed=1)
    manual = backprop_model(weight_update="mean", init_std=0.5)
    auto = backprop_model(weight_update="mean", init_std=0.5)
    manual.manual_step(x, y, eta=0.5)
    opt = torch.optim.SGD(auto.parameters(), lr=0.5)
    opt.zero_grad()
    auto.loss(auto.layers(x)[3], y).backward()
    opt.step()
    for (n, a), b in zip(manual.named_parameters(), auto.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=n)


def test_manual_step_sum_equals_sgd_with_batch_scaled_weight_rate():
    """The bundle's update ('sum') is SGD on J with rate eta * M for the weights and eta for the biases."""
    m, eta = 10, 0.5
    x, y = batch(m, seed=2)
    manual = backprop_model(init_std=0.5)
    auto = backprop_model(init_std=0.5)
    start = {n: p.detach().clone() for n, p in manual.named_parameters()}
    manual.manual_step(x, y, eta=eta)
    opt = torch.optim.SGD(
        [{"params": [auto.w_h1, auto.w_out], "lr": eta * m}, {"params": [auto.b_h1, auto.b_out], "lr": eta}]
    )
    opt.zero_grad()
    auto.loss(auto.layers(x)[3], y).backward()
    opt.step()
    for (n, a), b in zip(manual.named_parameters(), auto.parameters(), strict=True):
        assert not torch.equal(a, start[n])
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=n)


@pytest.mark.parametrize("weight_update", ["sum", "mean"])
def test_autograd_mode_through_the_engine_equals_manual_mode(weight_update):
    x, y = batch(10, seed=4)
    models = []
    for manual in (True, False):
        model = backprop_model(init_std=0.5, manual_backprop=manual, weight_update=weight_update)
        engine = Engine(model, optimizers=build_optimizer("sgd", model.parameters(), lr=0.5))
        for _ in range(3):
            logs = model.train_step((x, y), engine)
        assert set(logs) == {"loss", "accuracy"}
        models.append(model)
    for (n, a), b in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11, msg=n)


@pytest.mark.parametrize(
    "engine_kw",
    # bf16 forced: the refusal is tested on every CPU, native bf16 or not
    [{"l2": 1e-4}, {"grad_clip": 1.0}, {"precision": Precision("bf16", "bf16", "forced by the test")}],
)
def test_manual_mode_refuses_what_it_cannot_apply(engine_kw):
    model = backprop_model()
    engine = Engine(model, optimizers=build_optimizer("sgd", model.parameters(), lr=0.5), **engine_kw)
    with pytest.raises(ConfigError, match="manual_backprop"):
        model.train_step(batch(), engine)


def test_manual_mode_refuses_momentum():
    model = backprop_model()
    engine = Engine(model, optimizers=build_optimizer("momentum", model.parameters(), lr=0.5))
    with pytest.raises(ConfigError, match="optimizer 'sgd'"):
        model.train_step(batch(), engine)


def test_backprop_model_bad_arguments():
    with pytest.raises(ConfigError, match="weight_update"):
        create_model("mlp-backprop", weight_update="median")
    with pytest.raises(ConfigError, match="eval_every"):
        create_model("mlp-backprop", eval_every=-1)


def test_backprop_init_is_standard_normal_and_filters_are_images():
    torch.manual_seed(0)
    model = create_model("mlp-backprop")
    assert model.w_h1.shape == (784, 30) and model.w_out.shape == (30, 10)
    assert abs(model.w_h1.std().item() - 1.0) < 0.02 and abs(model.w_h1.mean().item()) < 0.02
    assert model.weight_images()["filters"].shape == (30, 28, 28)
    torch.testing.assert_close(model.weight_images()["filters"][3].flatten(), model.w_h1[:, 3].detach())


def test_accuracy_table_is_recorded_like_the_book(tmp_path):
    result = deeprecipes.run(
        "mlp-backprop",
        steps=120,
        overrides={"model.eval_every": 50, "train.eval_subset": 1000},
        out=tmp_path / "run",
        progress=False,
    )
    m = result.metrics
    # the book's loop printed after its step index 0, 50, 100: after steps 1, 51, 101
    assert {k for k in m if "_at_" in k} == {f"{s}_accuracy_at_{k}" for s in ("train", "test") for k in (0, 50, 100)}
    assert m["test_accuracy_at_100"] > m["test_accuracy_at_0"] + 0.2
    assert all(0.0 <= m[k] <= 1.0 for k in m if "_at_" in k)
    assert (tmp_path / "run" / "figures" / "filters.png").exists()
    assert (tmp_path / "run" / "figures" / "accuracy-table.png").exists()


# ----------------------------------------------------------------------------------------------------------------
# the general MLP


def test_mlp_shapes_and_layers():
    model = create_model("mlp", hidden_sizes=[512, 512], dropout=0.2)
    assert model(torch.rand(5, 28, 28)).shape == (5, 10)
    kinds = [type(m).__name__ for m in model.hidden]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout"]
    assert [m.p for m in model.hidden if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2]
    assert sum(p.numel() for p in model.parameters()) == 669_706  # Keras mnist_mlp's summary: 669,706
    assert model.weight_images()["filters"].shape == (64, 28, 28)


def test_mlp_softmax_regression_and_per_layer_dropout():
    model = create_model("mlp", hidden_sizes=[], num_classes=3, in_features=5)
    assert model(torch.rand(2, 5)).shape == (2, 3)
    assert model.weight_images() == {}  # 5 inputs are not a square image
    assert create_model("mlp", hidden_sizes=[]).weight_images()["filters"].shape == (10, 28, 28)  # the readout
    model = create_model("mlp", hidden_sizes=[8, 8], in_features=16, dropout=[0.1, 0.0], input_dropout=0.3)
    assert [m.p for m in model.hidden if isinstance(m, torch.nn.Dropout)] == [0.3, 0.1]


def test_mlp_initialisations():
    torch.manual_seed(0)
    model = create_model("mlp", hidden_sizes=[500], activation="tanh", output_init="zeros")
    w = model.hidden[0].weight
    bound = math.sqrt(6.0 / (784 + 500))  # deeplearning.net's tanh layer
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert not model.hidden[0].bias.any() and not model.readout.weight.any() and not model.readout.bias.any()
    model = create_model("mlp", hidden_sizes=[64], init="normal", init_std=0.01)
    assert abs(model.hidden[0].weight.std().item() - 0.01) < 0.001
    model = create_model("mlp", hidden_sizes=[64], init="torch")
    assert model.hidden[0].bias.any()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"activation": "swish"}, "activation"),
        ({"init": "xavier"}, "init"),
        ({"output_init": "ones"}, "output_init"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": [0.1]}, "one rate per hidden layer"),
        ({"input_dropout": -0.1}, "input_dropout"),
        ({"hidden_sizes": [0]}, "hidden_sizes"),
    ],
)
def test_mlp_bad_arguments(kw, match):
    with pytest.raises(ConfigError, match=match):
        create_model("mlp", **kw)


def test_mlp_check_data_names_the_argument():
    with pytest.raises(ConfigError, match="in_features"):
        create_model("mlp", in_features=100).check_data(torch.rand(3, 784))


def test_mlp_reports_error_in_percent():
    model = create_model("mlp", hidden_sizes=[16])
    x, y = torch.rand(50, 784), torch.randint(0, 10, (50,))
    out = Engine(model).evaluate(Batches(x, y, batch_size=20, shuffle=False))
    assert out["error"] == pytest.approx(100 * (1 - out["accuracy"]))


def test_mlp_overfits_one_batch():
    torch.manual_seed(0)
    model = create_model("mlp", hidden_sizes=[64], dropout=0.2)
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    engine = Engine(model, optimizers=build_optimizer("adam", model.parameters(), lr=0.003))
    engine.fit(Batches(x, y, batch_size=32), epochs=60)
    model.eval()
    assert torch.nn.functional.cross_entropy(model(x), y).item() < 0.05


def test_keras_rmsprop_is_torch_rmsprop_with_keras_defaults():
    """mlp-mnist-keras: Keras' RMSprop (rho 0.9, eps 1e-7 outside the root, accumulator from 0)."""
    cfg = load_recipe("mlp-mnist-keras")
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = build_optimizer(cfg.optimizer.name, [w], cfg.optimizer.lr, **cfg.optimizer.args)
    ref, acc = w.detach().clone(), torch.zeros(3, dtype=torch.float64)
    for k in range(3):
        g = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64) * (k + 1)
        w.grad = g.clone()
        opt.step()
        acc = 0.9 * acc + 0.1 * g**2
        ref = ref - 0.001 * g / (acc.sqrt() + 1e-7)
    torch.testing.assert_close(w.detach(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "recipe, hidden, activation",
    [
        ("mlp-mnist-cookbook", [30], "relu"),
        ("mlp-mnist-keras", [512, 512], "relu"),
        ("mlp-mnist-dlt", [500], "tanh"),
        ("mlp-mnist-fast", [512, 512], "relu"),
    ],
)
def test_recipes_keep_the_sources_networks(recipe, hidden, activation):
    cfg = load_recipe(recipe)
    model = create_model(cfg.model.name, **cfg.model.args)
    assert isinstance(model, MLPClassifier)
    assert model.hidden_sizes == hidden and cfg.model.args["activation"] == activation
