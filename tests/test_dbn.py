"""Deep belief networks: RBM stacks through the pretraining API, the classifier on their weights, the cookbook
variant, the scikit-learn estimator (check suite, pipeline) and short end-to-end runs of the DBN recipes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.estimators import DBN
from deeprecipes.models.dbn import DBNClassifier, build_rbm_stack
from deeprecipes.models.rbm import RBM
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_model
from deeprecipes.training.layerwise import pretrain


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------------------------
# the model


def test_dbn_blocks_are_rbms_and_their_weights_are_the_network():
    torch.manual_seed(0)
    model = create_model("dbn", layer_sizes=[20, 12, 8])
    blocks = model.pretrain_blocks()
    assert [type(b) for b in blocks] == [RBM, RBM] and [b.k for b in blocks] == [1, 1]
    assert torch.count_nonzero(model.head.weight) == 0  # deeplearning.net's logistic layer starts at zero
    x = torch.rand(5, 20)
    with torch.no_grad():
        model.head.weight.normal_()
        before = model(x)
        blocks[0].W.add_(0.5)  # what pretraining changes, the classifier uses: no copy step to forget
        after = model(x)
    assert not torch.allclose(before, after)
    assert torch.allclose(model.encode(x), blocks[1].encode(blocks[0].encode(x)))
    names = {n for n, _ in model.named_parameters()}
    assert "stack.blocks.0.W" in names and "head.weight" in names


def test_pretraining_moves_each_rbm_and_lowers_its_reconstruction_error(mnist_small):
    torch.manual_seed(0)
    model = create_model("dbn", layer_sizes=[784, 64, 32])
    x = mnist_small[:500]
    w0 = [b.W.detach().clone() for b in model.pretrain_blocks()]
    histories = pretrain(model, x, epochs=3, lr=0.05, optimizer="momentum", batch_size=25, seed=0)
    assert len(histories) == 2
    for block, w, h in zip(model.pretrain_blocks(), w0, histories):
        assert not torch.equal(block.W, w)
        assert h[-1]["train_mse"] < h[0]["train_mse"]


def test_upper_rbms_stay_bernoulli():
    stack = build_rbm_stack([10, 6, 4], block_args={"visible": "gaussian", "image_shape": []})
    assert [b.visible for b in stack.blocks] == ["gaussian", "bernoulli"]


def test_cookbook_variant_shapes_init_and_sigmoid_output():
    torch.manual_seed(0)
    model = create_model("dbn-cookbook")
    assert model.stack.sizes == [2304, 1500, 700, 400]
    assert [layer.out_features for layer in model.hidden] == [1000] and model.head.out_features == 7
    out = model(torch.rand(3, 2304))
    assert out.shape == (3, 7) and (out > 0).all() and (out < 1).all()
    bound = 4 * (6 / (1000 + 7)) ** 0.5
    assert float(model.head.weight.abs().max()) <= bound and float(model.head.weight.abs().max()) > 0.5 * bound
    rbm = model.stack.blocks[0]
    assert rbm.sum_hidden_term and 0.9 < float(rbm.W.std()) < 1.1  # the book's RBM: N(0, 1) weights


def test_dropout_and_eval_error():
    torch.manual_seed(0)
    model = create_model("dbn", layer_sizes=[20, 12, 8], dropout=[0.1, 0.2, 0.5])
    x, y = torch.rand(6, 20), torch.randint(0, 10, (6,))
    model.eval()
    assert torch.equal(model(x), model(x))
    out = model.eval_step((x, y))
    assert torch.allclose(out["error"], 100 * (1 - out["accuracy"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layer_sizes": [20]}, "model.layer_sizes"),
        ({"layer_sizes": [20, 0]}, "model.layer_sizes"),
        ({"k": 0}, "model.k"),
        ({"dropout": [0.1, 0.1]}, "model.dropout must give 3 rates"),
        ({"output": "softmax"}, "model.output"),
        ({"head_init": "ones"}, "model.head_init"),
        ({"hidden_layers": [0]}, "model.hidden_layers"),
        ({"n_classes": 1}, "model.n_classes"),
        ({"freeze": 5}, "model.freeze"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("dbn", **{"layer_sizes": [20, 12, 8], **kwargs})


def test_check_data_rejects_values_outside_unit_interval():
    model = create_model("dbn", layer_sizes=[20, 12, 8])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        model.check_data(torch.rand(4, 20) * 3)
    with pytest.raises(ConfigError, match=r"\(n, 20\)"):
        model.check_data(torch.rand(4, 21))


# ----------------------------------------------------------------------------------------------------------------
# recipes


def test_dlt_recipe_has_the_tutorials_exact_settings():
    cfg = load_recipe("dbn-mnist-dlt")
    assert cfg.model.args["layer_sizes"] == [784, 1000, 1000, 1000] and cfg.model.args["k"] == 1
    p = cfg.pretrain
    assert (p.epochs, p.lr, p.batch_size, p.optimizer) == (100, 0.01, 10, "sgd")
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.train.batch_size) == ("sgd", 0.1, 10)
    assert cfg.target.value == 1.34 and cfg.data.args["split"] == "theano"


def test_dbn_mnist_recipe_learns_on_real_data(tmp_path):
    """dbn-mnist end to end (tests/test_recipes.py leaves it to this test; dbn-fashion-mnist runs there)."""
    short = {
        "pretrain.epochs": 1,
        "train.train_subset": 3000,
        "train.eval_subset": 1000,
        "train.epochs": 1,
        "train.max_steps": 60,
    }
    result = deeprecipes.run("dbn-mnist", overrides=short, out=tmp_path / "run", progress=False, threads=1)
    assert result.metrics["test_accuracy"] > 0.5
    assert (tmp_path / "run" / "pretrain" / "layer-3" / "done.json").exists()
    assert result.summary["target"]["metric"] == load_recipe("dbn-mnist").target.metric


# ----------------------------------------------------------------------------------------------------------------
# the scikit-learn estimator


_CLIPPED = (
    "a DBN reads X as probabilities of binary units and clips values above 1; the check's blobs, shifted to be "
    "non-negative, reach about 5, so clipping merges the classes and the check's 83% accuracy is out of reach"
)


@parametrize_with_checks(
    [DBN(hidden_layer_sizes=(8, 4), pretrain_epochs=2, finetune_epochs=20, batch_size=32, lr=0.05)],
    expected_failed_checks=lambda est: {"check_classifiers_train": _CLIPPED},
    xfail_strict=True,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_estimator_fit_predict_score_transform(digits):
    X_train, X_test, y_train, y_test = digits
    clf = DBN(hidden_layer_sizes=(64, 32), pretrain_epochs=3, finetune_epochs=15, random_state=0)
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.85
    assert clf.transform(X_test).shape == (len(X_test), 32)
    proba = clf.predict_proba(X_test)
    assert np.allclose(proba.sum(1), 1) and proba.shape == (len(X_test), 10)
    phases = {(h["phase"], h.get("layer")) for h in clf.history_}
    assert phases == {("pretrain", 1), ("pretrain", 2), ("finetune", None)}


def test_estimator_string_labels_and_determinism(digits):
    X_train, X_test, y_train, _ = digits
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y_train]
    a = DBN(hidden_layer_sizes=(16,), pretrain_epochs=1, finetune_epochs=2, random_state=3).fit(X_train, labels)
    b = DBN(hidden_layer_sizes=(16,), pretrain_epochs=1, finetune_epochs=2, random_state=3).fit(X_train, labels)
    assert set(a.predict(X_test)) <= set(labels)
    assert np.array_equal(a.predict_proba(X_test), b.predict_proba(X_test))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"k": 0}, "k == 0"),
        ({"pretrain_lr": 0.0}, "pretrain_lr"),
        ({"finetune_epochs": 0}, "finetune_epochs"),
        ({"dropout": 1.0}, "dropout"),
        ({"pretrain_optimizer": "lbfgs"}, "pretrain_optimizer"),
    ],
)
def test_estimator_bad_parameters(digits, params, match):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=match):
        DBN(**params).fit(X_train[:50], y_train[:50])


def test_estimator_rejects_negative_inputs(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="Negative values"):
        DBN(hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1).fit(X_train[:50] - 1, y_train[:50])


def test_model_class_is_exported():
    assert issubclass(DBNClassifier, torch.nn.Module)
