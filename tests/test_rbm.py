"""Restricted Boltzmann machines: CD-k / PCD training through the engine, free energy and conditionals, AIS against
exact enumeration, data checks, layer-wise stacking, the scikit-learn estimator (check suite, comparison with
sklearn's BernoulliRBM) and short end-to-end runs of the RBM recipes on real MNIST."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.estimators import RBM as RBMEstimator
from deeprecipes.estimators import DataRangeWarning, GaussianRBM
from deeprecipes.machine import Precision
from deeprecipes.models.rbm import RBM, ais_betas, ais_log_partition, exact_log_partition
from deeprecipes.models.stacked import LayerStack, StackedClassifier
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model
from deeprecipes.training import Engine
from deeprecipes.training.layerwise import pretrain


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def tiny(visible: str = "bernoulli", n_visible: int = 10, n_hidden: int = 6, scale: float = 1.0, seed: int = 0) -> RBM:
    """A small RBM with random weights and biases (large enough that log Z is far from the base model's)."""
    torch.manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible=visible, init_std=scale, image_shape=None)
    with torch.no_grad():
        rbm.v_bias.normal_(0, 0.5)
        rbm.h_bias.normal_(0, 0.5)
    return rbm


def binary_data(n: int = 400, d: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(3, d, generator=g) > 0.5).float()
    x = protos[torch.randint(0, 3, (n,), generator=g)]
    flip = torch.rand(n, d, generator=g) < 0.05
    return torch.where(flip, 1 - x, x)


# ----------------------------------------------------------------------------------------------------------------
# energies and conditionals


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_is_minus_log_sum_over_hidden_states(visible):
    rbm = tiny(visible, n_visible=5, n_hidden=4).double()
    v = torch.rand(7, 5, dtype=torch.float64)
    h = ((torch.arange(16).unsqueeze(1) >> torch.arange(4)) & 1).double()  # all 2^4 hidden states
    if visible == "bernoulli":
        visible_energy = -(v @ rbm.v_bias)
    else:
        visible_energy = 0.5 * (v - rbm.v_bias).pow(2).sum(1)
    energy = visible_energy[:, None] - h @ rbm.h_bias - (v @ rbm.W) @ h.t()  # (7, 16)
    expected = -torch.logsumexp(-energy, 1)
    torch.testing.assert_close(rbm.free_energy(v), expected)


def test_conditionals_shapes_and_ranges():
    rbm = tiny(n_visible=12, n_hidden=5)
    v = torch.rand(8, 12)
    h, p = rbm.sample_h(v)
    assert h.shape == p.shape == (8, 5)
    assert set(h.unique().tolist()) <= {0.0, 1.0} and bool(((p > 0) & (p < 1)).all())
    vs, mean = rbm.sample_v(h)
    assert vs.shape == mean.shape == (8, 12) and set(vs.unique().tolist()) <= {0.0, 1.0}
    vk, hp = rbm.gibbs(v, k=3)
    assert vk.shape == (8, 12) and hp.shape == (8, 5)
    torch.testing.assert_close(rbm.encode(v), torch.sigmoid(v @ rbm.W + rbm.h_bias))
    torch.testing.assert_close(rbm(v), torch.sigmoid(rbm.encode(v) @ rbm.W.t() + rbm.v_bias))
    g = tiny("gaussian", n_visible=12, n_hidden=5)
    torch.testing.assert_close(g.decode(h), h @ g.W.t() + g.v_bias)


