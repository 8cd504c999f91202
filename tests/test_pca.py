"""PCA: the model against scikit-learn's PCA, batch-size independence, the cookbook's keep_info rule, the estimator
check suite, bad input, and a short end-to-end run of the pca-mnist recipe on real MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SkPCA
from sklearn.utils.estimator_checks import parametrize_with_checks

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.estimators import PCA
from deeprecipes.models.pca import keep_info_components
from deeprecipes.registry import create_model
from deeprecipes.training import Engine


@pytest.fixture(scope="module")
def digits():
    return load_digits().data / 16.0  # (1797, 64)


def _fit(model, x, batch_size):
    Engine(model).fit(Batches(x, batch_size=batch_size, shuffle=False), epochs=1)
    return model


def _same_up_to_sign(a, b, atol):
    signs = np.sign((a * b).sum(1, keepdims=True))
    np.testing.assert_allclose(a * signs, b, atol=atol)


def test_model_matches_sklearn_pca(digits):
    x = torch.tensor(digits, dtype=torch.float32)
    model = _fit(create_model("pca", n_features=64, n_components=10), x, batch_size=len(x))
    sk = SkPCA(n_components=10, svd_solver="full").fit(digits)
    _same_up_to_sign(model.components.detach().double().numpy(), sk.components_, atol=1e-4)
    np.testing.assert_allclose(model.explained_variance[:10].numpy(), sk.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(model.explained_variance_ratio[:10].numpy(), sk.explained_variance_ratio_, rtol=1e-5)
    np.testing.assert_allclose(model.singular_values[:10].numpy(), sk.singular_values_, rtol=1e-5)
    np.testing.assert_allclose(model.mean.detach().numpy(), sk.mean_, atol=1e-6)


def test_estimator_matches_sklearn_pca(digits):
    ours = PCA(n_components=5).fit(digits)
    sk = SkPCA(n_components=5, svd_solver="full").fit(digits)
    _same_up_to_sign(ours.components_, sk.components_, atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_ratio_, sk.explained_variance_ratio_, rtol=1e-5)
    # same signs -> same coordinates and reconstructions
    signs = np.sign((ours.components_ * sk.components_).sum(1))
    np.testing.assert_allclose(ours.transform(digits) * signs, sk.transform(digits), atol=1e-4)
    np.testing.assert_allclose(
        ours.inverse_transform(ours.transform(digits)), sk.inverse_transform(sk.transform(digits)), atol=1e-4
    )
    rec = ours.inverse_transform(ours.transform(digits))
    np.testing.assert_allclose(ours.score_samples(digits), -((rec - digits) ** 2).mean(1), rtol=1e-6, atol=1e-12)
    assert ours.score(digits) == pytest.approx(ours.score_samples(digits).mean())
    assert list(ours.get_feature_names_out()) == [f"pca{i}" for i in range(5)]


def test_any_batch_size_gives_the_same_axes(digits):
    x = torch.tensor(digits, dtype=torch.float32)
    whole = _fit(create_model("pca", n_features=64, n_components=4), x, batch_size=len(x))
    pieces = _fit(create_model("pca", n_features=64, n_components=4), x, batch_size=100)
    torch.testing.assert_close(pieces.components, whole.components, atol=1e-5, rtol=0)
    torch.testing.assert_close(pieces.singular_values, whole.singular_values)
    # a second epoch starts the sums afresh instead of counting every row twice
    again = create_model("pca", n_features=64, n_components=4)
    Engine(again).fit(Batches(x, batch_size=500, shuffle=True), epochs=2)
    assert float(again.n_samples) == len(x)
    torch.testing.assert_close(again.components, whole.components, atol=1e-5, rtol=0)


def test_components_are_orthonormal_and_signed_like_sklearn(digits):
    model = _fit(create_model("pca", n_features=64, n_components=6), torch.tensor(digits, dtype=torch.float32), 2000)
    c = model.components.detach()
    torch.testing.assert_close(c @ c.T, torch.eye(6), atol=1e-5, rtol=0)
    assert bool((c[torch.arange(6), c.abs().argmax(1)] > 0).all())


def test_uncentred_is_the_svd_of_the_raw_data(digits):
    x = torch.tensor(digits, dtype=torch.float64)
    model = _fit(create_model("pca", n_features=64, n_components=3, center=False), x.float(), len(x))
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    torch.testing.assert_close(model.singular_values[:20], s[:20], rtol=1e-5, atol=1e-6)
    _same_up_to_sign(model.components.detach().double().numpy(), vt[:3].numpy(), atol=1e-4)
    assert torch.count_nonzero(model.mean) == 0


def test_keep_info_rule_counts_singular_values_not_their_squares():
    s = torch.tensor([5.0, 3.0, 1.0, 1.0])  # shares 0.5, 0.8, 0.9, 1.0
    assert keep_info_components(s, 0.5) == 1
    assert keep_info_components(s, 0.51) == 2
    assert keep_info_components(s, 0.8) == 2
    assert keep_info_components(s, 0.85) == 3
    assert keep_info_components(s, 1.0) == 4


def test_untrained_model_reconstructs_zero_and_eval_is_per_sample():
    model = create_model("pca", n_features=16, n_components=2)
    x = torch.rand(8, 16)
    assert torch.equal(model(x), torch.zeros(8, 16))
    torch.testing.assert_close(model.eval_step((x,))["mse"], x.pow(2).mean(1))


def test_bad_settings_name_the_parameter():
    with pytest.raises(ConfigError, match="n_components must be between 1 and n_features = 4, got 5"):
        create_model("pca", n_features=4, n_components=5)
    with pytest.raises(ConfigError, match="keep_info"):
        create_model("pca", keep_info=2.0)
    with pytest.raises(ConfigError, match="n_features = 784, but the data rows have 64"):
        create_model("pca").check_data(torch.rand(10, 64))
    with pytest.raises(ValueError, match=r"n_components=9 must be <= min\(n_samples, n_features\) = 8"):
        PCA(n_components=9).fit(np.random.default_rng(0).normal(size=(20, 8)))
    with pytest.raises(ValueError, match="n_components == 0, must be >= 1"):
        PCA(n_components=0).fit(np.zeros((5, 3)))


@parametrize_with_checks([PCA(), PCA(n_components=1, center=False)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_pca_mnist_recipe_end_to_end(tmp_path):
    """The cookbook's rule keeps 3 axes of the (uncentred) MNIST training images; the 3-axis reconstruction keeps
    about half of the test set's energy, and the run leaves its pictures."""
    result = deeprecipes.run(
        "pca-mnist", overrides={"train.train_subset": 10000, "train.eval_subset": 2000}, out=tmp_path, progress=False
    )
    m = result.metrics
    assert m["keep_info_components"] == 3
    test = deeprecipes.create_dataset("mnist", split="tf").test.x[:2000]
    untrained = float(test.pow(2).mean())  # an unfitted PCA reconstructs 0
    assert m["test_mse"] < 0.7 * untrained
    assert 0.4 < m["explained_variance_ratio"] < 0.7
    figures = set(result.summary["figures"])
    assert {"figures/pca-2d.png", "figures/explained-variance.png", "figures/components.png"} <= figures
    assert result.summary["target"]["met"] is True
