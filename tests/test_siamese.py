"""Siamese network: the contrastive loss on hand-made pairs, the pair sampler, training that separates two digits,
the end-of-run measures and figures, and an exact resume (the sampler draws from the checkpointed global RNG)."""

import math

import pytest
import torch

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.data.base import ArrayData, DataSplits
from deeprecipes.data.pairs import draw_partners, fixed_pairs, sample_pairs
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.models.siamese import (
    SiameseNet,
    best_threshold,
    contrastive_loss,
    knn_predict,
    pair_distance,
)
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training import Engine
from deeprecipes.training.checkpoint import load_checkpoint

# ----------------------------------------------------------------------------------------------------------------
# the loss


def test_contrastive_loss_on_hand_made_pairs():
    z1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    z2 = torch.tensor([[3.0, 4.0], [3.0, 4.0], [1.0, 0.0], [1.0, 0.0], [1.0, 7.0]])
    same = torch.tensor([True, False, True, False, False])
    d = pair_distance(z1, z2)
    assert d.tolist() == pytest.approx([5.0, 5.0, 1.0, 1.0, 6.0], abs=1e-6)
    # genuine: d^2; impostor: max(0, 5 - d)^2 -- zero once it is a margin away
    assert contrastive_loss(d, same, 5.0).tolist() == pytest.approx([25.0, 0.0, 1.0, 16.0, 0.0], abs=1e-5)
    assert contrastive_loss(d, same, 5.0, "step").tolist() == pytest.approx([5.0, 0.0, 1.0, 4.0, 0.0], abs=1e-5)
    assert contrastive_loss(d, same, 2.0).tolist() == pytest.approx([25.0, 0.0, 1.0, 1.0, 0.0], abs=1e-5)
    with pytest.raises(ValueError, match="spring"):
        contrastive_loss(d, same, 5.0, "hinge")


def test_loss_is_hadsells_with_flipped_labels_and_no_half():
    d = torch.rand(50) * 8
    same = torch.rand(50) < 0.5
    big_y = (~same).float()  # Hadsell et al.: Y = 0 for a genuine pair
    hadsell = (1 - big_y) * 0.5 * d**2 + big_y * 0.5 * (5.0 - d).clamp_min(0) ** 2
    assert torch.allclose(contrastive_loss(d, same, 5.0), 2 * hadsell)


def test_gradients_pull_genuine_pairs_together_and_push_impostors_apart():
    z2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    for same, direction in ((True, -1), (False, 1)):
        z1 = torch.zeros(2, 2, requires_grad=True)
        contrastive_loss(pair_distance(z1, z2), torch.tensor([same, same])).sum().backward()
        # gradient descent moves z1 along -grad: towards z2 (+x) for genuine, away for impostor
        assert (-z1.grad[:, 0] * -direction > 0).all(), same


def test_distance_uses_both_branches_with_the_same_weights():
    torch.manual_seed(0)
    model = SiameseNet(hidden_sizes=(16,))
    x1, x2 = torch.rand(4, 784), torch.rand(4, 784)
    assert torch.allclose(model.distance(x1, x2), model.distance(x2, x1))
    assert torch.allclose(model.distance(x1, x2), pair_distance(model.encode(x1), model.encode(x2)))
    assert model.encode(x1.reshape(4, 28, 28)).shape == (4, 2)


# ----------------------------------------------------------------------------------------------------------------
# the pair sampler


def test_sampler_is_balanced_and_its_labels_are_right():
    torch.manual_seed(1)
    for n in (128, 129, 64):
        y = torch.randint(0, 10, (n,))
        partner, same = sample_pairs(y)
        assert int(same.sum()) == round(n * 0.5)
        assert torch.equal(same, y[partner] == y)
        assert not (partner == torch.arange(n)).any()
    partner, same = sample_pairs(y, 0.25)
    assert int(same.sum()) == 16


def test_sampler_draws_every_candidate_partner():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    genuine = torch.ones(6, dtype=torch.bool)
    seen = [set() for _ in range(6)]
    impostors = [set() for _ in range(6)]
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        p, s = draw_partners(y, genuine, g)
        for i in range(6):
            seen[i].add(int(p[i]))
        p, s = draw_partners(y, ~genuine, g)
        assert not s.any()
        for i in range(6):
            impostors[i].add(int(p[i]))
    assert seen[0] == {1, 2} and seen[3] == {4} and seen[4] == {3}
    assert seen[5] <= {0, 1, 2, 3, 4}  # alone in its class: gets an impostor
    assert impostors[0] == {3, 4, 5} and impostors[5] == {0, 1, 2, 3, 4}


def test_sampler_edge_cases():
    p, s = draw_partners(torch.tensor([3, 3, 3]), torch.zeros(3, dtype=torch.bool))  # one class: all genuine
    assert s.all() and not (p == torch.arange(3)).any()
    p, s = draw_partners(torch.tensor([7]), torch.ones(1, dtype=torch.bool))
    assert p.tolist() == [0] and s.tolist() == [True]
    p, s = sample_pairs(torch.tensor([0, 1, 2, 3]), pairing="random")
    assert not s.any() and not (p == torch.arange(4)).any()
    with pytest.raises(ValueError, match="pairing"):
        sample_pairs(torch.tensor([0, 1]), pairing="triplet")