def test_surrogate_gradient_is_the_cd_gradient():
    """d/dW of mean F(v0) - mean F(v1) = -(<v0 p(h|v0)> - <v1 p(h|v1)>): the textbook CD update (with minus sign)."""
    rbm = tiny(n_visible=6, n_hidden=3).double()
    v0, v1 = torch.rand(5, 6, dtype=torch.float64).round(), torch.rand(5, 6, dtype=torch.float64).round()
    loss = rbm.free_energy(v0).mean() - rbm.free_energy(v1).mean()
    loss.backward()
    h0, h1 = rbm.encode(v0).detach(), rbm.encode(v1).detach()
    torch.testing.assert_close(rbm.W.grad, -(v0.t() @ h0 - v1.t() @ h1) / 5)
    torch.testing.assert_close(rbm.v_bias.grad, -(v0 - v1).mean(0))
    torch.testing.assert_close(rbm.h_bias.grad, -(h0 - h1).mean(0))


def test_cookbook_free_energy_sums_the_hidden_term_over_the_batch():
    rbm = tiny(n_visible=6, n_hidden=3)
    v = torch.rand(4, 6)
    rbm.sum_hidden_term = True
    quirk = rbm._batch_free_energy(v)
    visible = -(v @ rbm.v_bias).mean()
    hidden = torch.nn.functional.softplus(rbm.hidden_input(v)).sum()
    torch.testing.assert_close(quirk, visible - hidden)


# ----------------------------------------------------------------------------------------------------------------
# partition function


@pytest.mark.parametrize(
    ("visible", "scale"),
    [("bernoulli", 1.0), ("bernoulli", 0.1), ("gaussian", 0.3)],
)
def test_ais_matches_exact_log_partition(visible, scale):
    rbm = tiny(visible, scale=scale)
    data = binary_data() if visible == "bernoulli" else torch.randn(400, 10)
    rbm.check_data(data)  # the base-rate model
    exact = exact_log_partition(rbm)
    estimate, logw = ais_log_partition(rbm, runs=100, betas=2000, seed=3)
    assert logw.shape == (100,)
    assert abs(estimate - exact) < 0.05, (estimate, exact)


def test_exact_log_partition_of_an_rbm_without_weights():
    """W = 0: the units are independent, log Z = sum softplus(b) + sum softplus(c)."""
    rbm = tiny(n_visible=8, n_hidden=3)
    with torch.no_grad():
        rbm.W.zero_()
    b, c = rbm.v_bias.detach().double(), rbm.h_bias.detach().double()
    expected = float(torch.nn.functional.softplus(b).sum() + torch.nn.functional.softplus(c).sum())
    assert exact_log_partition(rbm) == pytest.approx(expected, abs=1e-9)
    # with the base model at the visible biases every importance weight is exact
    assert ais_log_partition(rbm, runs=10, betas=10, base_bias=rbm.v_bias)[0] == pytest.approx(expected, abs=1e-4)


def test_gaussian_exact_log_partition_matches_numerical_integration():
    rbm = tiny("gaussian", n_visible=2, n_hidden=3, scale=0.5).double()
    grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
    v = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        numeric = torch.logsumexp(-rbm.free_energy(v), 0) + 2 * math.log(grid[1] - grid[0])
    assert exact_log_partition(rbm) == pytest.approx(float(numeric), abs=1e-6)


def test_ais_temperatures_follow_salakhutdinov_murray():
    b = ais_betas(14500)
    assert len(b) == 14501 and b[0] == 0 and b[-1] == 1 and bool((b.diff() > 0).all())
    assert int((b < 0.5).sum()) == 14500 // 15
    assert int(((b >= 0.9) & (b < 1)).sum()) > int(((b >= 0.5) & (b < 0.9)).sum()) > int((b < 0.5).sum())


def test_ais_does_not_touch_the_global_generator():
    rbm = tiny()
    torch.manual_seed(5)
    ais_log_partition(rbm, runs=5, betas=20)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(1))


def test_exact_log_partition_refuses_too_many_units():
    with pytest.raises(ValueError, match="at most 20"):
        exact_log_partition(RBM(30, 24, image_shape=None))


