"""Ratings data (MovieLens formats, checks, generated structure, held-out split) and the RBM recommender (masked CD,
top-N unseen items, held-out metrics against baselines), with a short end-to-end run of the rbm-recommender recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.data.ratings import (
    Ratings,
    check_matrix,
    generate_ratings,
    ratings_matrix,
    read_ratings,
    split_ratings,
)
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.models.recommender import precision_at_n
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training import Engine

# ----------------------------------------------------------------------------------------------------------------
# files


def test_read_movielens_1m_format(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    r = read_ratings(path)
    assert r.users.tolist() == [1, 1, 2] and r.items.tolist() == [1193, 661, 1193]
    matrix, users, items = ratings_matrix(r)
    assert users.tolist() == [1, 2] and items.tolist() == [661, 1193]
    assert matrix.tolist() == [[3, 5], [0, 4]]


def test_read_movielens_100k_format(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    r = read_ratings(path)
    assert r.users.tolist() == [196, 186] and r.ratings.tolist() == [3.0, 3.0]


def test_movielens_dataset_from_a_file(tmp_path):
    (tmp_path / "movielens").mkdir()
    rng = np.random.default_rng(0)
    lines = [
        f"{u}::{i}::{int(rng.integers(1, 6))}::0" for u in range(1, 21) for i in rng.choice(50, 10, replace=False) + 1
    ]
    (tmp_path / "movielens" / "ratings.dat").write_text("\n".join(lines))
    data = create_dataset("movielens", data_dir=str(tmp_path), max_users=15)
    assert data.train.x.shape[0] == 15 and data.meta["scale"] == [1.0, 5.0]
    assert data.train.x.shape[1] == len(data.meta["item_ids"])


def test_missing_movielens_says_where(tmp_path):
    with pytest.raises(DataError, match=r"grouplens.*movielens/"):
        create_dataset("movielens", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "text, match",
    [
        ("1::10::6::0\n", r"line 1: rating 6 of user 1, item 10 is outside the declared scale 1\.\.5"),
        ("1::10::0::0\n", "rating 0 of user 1, item 10 is outside"),
        ("1::10::4::0\n2::10::3::0\n1::10::5::0\n", r"line 3: user 1 rates item 10 a second time \(first at line 1\)"),
        ("1::abc::4::0\n", "line 1: user and item must be integers"),
        ("1::2\n", "line 1: expected user, item, rating"),
        ("\n", "holds no ratings"),
    ],
)
def test_bad_ratings_name_the_fault(tmp_path, text, match):
    path = tmp_path / "ratings.dat"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        ratings_matrix(read_ratings(path))


def test_empty_user_and_bad_scale():
    m = np.array([[5, 0, 3], [0, 0, 0]], np.float32)
    with pytest.raises(DataError, match="user 1 has no ratings"):
        check_matrix(m)
    with pytest.raises(DataError, match="rating 7 of user 0, item 1 is outside"):
        check_matrix(np.array([[5, 7]], np.float32))
    with pytest.raises(ConfigError, match="rating scale"):
        ratings_matrix(Ratings(np.array([1]), np.array([1]), np.array([3.0])), scale=(5, 1))


# ----------------------------------------------------------------------------------------------------------------
# generated ratings and the split


def test_generated_ratings_have_the_group_structure():
    r = generate_ratings(n_users=300, n_items=100, n_groups=2, n_genres=4, per_user=40, noise=0.3, seed=1)
    m = np.zeros((300, 100))
    m[r.users, r.items] = r.ratings
    assert set(np.unique(r.ratings)) <= {1, 2, 3, 4, 5}
    # users' rating profiles (centred item means) agree within a group more than across: recover the 2 groups
    rated = m > 0
    centred = np.where(rated, m - 3.0, 0.0)
    sim = centred @ centred.T / np.maximum(rated.astype(float) @ rated.T, 1)
    top = np.argsort(-sim[0])[1:40]
    assert (sim[0, top] > 0).mean() > 0.9
    # popularity skew: the most rated item is rated far more often than the median one
    counts = rated.sum(0)
    assert counts.max() > 2 * np.median(counts)


def test_split_is_disjoint_covers_and_keeps_a_training_rating():
    rng = np.random.default_rng(0)
    rated = rng.random((50, 40)) < 0.2
    rated[:, 0] = True
    train, val, test = split_ratings(rated, 0.1, 0.2, seed=0)
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    assert np.array_equal(train | val | test, rated)
    assert train.any(1).all()
    many = rated.sum(1) >= 3
    assert test[many].any(1).all() and val[many].any(1).all()


def test_synthetic_dataset_layout():
    data = create_dataset("ratings-synthetic", n_users=100, n_items=60, per_user=20)
    x, y = data.test.x, data.test.y
    assert x.shape == y.shape == (100, 60)
    assert torch.equal(data.train.x, x) and torch.equal(data.val.x, x)
    assert not ((x > 0) & (y > 0)).any()  # held-out ratings are not in the input
    assert float(x.max()) <= 1.0 and float(x[x > 0].min()) >= 0.2  # rating / 5


# ----------------------------------------------------------------------------------------------------------------
# the model


def _batch(n_users=16, n_items=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n_users, n_items, generator=g) < 0.3
    mask[:, 0] = True
    ratings = torch.randint(1, 6, (n_users, n_items), generator=g).float() / 5
    return ratings * mask


def test_unrated_items_get_no_visible_gradient():
    torch.manual_seed(0)
    model = create_model("rbm-recommender", n_items=30, n_hidden=5)
    x = _batch()
    x[:, 7] = 0  # nobody rated item 7
    loss, _ = model.compute_loss((x, x))
    loss.backward()
    assert model.rbm.v_bias.grad[7] == 0 and model.rbm.W.grad[7].abs().sum() == 0
    assert model.rbm.v_bias.grad[0] != 0


def test_recommend_skips_seen_items_and_ranks_by_score():
    torch.manual_seed(0)
    model = create_model("rbm-recommender", n_items=30, n_hidden=5)
    x = _batch()
    items, scores = model.recommend(x, n=5)
    assert items.shape == scores.shape == (16, 5)
    assert not (x.gather(1, items) > 0).any()
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_precision_at_n():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.3, 0.4]])
    seen = torch.tensor([[True, False, False, False], [False, False, False, False]])
    liked = torch.tensor([[True, True, False, False], [False, False, False, False]])
    p = precision_at_n(scores, seen, liked, n=2)
    assert p[0] == 0.5 and torch.isnan(p[1])  # items 1 and 3 recommended (0 is seen), 1 liked; user 2 has none


def test_training_lowers_held_out_error_below_the_untrained_model():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = create_dataset("ratings-synthetic", n_users=300, n_items=80, per_user=25)
    model = create_model("rbm-recommender", n_items=80, n_hidden=10, negative="mean")
    model.prepare_data(data)
    model.check_data(data.train.x)
    before = model.held_out_metrics(data.test.x, data.test.y)
    from deeprecipes.data import Batches

    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9))
    engine.fit(Batches(*data.train.tensors(), batch_size=50, shuffle=True, seed=0), epochs=40)
    after = model.held_out_metrics(data.test.x, data.test.y)
    assert after["rmse"] < 0.8 * before["rmse"]
    assert after["rmse"] < after["item_mean_rmse"]
    assert after["held_out_ratings"] == float((data.test.y > 0).sum())


def test_item_baselines_come_from_training_ratings():
    data = create_dataset("ratings-synthetic", n_users=50, n_items=30, per_user=10)
    model = create_model("rbm-recommender", n_items=30)
    model.prepare_data(data)
    x = data.train.x * 5
    j = int((x > 0).sum(0).argmax())
    assert model.item_count[j] == (x[:, j] > 0).sum()
    assert torch.isclose(model.item_mean[j], x[:, j][x[:, j] > 0].mean())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": [5, 1]}, "model.scale"),
        ({"liked": 7}, "model.liked"),
        ({"top_n": 0}, "model.top_n"),
        ({"negative": "mode"}, "model.negative"),
        ({"rbm_args": {"visible": "gaussian"}}, "Bernoulli"),
    ],
)
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("rbm-recommender", n_items=10, **kwargs)


def test_check_data_names_n_items_and_empty_users():
    model = create_model("rbm-recommender", n_items=10)
    with pytest.raises(ConfigError, match="model.n_items is 10"):
        model.check_data(torch.rand(4, 12))
    x = torch.rand(3, 10)
    x[1] = 0
    with pytest.raises(ConfigError, match="user 1 has no training ratings"):
        model.check_data(x)


# ----------------------------------------------------------------------------------------------------------------
# end to end


def test_recipe_end_to_end(tmp_path):
    torch.set_num_threads(1)
    result = deeprecipes.run(
        "rbm-recommender", overrides={"train.epochs": 40}, out=tmp_path / "run", progress=False, threads=1
    )
    m = result.metrics
    for key in ("test_rmse", "test_item_mean_rmse", "test_precision_at_10", "test_popularity_precision_at_10"):
        assert key in m
    assert m["test_rmse"] < m["test_item_mean_rmse"]
    assert 0.0 <= m["test_precision_at_10"] <= 1.0


def test_movielens_recipe_without_the_file_says_where(tmp_path):
    with pytest.raises(DataError, match="ratings.dat"):
        deeprecipes.run("rbm-recommender-movielens", out=tmp_path / "run", data_dir=tmp_path, progress=False)