def test_sampler_follows_the_global_seed_and_fixed_pairs_do_not():
    y = torch.randint(0, 10, (100,))
    torch.manual_seed(5)
    a = sample_pairs(y)
    torch.manual_seed(5)
    b = sample_pairs(y)
    assert torch.equal(a[0], b[0])
    torch.manual_seed(1)
    f1 = fixed_pairs(y, 60, seed=3)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    f2 = fixed_pairs(y, 60, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left alone
    assert all(torch.equal(u, v) for u, v in zip(f1, f2))
    anchor, partner, same = f1
    assert len(set(anchor.tolist())) == 60 and int(same.sum()) == 30 and torch.equal(same, y[partner] == y[anchor])


# ----------------------------------------------------------------------------------------------------------------
# measures


def test_knn_and_threshold_on_hand_made_points():
    z_train = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    y_train = torch.tensor([0, 0, 0, 1, 1, 1])
    assert knn_predict(z_train, y_train, torch.tensor([[0.2, 0.2], [4.0, 4.0]]), k=3).tolist() == [0, 1]
    # a 1-1 tie at k=2 goes to the nearest neighbour's class
    pts, labels = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1])
    assert knn_predict(pts, labels, torch.tensor([[0.4, 0.0], [0.6, 0.0]]), k=2).tolist() == [0, 1]
    d = torch.tensor([0.5, 1.0, 1.5, 3.0, 4.0, 6.0])
    same = torch.tensor([True, True, True, False, True, False])
    t = best_threshold(d, same)
    assert 1.5 < t < 3.0 and ((d < t) == same).sum() == 5


def test_bad_arguments_and_data_get_clear_errors():
    with pytest.raises(ConfigError, match="pairing"):
        create_model("siamese-mlp", pairing="triplets")
    with pytest.raises(ConfigError, match="margin"):
        create_model("siamese-mlp", margin=0.0)
    model = create_model("siamese-mlp", hidden_sizes=[8])
    with pytest.raises(ConfigError, match="input_size"):
        model.check_data(torch.rand(3, 100))
    unlabelled = DataSplits(
        name="x", split="x", train=ArrayData(torch.rand(4, 784)), test=ArrayData(torch.rand(2, 784))
    )
    with pytest.raises(DataError, match="labels"):
        model.prepare_data(unlabelled)


# ----------------------------------------------------------------------------------------------------------------
# training


def _two_digits(part, n):
    keep = (part.y == 0) | (part.y == 1)
    return part.x[keep][:n], part.y[keep][:n]


def test_training_separates_two_digit_classes():
    torch.manual_seed(0)
    mnist = create_dataset("mnist", split="tf")
    x, y = _two_digits(mnist.train, 2000)
    xt, yt = _two_digits(mnist.test, 500)
    model = create_model("siamese-mlp", hidden_sizes=[128, 128])
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.01))
    test = {"test": Batches(xt, yt, batch_size=500, shuffle=False)}
    before = engine.evaluate(test["test"])
    engine.fit(Batches(x, y, batch_size=128, seed=0), epochs=4, eval_sets=test)
    after = engine.history[-1]
    assert after["test_loss"] < 0.3 * before["loss"]
    assert after["test_accuracy"] > 0.95
    z = model.embed(xt)
    d = torch.cdist(z, z)
    same = yt[:, None] == yt[None, :]
    assert d[same].mean() < 0.3 * d[~same].mean()  # genuine pairs close, impostors far
    assert (knn_predict(model.embed(x), y, z) == yt).float().mean() > 0.97


def test_eval_step_gives_fixed_per_pair_metrics():
    torch.manual_seed(0)
    model = create_model("siamese-mlp", hidden_sizes=[16])
    x, y = torch.rand(50, 784), torch.randint(0, 10, (50,))
    state = torch.get_rng_state()
    a, b = model.eval_step((x, y)), model.eval_step((x, y))
    assert torch.equal(state, torch.get_rng_state())
    assert a["loss"].shape == (50,) and a["accuracy"].shape == (50,)
    assert torch.equal(a["loss"], b["loss"])


SMALL = {  # a small net, started at a larger scale so that it learns within a few steps
    "model.hidden_sizes": [32, 32],
    "model.init_std": 0.1,
    "train.train_subset": 1500,
    "train.max_steps": 60,
    "train.epochs": 5,
    "train.checkpoint_every": 7,
    "train.eval_subset": 500,
    "train.threads": 1,
}


def test_recipe_runs_end_to_end_with_measures_and_figures(tmp_path):
    result = deeprecipes.run("siamese-mnist", overrides=SMALL, out=tmp_path, progress=False)
    m = result.metrics
    for key in ("test_loss", "test_accuracy", "test_knn_accuracy", "test_verification_accuracy"):
        assert math.isfinite(m[key]), key
    assert m["test_knn_accuracy"] > 0.25  # well above chance (0.1) after 60 steps
    assert result.summary["target"]["metric"] == "test_knn_accuracy"
    figs = result.summary["figures"]
    assert "figures/embedding-digits.png" in figs and "figures/codes.png" in figs
    assert (tmp_path / "figures" / "embedding-digits.png").stat().st_size > 10_000


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from deeprecipes.training.callbacks import Callback

    overrides = {**SMALL, "train.train_subset": 1000}  # 8 batches an epoch: the crash lands inside epoch 2
    deeprecipes.run("siamese-mnist", overrides=overrides, out=tmp_path / "whole", progress=False)

    class Crash(Callback):
        def on_train_batch_end(self, engine, logs):
            if engine.step_count == 19:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deeprecipes.run("siamese-mnist", overrides=overrides, out=tmp_path / "cut", progress=False, callbacks=[Crash()])
    deeprecipes.resume(tmp_path / "cut", progress=False)
    a = load_checkpoint(tmp_path / "whole" / "checkpoints")[0]
    b = load_checkpoint(tmp_path / "cut" / "checkpoints")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