def test_exact_log_partition_sums_out_the_larger_layer_either_way():
    """Enumerating the visible states (hidden summed out) and the hidden states (visible summed out) agree."""
    rbm = tiny(n_visible=9, n_hidden=7)
    flipped = RBM(7, 9, image_shape=None)
    with torch.no_grad():
        flipped.W.copy_(rbm.W.t())
        flipped.v_bias.copy_(rbm.h_bias)
        flipped.h_bias.copy_(rbm.v_bias)
    assert exact_log_partition(flipped) == pytest.approx(exact_log_partition(rbm), abs=1e-9)


def test_ais_is_exact_on_an_mnist_sized_rbm():
    """784 visible units trained by PCD on real digits, 12 hidden units so that log Z can be enumerated: the AIS
    estimate with 1,000 temperatures is within 0.1 nats (with 20 hidden units and 14,500 temperatures: 0.1 too)."""
    from deeprecipes.registry import create_dataset

    torch.manual_seed(0)
    x = create_dataset("mnist", split="tf").train.x[:2000].reshape(-1, 784)
    rbm = RBM(784, 12, image_shape=None, persistent=True, k=5, ais_betas=0)
    fit(rbm, x, epochs=1)
    exact = exact_log_partition(rbm)
    assert exact < 0.6 * 796 * math.log(2)  # trained: far below the untrained (784 + 12) log 2
    estimate, _ = ais_log_partition(rbm, runs=100, betas=1000, seed=1)
    assert abs(estimate - exact) < 0.1, (estimate, exact)


# ----------------------------------------------------------------------------------------------------------------
# training


def fit(rbm: RBM, x: torch.Tensor, epochs: int, lr: float = 0.1, batch_size: int = 20, **engine_args):
    rbm.check_data(x)
    engine = Engine(rbm, optimizers=torch.optim.SGD(rbm.parameters(), lr=lr), **engine_args)
    return engine.fit(
        Batches(x, batch_size=batch_size, seed=0),
        epochs=epochs,
        eval_sets={"val": Batches(x[:100], batch_size=100, shuffle=False)},
    )


@pytest.mark.parametrize("persistent", [False, True])
def test_training_raises_the_log_likelihood(persistent):
    torch.manual_seed(0)
    x = binary_data(d=10)
    rbm = RBM(10, 6, k=1 if not persistent else 5, persistent=persistent, image_shape=None, ais_betas=300)
    rbm.check_data(x)
    before = after_val(rbm, x)
    history = fit(rbm, x, epochs=15)
    after = after_val(rbm, x)
    assert after > before + 1.0, (before, after)
    assert history[-1]["val_mse"] < history[0]["val_mse"]
    # the AIS monitor tracks the exact value
    assert history[-1]["val_loglik"] == pytest.approx(after_val(rbm, x[:100]), abs=0.1)


def test_bf16_precision_runs_the_chain_in_bfloat16_and_still_learns():
    """``precision = "bf16"`` reaches the RBM's own train_step (the Gibbs chain and the surrogate loss under
    autocast); the weights stay float32 and the exact log-likelihood still rises."""
    torch.manual_seed(0)
    x = binary_data(d=10)
    rbm = RBM(10, 6, k=1, image_shape=None, ais_betas=0)
    rbm.check_data(x)
    seen = []
    hidden_input = rbm.hidden_input
    rbm.hidden_input = lambda v: seen.append(hidden_input(v).dtype) or hidden_input(v)
    before = after_val(rbm, x)
    fit(rbm, x, epochs=15, precision=Precision("bf16", "bf16", "forced: tested on every CPU"))
    assert torch.bfloat16 in seen and rbm.W.dtype == torch.float32
    assert after_val(rbm, x) > before + 1.0


def after_val(rbm: RBM, v: torch.Tensor) -> float:
    """The exact mean log-likelihood of ``v``."""
    with torch.no_grad():
        return float((-rbm.free_energy(v)).mean()) - exact_log_partition(rbm)


