"""k-means: k-means++ seeding, Lloyd steps, the adjusted Rand index and majority labels against scikit-learn, the
estimator check suite, the k > n message, and short end-to-end runs of kmeans-iris and kmeans-mnist on real data."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import load_iris, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.estimators import KMeans
from deeprecipes.models.kmeans import adjusted_rand_index, kmeans_plus_plus, majority_labels
from deeprecipes.registry import create_model
from deeprecipes.training import Engine


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=600, centers=5, n_features=4, cluster_std=0.6, random_state=3)
    return x, y


def test_kmeans_plus_plus_picks_distinct_rows_and_is_seeded():
    x = torch.randn(300, 3)
    torch.manual_seed(1)
    a = kmeans_plus_plus(x, 6)
    torch.manual_seed(1)
    b = kmeans_plus_plus(x, 6)
    torch.manual_seed(2)
    c = kmeans_plus_plus(x, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    rows = {tuple(r.tolist()) for r in a}
    assert len(rows) == 6 and rows <= {tuple(r.tolist()) for r in x}


def test_kmeans_plus_plus_spreads_over_separated_groups():
    # four tight groups far apart: k-means++ puts one seed in each
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    x = (centres[:, None] + 0.1 * torch.randn(4, 50, 2)).reshape(-1, 2)
    torch.manual_seed(0)
    seeds = kmeans_plus_plus(x, 4)
    assert len(torch.unique(torch.cdist(seeds, centres).argmin(1))) == 4


def test_lloyd_step_moves_centroids_to_member_means():
    model = create_model("kmeans", n_clusters=2, n_features=1)
    with torch.no_grad():
        model.centroids.copy_(torch.tensor([[0.0], [10.0]]))
    x = torch.tensor([[1.0], [2.0], [9.0], [13.0]])
    inertia, shift = model.lloyd_step(x)
    torch.testing.assert_close(model.centroids.detach(), torch.tensor([[1.5], [11.0]]))
    assert inertia.item() == pytest.approx((1 + 4 + 1 + 9) / 4)
    assert shift.item() == pytest.approx(1.5**2 + 1.0)
    # a centroid with no members stays put
    with torch.no_grad():
        model.centroids.copy_(torch.tensor([[0.0], [100.0]]))
    model.lloyd_step(torch.tensor([[1.0], [3.0]]))
    torch.testing.assert_close(model.centroids.detach(), torch.tensor([[2.0], [100.0]]))


def test_model_on_the_engine_matches_sklearn_on_blobs(blobs):
    x, y = blobs
    torch.manual_seed(0)
    model = create_model("kmeans", n_clusters=5, n_features=4, tol=1e-4)
    engine = Engine(model)
    engine.fit(Batches(torch.tensor(x, dtype=torch.float32), batch_size=len(x), shuffle=False), epochs=100)
    assert engine.should_stop and "converged" in engine.stop_reason
    ours = model.predict(torch.tensor(x, dtype=torch.float32)).numpy()
    sk = SkKMeans(n_clusters=5, n_init=1, random_state=0).fit(x)
    assert adjusted_rand_score(sk.labels_, ours) == pytest.approx(1.0)
    with torch.no_grad():
        inertia = float(model._distance(torch.tensor(x, dtype=torch.float32))[1].double().sum())
    assert inertia == pytest.approx(sk.inertia_, rel=1e-3)


def test_estimator_matches_sklearn_on_iris():
    x = load_iris().data
    ours = KMeans(n_clusters=3, random_state=0).fit(x)
    sk = SkKMeans(n_clusters=3, n_init=10, random_state=0).fit(x)
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=0.01)
    assert adjusted_rand_score(sk.labels_, ours.labels_) > 0.95
    assert ours.cluster_centers_.shape == (3, 4) and ours.n_iter_ >= 2
    np.testing.assert_array_equal(ours.predict(x), ours.labels_)
    np.testing.assert_array_equal(ours.fit_predict(x), ours.labels_)
    d = ours.transform(x)
    assert d.shape == (150, 3)
    np.testing.assert_array_equal(d.argmin(1), ours.labels_)
    np.testing.assert_allclose(-(d.min(1) ** 2), ours.score_samples(x), rtol=1e-6)
    assert ours.score(x) == pytest.approx(-ours.inertia_, rel=1e-9)


def test_cosine_centroids_on_the_unit_sphere(blobs):
    x = blobs[0]
    est = KMeans(n_clusters=4, distance="cosine", random_state=0).fit(x)
    np.testing.assert_allclose(np.linalg.norm(est.cluster_centers_, axis=1), 1.0, rtol=1e-5)
    d = est.transform(x)  # 1 - cos
    assert d.min() >= -1e-6 and d.max() <= 2 + 1e-6
    # the scale of a row does not change its cluster
    np.testing.assert_array_equal(est.predict(x * 7.0), est.predict(x))


def test_same_random_state_same_clusters(blobs):
    x = blobs[0]
    state = torch.get_rng_state()
    a = KMeans(n_clusters=5, random_state=4).fit(x)
    b = KMeans(n_clusters=5, random_state=4).fit(x)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_adjusted_rand_index_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 4, 200), rng.integers(0, 6, 200)
        b[:100] = a[:100]
        assert adjusted_rand_index(torch.tensor(a), torch.tensor(b)) == pytest.approx(adjusted_rand_score(a, b))
    same = torch.tensor([0, 0, 1, 1, 2])
    assert adjusted_rand_index(same, same + 5) == pytest.approx(1.0)


def test_majority_labels():
    assign = torch.tensor([0, 0, 0, 1, 1, 2])
    y = torch.tensor([3, 3, 1, 2, 2, 0])
    assert majority_labels(assign, y, 4).tolist() == [3, 2, 0, -1]


def test_more_clusters_than_samples_is_one_clear_message():
    msg = r"n_clusters = 5 is larger than the number of samples to cluster \(3 samples\)"
    with pytest.raises(ValueError, match=msg):
        KMeans(n_clusters=5).fit(np.zeros((3, 2)))
    with pytest.raises(ConfigError, match=msg):
        create_model("kmeans", n_clusters=5, n_features=2).seed(torch.zeros(3, 2))
    with pytest.raises(ConfigError, match=r"model 'kmeans' n_clusters = 200 is larger .*\(112 samples\)"):
        deeprecipes.run("kmeans-iris", overrides={"model.n_clusters": 200}, out=None, progress=False)


@pytest.mark.parametrize(
    "estimator, match",
    [
        (KMeans(n_clusters=0), "n_clusters == 0, must be >= 1"),
        (KMeans(init="kmeans"), "init must be one of"),
        (KMeans(distance="manhattan"), "distance must be one of"),
        (KMeans(max_iter=0), "max_iter == 0, must be >= 1"),
        (KMeans(tol=-1.0), "tol == -1.0, must be >= 0"),
    ],
    ids=str,
)
def test_bad_parameters_name_themselves(estimator, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit(np.random.default_rng(0).normal(size=(20, 3)))


@parametrize_with_checks([KMeans(n_clusters=3, max_iter=50), KMeans(n_clusters=2, distance="cosine", init="random")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_kmeans_iris_recipe_end_to_end(tmp_path):
    result = deeprecipes.run("kmeans-iris", out=tmp_path, progress=False)
    m = result.metrics
    test = deeprecipes.create_dataset("iris", standardize=False).test.x
    untrained = float(test.norm(dim=1).mean())  # zero centroids: the distance is |x|
    assert m["test_distance"] < 0.2 * untrained
    assert m["test_ari"] > 0.4 and m["test_accuracy"] > 0.6  # the two sepal features only, as the book
    assert result.summary["stop_reason"].startswith("converged")
    assert {"figures/clusters.png", "figures/elbow.png"} <= set(result.summary["figures"])


def test_kmeans_mnist_recipe_end_to_end(tmp_path):
    """A few Lloyd iterations on 10,000 training images already give most of the published 71% majority-label
    accuracy; the cosine distance falls from 1 (unseeded) to near the published 0.22."""
    result = deeprecipes.run(
        "kmeans-mnist",
        overrides={"train.train_subset": 10000, "train.epochs": 5, "train.eval_subset": 2000},
        out=tmp_path,
        progress=False,
    )
    m = result.metrics
    assert m["test_distance"] < 0.3
    assert m["test_accuracy"] > 0.6 and m["test_ari"] > 0.2
    assert "figures/centroids.png" in result.summary["figures"]


@pytest.mark.parametrize(
    "key, value", [("optimizer.lr", 0.5), ("optimizer.name", "adam"), ("schedule.name", "cosine"), ("train.l2", 0.1)]
)
def test_optimizer_settings_for_a_model_without_an_optimizer_are_refused(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} = .*'kmeans' learns without gradient steps"):
        deeprecipes.run("kmeans-iris", out=tmp_path / "run", overrides={key: value}, progress=False)
    assert not (tmp_path / "run").exists()
