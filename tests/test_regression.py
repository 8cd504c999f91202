"""Cookbook 3.5's MLP regression on diabetes: feature choice by correlation and min-max scaling fitted on the
training part only, the model, metrics in the target's own units, and the predicted-vs-actual picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model

SPLIT = {"test_size": 0.3, "seed": 0}


def test_features_chosen_by_correlation_on_the_training_part():
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    data = create_dataset("diabetes", **SPLIT, standardize=False, min_abs_corr=0.3, max_features=3)
    assert data.meta["feature_names"] == ["bmi", "s5", "bp"]
    bunch = load_diabetes()
    x_tr, _, y_tr, _ = train_test_split(bunch.data, bunch.target, test_size=0.3, random_state=0)
    for j, name in enumerate(bunch.feature_names):
        r = np.corrcoef(x_tr[:, j], y_tr)[0, 1]  # the training part's, not all 442 rows'
        assert data.meta["correlations"][name] == pytest.approx(r, abs=1e-6)
    two = create_dataset("diabetes", **SPLIT, min_abs_corr=0.5)  # the book's threshold keeps two here
    assert two.meta["feature_names"] == ["bmi", "s5"] and two.train.x.shape[1] == 2
    with pytest.raises(ConfigError, match="no feature has"):
        create_dataset("diabetes", **SPLIT, min_abs_corr=0.9)


def test_minmax_and_target_scaling_fitted_on_train_only():
    data = create_dataset("diabetes", **SPLIT, standardize=False, minmax=True, scale_target=True)
    x, y = data.train.x.double(), data.train.y.double()
    np.testing.assert_allclose(x.min(0).values.numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.max(0).values.numpy(), 1.0, atol=1e-6)
    assert float(y.min()) == 0.0 and float(y.max()) == pytest.approx(1.0)
    raw = create_dataset("diabetes", **SPLIT, standardize=False)
    lo, hi = data.meta["target_scale"]["min"], data.meta["target_scale"]["max"]
    assert lo == float(raw.train.y.min()) and hi == float(raw.train.y.max())
    np.testing.assert_allclose(data.test.y.double() * (hi - lo) + lo, raw.test.y.double(), rtol=1e-5)
    with pytest.raises(ConfigError, match="not both"):
        create_dataset("diabetes", minmax=True)  # standardize defaults to true
    from deeprecipes.data.tabular import _bundled

    with pytest.raises(ConfigError, match="regression"):
        _bundled("wine", "load_wine", "classification", 0.25, 0, False, scale_target=True)


def test_mlp_regressor_is_the_books_network():
    torch.manual_seed(0)
    m = create_model("mlp-regressor")
    linears = [layer for layer in m.net if isinstance(layer, torch.nn.Linear)]
    assert [tuple(layer.weight.shape) for layer in linears] == [(20, 3), (1, 20)]
    assert sum(p.numel() for p in m.parameters()) == 101  # 80 + 21, as the bundle's Keras summary
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in linears)
    bound = (6 / (3 + 20)) ** 0.5  # Glorot uniform
    assert float(linears[0].weight.detach().abs().max()) <= bound
    out = m(torch.randn(5, 3) * 10)
    assert out.shape == (5, 1) and bool(((out > 0) & (out < 1)).all())
    with pytest.raises(ConfigError, match="activation"):
        create_model("mlp-regressor", activation="swish")


def test_mlp_regression_recipe_short_run(tmp_path):
    cfg = load_recipe("mlp-regression")
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 0.01 and cfg.train.epochs == 1000
    result = deeprecipes.run("mlp-regression", epochs=60, out=tmp_path, progress=False)
    m = result.metrics
    scale = 346.0 - 25.0  # the training part's target range on this split
    assert m["test_rmse_original"] == pytest.approx(m["test_rmse"] * scale, rel=1e-4)
    assert 0.0 < m["test_r2"] < 1.0 and m["test_mse"] < 0.06
    assert "figures/predicted-vs-actual.png" in result.summary["figures"]
    assert (tmp_path / "figures" / "predicted-vs-actual.png").stat().st_size > 1000


def test_books_separately_scaled_test_set_is_reproduced_on_request():
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    args = {**SPLIT, "standardize": False, "minmax": True, "scale_target": True, "features": ["bmi", "s5", "bp"]}
    fixed = create_dataset("diabetes", **args)
    leaky = create_dataset("diabetes", **args, scale_test_separately=True)
    assert torch.equal(fixed.train.x, leaky.train.x) and torch.equal(fixed.train.y, leaky.train.y)
    bunch = load_diabetes()
    cols = [bunch.feature_names.index(f) for f in ("bmi", "s5", "bp")]
    x_tr, x_te, y_tr, y_te = train_test_split(bunch.data[:, cols], bunch.target, test_size=0.3, random_state=0)
    # the book: MinMaxScaler().fit_transform on the test part itself
    assert np.allclose(leaky.test.x.numpy(), MinMaxScaler().fit_transform(x_te), atol=1e-6)
    assert np.allclose(leaky.test.y.numpy(), MinMaxScaler().fit_transform(y_te[:, None])[:, 0], atol=1e-6)
    assert np.allclose(fixed.test.x.numpy(), MinMaxScaler().fit(x_tr).transform(x_te), atol=1e-6)
    assert leaky.meta["target_scale_test"] == {"min": float(y_te.min()), "max": float(y_te.max())}
    assert "target_scale_test" not in fixed.meta
    with pytest.raises(ConfigError, match="scale_test_separately .* needs minmax"):
        create_dataset("diabetes", **SPLIT, scale_test_separately=True)
    assert load_recipe("mlp-regression-cookbook").data.args["scale_test_separately"] is True