def test_persistent_chain_is_a_buffer_that_moves():
    torch.manual_seed(0)
    rbm = RBM(10, 6, persistent=True, n_chains=7, image_shape=None)
    assert "chain" in rbm.state_dict() and rbm.chain.shape == (7, 6)
    fit(rbm, binary_data(), epochs=1)
    assert rbm.chain.abs().sum() > 0
    assert "base_bias" not in rbm.state_dict()


def test_monitoring_metrics_every_epoch():
    torch.manual_seed(0)
    rbm = RBM(10, 6, image_shape=None, ais_betas=50, ais_runs=20)
    history = fit(rbm, binary_data(), epochs=2)
    for key in ("train_loss", "train_mse", "train_pll", "val_mse", "val_xent", "val_pll", "val_free_energy"):
        assert key in history[-1]
    for key in ("val_fe_gap", "val_loglik", "val_logz"):
        assert math.isfinite(history[-1][key])
    assert history[-1]["val_logz"] != history[0]["val_logz"]  # the cache follows the weights


def test_sparsity_target_lowers_hidden_activity():
    x = binary_data()
    means = []
    for cost in (0.0, 1.0):
        torch.manual_seed(0)
        rbm = RBM(10, 6, sparsity_target=0.05, sparsity_cost=cost, image_shape=None, ais_betas=0)
        fit(rbm, x, epochs=5)
        means.append(float(rbm.encode(x).detach().mean()))
    assert means[1] < means[0] - 0.1, means


def test_weight_decay_and_momentum_come_from_the_engine():
    x = binary_data()
    norms = []
    for l2 in (0.0, 0.05):
        torch.manual_seed(0)
        rbm = RBM(10, 6, image_shape=None, ais_betas=0)
        rbm.check_data(x)
        opt = torch.optim.SGD(rbm.parameters(), lr=0.1, momentum=0.5)
        Engine(rbm, optimizers=opt, l2=l2).fit(Batches(x, batch_size=20, seed=0), epochs=3)
        norms.append(float(rbm.W.detach().norm()))
        assert opt.state[rbm.W]["momentum_buffer"] is not None
    assert norms[1] < norms[0]


def test_same_seed_same_weights():
    out = []
    for _ in range(2):
        torch.manual_seed(1)
        rbm = RBM(10, 6, persistent=True, image_shape=None, ais_betas=0)
        fit(rbm, binary_data(), epochs=2)
        out.append(rbm.W.detach().clone())
    assert torch.equal(out[0], out[1])


def test_gaussian_rbm_learns_standardized_data():
    torch.manual_seed(0)
    sign = torch.randint(0, 2, (600, 1)).float() * 2 - 1  # two clusters: one hidden unit can tell them apart
    x = sign * torch.tensor([1.0, 1.0, -1.0]) + 0.4 * torch.randn(600, 3)
    x = (x - x.mean(0)) / x.std(0)
    rbm = create_model("gaussian-rbm", n_visible=3, n_hidden=4, ais_betas=200)
    assert rbm.visible == "gaussian" and rbm.image_shape is None
    rbm.check_data(x)
    before = after_val(rbm, x)
    history = fit(rbm, x, epochs=10, lr=0.05)
    assert after_val(rbm, x) > before + 0.2  # the exact log-likelihood rose
    assert history[-1]["val_mse"] < 0.5 * history[0]["val_mse"]
    assert history[-1]["val_loglik"] == pytest.approx(after_val(rbm, x[:100]), abs=0.05)


# ----------------------------------------------------------------------------------------------------------------
# bad input


def test_gaussian_rbm_rejects_unscaled_data_naming_the_fault():
    rbm = create_model("gaussian-rbm", n_visible=20, n_hidden=4)
    with pytest.raises(ConfigError, match="not standardized.*standard deviation"):
        rbm.check_data(torch.rand(100, 20))  # pixels in [0, 1]
    with pytest.raises(ConfigError, match="not standardized.*largest feature mean"):
        rbm.check_data(torch.randn(100, 20) + 5)
    rbm.check_data(torch.randn(100, 20))  # standardized: fine


