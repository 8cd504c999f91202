"""Self-organising map: the book's decay schedule and neighbourhood, online and batch updates checked by hand,
quantisation and topographic error, the U-matrix, the estimator check suite, and short end-to-end runs of
som-colors and som-mnist on their real data."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.estimators import SelfOrganizingMap
from deeprecipes.registry import create_dataset, create_model


def test_book_defaults_and_linear_decay():
    som = create_model("som", m=30, n=30, n_features=3, iterations=400, sigma=10.0)
    assert som.weights.shape == (900, 3)
    assert som.schedule(0) == (0.5, 10.0)
    eta, sigma = som.schedule(200)
    assert eta == pytest.approx(0.25) and sigma == pytest.approx(5.0)
    eta, sigma = som.schedule(399)
    assert eta == pytest.approx(0.5 / 400) and sigma == pytest.approx(10.0 / 400)
    assert som.schedule(1000) == som.schedule(399)  # past the end: the last iteration's values
    assert create_model("som", m=4, n=6).sigma == 3.0  # book: sigma = max(m, n) / 2


def test_online_step_is_the_books_update():
    torch.manual_seed(0)
    som = create_model("som", m=3, n=4, n_features=2, iterations=10, sigma=2.0, eta=0.5)
    w0 = som.weights.detach().clone()
    x = torch.tensor([[0.3, -0.2]])
    som.online_step(x, t=2)
    eta, sigma = 0.5 * 0.8, 2.0 * 0.8
    bmu = int((w0 - x).pow(2).sum(1).argmin())
    expected = w0.clone()
    for j in range(12):
        r, c = divmod(j, 4)
        br, bc = divmod(bmu, 4)
        h = math.exp(-((r - br) ** 2 + (c - bc) ** 2) / sigma**2)  # the book's code: no factor 2
        expected[j] += eta * h * (x[0] - w0[j])
    torch.testing.assert_close(som.weights.detach(), expected)


def test_batch_step_with_eta_1_is_kohonens_batch_map():
    torch.manual_seed(0)
    som = create_model("som", m=2, n=3, n_features=2, iterations=5, sigma=1.5, eta=1.0, mode="batch")
    w0 = som.weights.detach().clone()
    x = torch.randn(40, 2)
    som.batch_step(x, t=0)
    bmu = torch.cdist(x, w0).argmin(1)
    expected = torch.empty_like(w0)
    for j in range(6):
        h = torch.tensor([math.exp(-float(som.lattice_d2[b, j]) / 1.5**2) for b in bmu])
        expected[j] = (h[:, None] * x).sum(0) / h.sum()
    torch.testing.assert_close(som.weights.detach(), expected, atol=1e-5, rtol=1e-5)


def test_logged_schedule_is_on_the_device_of_the_loss():
    """The engine stacks a step's logged scalars into one tensor, so eta and sigma must be on the loss's device (the
    meta device stands in for a GPU; tests/test_cuda.py runs the real thing)."""
    som = create_model("som", m=2, n=3, n_features=2, iterations=5)
    som.online_step = lambda x, t: torch.zeros((), device="meta")
    logs = som.train_step((torch.zeros(4, 2),), types.SimpleNamespace(epoch=1))
    assert {v.device.type for v in logs.values()} == {"meta"}
    assert logs["eta"].dtype == logs["sigma"].dtype == torch.float32


def test_quantization_and_topographic_error():
    som = create_model("som", m=1, n=3, n_features=1)
    with torch.no_grad():
        som.weights.copy_(torch.tensor([[0.0], [10.0], [1.0]]))  # units 0 and 2 are close in data, far on the lattice
    errors = som.eval_step((torch.tensor([[0.4], [9.0], [5.6]]),))
    torch.testing.assert_close(errors["quantization_error"], torch.tensor([0.4, 1.0, 4.4]))
    torch.testing.assert_close(errors["mse"], torch.tensor([0.16, 1.0, 4.4**2]))
    # 0.4: best 0, second 2 -> not neighbours; 9.0: best 1, second 2 -> neighbours; 5.6: best 1, second 2
    assert errors["topographic_error"].tolist() == [1.0, 0.0, 0.0]
    assert som.predict(torch.tensor([[0.9]])).item() == 2
    assert som(torch.tensor([[0.9]])).tolist() == [[0.0, 2.0]]


def test_u_matrix_of_a_known_map():
    som = create_model("som", m=2, n=2, n_features=1)
    with torch.no_grad():
        som.weights.copy_(torch.tensor([[0.0], [1.0], [2.0], [4.0]]))
    # every unit of a 2 x 2 map neighbours the other three (8-neighbourhood)
    expected = torch.tensor([[(1 + 2 + 4) / 3, (1 + 1 + 3) / 3], [(2 + 1 + 2) / 3, (4 + 3 + 2) / 3]])
    torch.testing.assert_close(som.u_matrix(), expected)


def test_bad_settings_name_the_parameter():
    with pytest.raises(ConfigError, match="mode must be one of online, batch"):
        create_model("som", mode="minibatch")
    with pytest.raises(ConfigError, match="eta must be > 0, got 0.0"):
        create_model("som", eta=0.0)
    with pytest.raises(ConfigError, match="sigma must be > 0, got -1.0"):
        create_model("som", sigma=-1.0)
    with pytest.raises(ConfigError, match="n_features = 3, but the data rows have 784"):
        create_model("som").check_data(torch.rand(4, 784))
    with pytest.raises(ValueError, match="iterations == 0, must be >= 1"):
        SelfOrganizingMap(iterations=0).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="mode must be one of"):
        SelfOrganizingMap(mode="sgd").fit(np.zeros((5, 2)))


@pytest.mark.parametrize("mode", ["batch", "online"])
def test_estimator_learns_digits(mode):
    x = load_digits().data[:300] / 16.0
    som = SelfOrganizingMap(m=6, n=6, iterations=20, sigma=3.0, mode=mode, random_state=0).fit(x)
    start = SelfOrganizingMap(m=6, n=6, iterations=1, eta=1e-9, random_state=0).fit(x)  # prototypes as drawn
    assert som.quantization_error_ < 0.5 * start.quantization_error_
    assert som.weights_.shape == (6, 6, 64)
    z = som.transform(x)
    assert z.shape == (300, 2) and z.min() >= 0 and z.max() <= 5
    np.testing.assert_array_equal(z[:, 0] * 6 + z[:, 1], som.predict(x))
    assert som.score(x) == pytest.approx(-som.quantization_error_, rel=1e-4)
    assert len(som.history_) == 20 and som.history_[-1]["train_sigma"] == pytest.approx(3.0 / 20)


def test_same_random_state_same_map():
    x = np.random.default_rng(0).uniform(size=(50, 3))
    a = SelfOrganizingMap(m=4, n=4, iterations=5, random_state=1).fit(x)
    b = SelfOrganizingMap(m=4, n=4, iterations=5, random_state=1).fit(x)
    c = SelfOrganizingMap(m=4, n=4, iterations=5, random_state=2).fit(x)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert not np.allclose(a.weights_, c.weights_)


@parametrize_with_checks([SelfOrganizingMap(m=4, n=4, iterations=10), SelfOrganizingMap(m=2, n=3, mode="online")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_colors_dataset():
    data = create_dataset("colors")
    assert data.train.x.shape == (24, 3) and data.train.x.min() == 0 and data.train.x.max() == 1
    assert torch.equal(data.train.x, data.test.x)
    assert data.meta["classes"][0] == "black" and len(data.meta["classes"]) == 24


def test_som_colors_recipe_end_to_end(tmp_path):
    """The book's map on the colours with a shorter schedule: every colour ends close to a unit of its own, and the
    run leaves the U-matrix and the colour grid."""
    result = deeprecipes.run(
        "som-colors", overrides={"model.iterations": 60, "train.epochs": 60}, out=tmp_path, progress=False
    )
    m = result.metrics
    torch.manual_seed(0)
    untrained = create_model("som", m=30, n=30, n_features=3).eval_step((create_dataset("colors").test.x,))
    assert m["test_mse"] < 0.1 * float(untrained["mse"].detach().mean())
    assert m["test_quantization_error"] < 0.05
    assert {"figures/u-matrix.png", "figures/color-grid.png"} <= set(result.summary["figures"])


def test_som_mnist_recipe_end_to_end(tmp_path):
    result = deeprecipes.run(
        "som-mnist",
        overrides={
            "model.iterations": 8,
            "train.epochs": 8,
            "train.train_subset": 2000,
            "train.batch_size": 2000,
            "train.eval_subset": 2000,
            "model.m": 10,
            "model.n": 10,
            "model.sigma": 5.0,
        },
        out=tmp_path,
        progress=False,
    )
    m = result.metrics
    assert m["test_mse"] < 0.1  # N(0, 1) prototypes start near 1 per pixel
    assert 0 <= m["test_topographic_error"] <= 1
    assert m["test_accuracy"] > 0.5  # 8 iterations of a 10 x 10 map on the first 2,000 test digits (chance: 0.1)
    assert {"figures/u-matrix.png", "figures/prototypes.png"} <= set(result.summary["figures"])