def test_bernoulli_rbm_rejects_data_outside_unit_interval():
    rbm = create_model("rbm", n_visible=20, n_hidden=4)
    with pytest.raises(ConfigError, match=r"outside \[0, 1\].*'bernoulli'"):
        rbm.check_data(torch.randn(100, 20))
    with pytest.raises(ConfigError, match=r"shape \(n, 20\)"):
        rbm.check_data(torch.rand(100, 21))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"visible": "poisson"}, "model.visible"),
        ({"k": 0}, "model.k"),
        ({"sparsity_cost": 0.1}, "model.sparsity_cost"),
        ({"binarize": "sample", "visible": "gaussian"}, "model.binarize"),
        ({"init": "zeros"}, "model.init"),
    ],
)
def test_bad_settings_name_the_parameter(args, match):
    with pytest.raises(ConfigError, match=match):
        create_model("rbm", **args)


# ----------------------------------------------------------------------------------------------------------------
# stacking: the RBM as a layer-wise pretrained block


def test_rbm_blocks_pretrain_layer_by_layer():
    torch.manual_seed(0)
    stack = LayerStack.build([10, 8, 4], block="rbm", block_args={"ais_betas": 0})
    clf = StackedClassifier(stack, n_classes=3)
    x = binary_data()
    before = [b.W.detach().clone() for b in stack.blocks]
    histories = pretrain(clf, x, epochs=2, lr=0.1, batch_size=20)
    assert len(histories) == 2 and all(len(h) == 2 for h in histories)
    assert all(not torch.equal(b.W, w) for b, w in zip(stack.blocks, before))
    assert clf(x[:5]).shape == (5, 3)


# ----------------------------------------------------------------------------------------------------------------
# the scikit-learn estimator

_ORDER = (
    "score_samples flips one random feature per row (scikit-learn's BernoulliRBM does the same and lists this "
    "check as an expected failure): the result depends on which rows share the call"
)


@parametrize_with_checks(
    [RBMEstimator(n_components=8, epochs=2)],
    expected_failed_checks=lambda est: {
        "check_methods_sample_order_invariance": _ORDER,
        "check_methods_subset_invariance": _ORDER,
    },
    xfail_strict=True,
)
def test_sklearn_compatible(estimator, check):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataRangeWarning)  # the checks' data go above 1
        check(estimator)


def test_matches_sklearn_bernoulli_rbm(digits):
    """Same data, same settings (PCD-1, 64 hidden units, lr 0.06, batch 10, 20 epochs): our pseudo-likelihood and the
    features' usefulness for logistic regression match scikit-learn's BernoulliRBM."""
    X_train, X_test, y_train, y_test = digits
    settings = {"n_components": 64, "batch_size": 10, "random_state": 0}
    ours = RBMEstimator(lr=0.06, epochs=20, **settings).fit(X_train)
    theirs = BernoulliRBM(learning_rate=0.06, n_iter=20, **settings).fit(X_train)
    untrained = RBMEstimator(lr=1e-9, epochs=1, **settings).fit(X_train)
    pll = {
        name: np.mean([m.score_samples(X_test).mean() for _ in range(5)])
        for name, m in (("ours", ours), ("sklearn", theirs), ("untrained", untrained))
    }
    assert pll["ours"] > pll["untrained"] + 10
    # as good as scikit-learn's or better (ours reshuffles the batches every epoch; sklearn keeps them in order)
    assert pll["ours"] > pll["sklearn"] - 0.1 * abs(pll["sklearn"]), pll
    assert pll["ours"] < pll["sklearn"] + 0.3 * abs(pll["sklearn"]), pll
    acc = {}
    for name, model in (("ours", ours), ("sklearn", theirs)):
        clf = LogisticRegression(max_iter=2000).fit(model.transform(X_train), y_train)
        acc[name] = clf.score(model.transform(X_test), y_test)
    assert acc["ours"] > 0.85 and abs(acc["ours"] - acc["sklearn"]) < 0.05, acc
    assert ours.components_.shape == theirs.components_.shape == (64, 64)


def test_estimator_in_a_pipeline_and_its_attributes(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(
        RBMEstimator(n_components=32, lr=0.06, epochs=5, random_state=0), LogisticRegression(max_iter=1000)
    )
    assert pipe.fit(X_train, y_train).score(X_test, y_test) > 0.7
    rbm = pipe[0]
    assert rbm.transform(X_test).shape == (len(X_test), 32)
    assert rbm.gibbs(X_test[:4]).shape == (4, 64)
    assert set(np.unique(rbm.gibbs(X_test[:4]))) <= {0.0, 1.0}
    assert rbm.free_energy(X_test[:4]).shape == (4,)
    assert rbm.intercept_hidden_.shape == (32,) and rbm.intercept_visible_.shape == (64,)
    assert [h["epoch"] for h in rbm.history_] == list(range(5))
    np.testing.assert_array_equal(rbm.score_samples(X_test), rbm.score_samples(X_test))  # seeded by random_state


def test_gaussian_estimator(digits):
    X_train, X_test, _, _ = digits
    with pytest.raises(ValueError, match="not standardized"):
        GaussianRBM(n_components=8, epochs=1).fit(X_train)
    scaler = StandardScaler().fit(X_train)
    est = GaussianRBM(n_components=16, epochs=3, random_state=0).fit(scaler.transform(X_train))
    scores = est.score_samples(scaler.transform(X_test))
    assert scores.shape == (len(X_test),) and np.isfinite(scores).all()


def test_estimator_data_checks():
    with pytest.raises(ValueError, match="Negative values"):
        RBMEstimator(n_components=4, epochs=1).fit(-np.ones((20, 3)))
    with pytest.warns(DataRangeWarning, match="above 1"):
        RBMEstimator(n_components=4, epochs=1).fit(np.full((20, 3), 2.0))
    with pytest.raises(ValueError, match="sparsity_cost"):
        RBMEstimator(sparsity_cost=0.1).fit(np.zeros((20, 3)))


# ----------------------------------------------------------------------------------------------------------------
# the recipes, briefly, on real MNIST

SHORT = {
    "rbm-mnist-cookbook": {
        "train.max_steps": 200,
        "train.eval_subset": 2000,
        "model.final_ais_betas": 100,
        "model.sample_every": 5,
        "model.sample_rows": 2,
    },
    "rbm-mnist-dlt": {
        "train.epochs": 1,
        "train.max_steps": 200,
        "train.eval_subset": 2000,
        "model.k": 1,
        "model.ais_betas": 100,
        "model.final_ais_betas": 100,
        "model.sample_every": 5,
        "model.sample_rows": 2,
    },
}


@pytest.mark.parametrize("recipe", sorted(SHORT))
def test_recipe_short_run(recipe, tmp_path):
    cfg = load_recipe(recipe, SHORT[recipe])
    torch.manual_seed(0)
    model = create_model(cfg.model.name, **cfg.model.args)
    test = create_dataset(cfg.data.name, **cfg.data.args).test.subset(2000)
    untrained = Engine(model).evaluate(Batches(test.x, batch_size=1000, shuffle=False))["mse"]
    result = deeprecipes.run(recipe, overrides=SHORT[recipe], out=tmp_path, progress=False, threads=1)
    m = result.metrics
    assert m["test_mse"] < 0.5 * untrained, (untrained, m)
    assert math.isfinite(m["test_loglik"]) and math.isfinite(m["test_ais_loglik"]) and m["test_loglik"] < 0
    assert {"figures/filters.png", "figures/samples.png", "figures/reconstructions.png"} <= set(
        result.summary["figures"]
    )
