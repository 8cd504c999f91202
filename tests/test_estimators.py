"""scikit-learn estimators over the autoencoders: the estimator check suite, pipelines, grid search, anomaly scores,
error messages and determinism. Small networks and few epochs throughout: the file runs in seconds on one thread."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from deeprecipes.estimators import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvDenoisingAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    StackedDenoisingAutoencoder,
    StackedDenoisingClassifier,
)

# ----------------------------------------------------------------------------------------------------------------
# scikit-learn's estimator checks

CHECKED = [
    Autoencoder(n_hidden=8, epochs=2),
    SparseAutoencoder(n_hidden=8, epochs=2),
    DenoisingAutoencoder(n_hidden=8, epochs=2),
    ContractiveAutoencoder(n_hidden=8, epochs=2),
    StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 4), pretrain_epochs=2, finetune_epochs=1),
    # check_classifiers_train wants > 83% accuracy on blobs: enough fine-tuning steps for that
    StackedDenoisingClassifier(
        hidden_layer_sizes=(8, 4), pretrain_epochs=2, finetune_epochs=20, batch_size=32, lr=0.05
    ),
    ConvDenoisingAutoencoder(filters=(2, 2, 2), epochs=1),
]

_NEEDS_784 = (
    "the convolutional autoencoder takes 28x28 images (784 features) and rejects the check's data, which has "
    "2 to 10 features, with a ValueError"
)
# every check that fits on scikit-learn's small generated data sets
CONV_EXPECTED_FAILURES = {
    name: _NEEDS_784
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    )
}


def expected_failed_checks(estimator):
    return CONV_EXPECTED_FAILURES if isinstance(estimator, ConvDenoisingAutoencoder) else {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------------------------------------------
# data


def as_28x28(X8: np.ndarray) -> np.ndarray:
    """8x8 digits blown up 3x to 24x24 and padded to 28x28, flattened to 784 features."""
    images = np.kron(X8.reshape(-1, 8, 8), np.ones((3, 3)))
    return np.pad(images, ((0, 0), (2, 2), (2, 2))).reshape(len(X8), 784)


# ----------------------------------------------------------------------------------------------------------------
# pipelines and grid search


def test_pipeline_with_logistic_regression(digits):
    X_train, X_test, y_train, y_test = digits
    sda = StackedDenoisingAutoencoder(hidden_layer_sizes=(64, 32), pretrain_epochs=5, random_state=0)
    pipe = make_pipeline(sda, LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    assert pipe.score(X_test, y_test) > 0.85
    assert pipe[0].transform(X_test).shape == (len(X_test), 32)


def test_grid_search_over_autoencoder_parameter(digits):
    X_train, _, y_train, _ = digits
    pipe = make_pipeline(
        StackedDenoisingAutoencoder(hidden_layer_sizes=(32,), pretrain_epochs=2, random_state=0),
        LogisticRegression(max_iter=500),
    )
    grid = {"stackeddenoisingautoencoder__hidden_layer_sizes": [(16,), (32,)]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X_train, y_train)
    assert search.best_params_["stackeddenoisingautoencoder__hidden_layer_sizes"] in [(16,), (32,)]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_[0].transform(X_train[:5]).shape[1] == search.best_estimator_[0]._n_features_out


# ----------------------------------------------------------------------------------------------------------------
# anomaly scores


@pytest.mark.parametrize(
    "estimator",
    [
        Autoencoder(n_hidden=32, epochs=10, random_state=0),
        DenoisingAutoencoder(n_hidden=32, epochs=10, random_state=0),
        StackedDenoisingAutoencoder(hidden_layer_sizes=(48, 32), pretrain_epochs=5, finetune_epochs=5, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_score_samples_ranks_outliers_lower(digits, estimator):
    X_train, X_test, _, _ = digits
    rng = np.random.default_rng(0)
    normal = X_test[:200]
    noisy = np.clip(X_test[200:300] + rng.normal(0, 0.5, size=(100, 64)), 0, 1)  # corrupted digits
    uniform = rng.uniform(size=(100, 64))  # not digits at all
    est = clone(estimator).fit(X_train)
    scores = est.score_samples(np.vstack([normal, noisy, uniform]))
    assert scores.shape == (400,)
    assert np.all(scores <= 0)
    is_outlier = np.r_[np.zeros(200), np.ones(200)]
    assert roc_auc_score(is_outlier, -scores) > 0.95
    assert scores[:200].mean() > scores[200:300].mean() > scores[300:].mean()
    assert est.score(normal) == pytest.approx(scores[:200].mean(), rel=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# the classifier


def test_stacked_classifier_with_string_labels(digits):
    X_train, X_test, y_train, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = StackedDenoisingClassifier(hidden_layer_sizes=(64, 32), pretrain_epochs=3, random_state=0)
    clf.fit(X_train, names[y_train])
    assert list(clf.classes_) == sorted(names)
    assert clf.score(X_test, names[y_test]) > 0.9
    predicted = clf.predict(X_test[:20])
    assert predicted.dtype == names.dtype and set(predicted) <= set(names)
    proba = clf.predict_proba(X_test[:20])
    assert proba.shape == (20, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], predicted)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_test[:20])), proba, rtol=1e-5)
    assert clf.transform(X_test[:3]).shape == (3, 32)
    phases = [log["phase"] for log in clf.history_]
    assert phases == ["pretrain"] * 6 + ["finetune"] * 20
    assert [log["layer"] for log in clf.history_[:6]] == [1, 1, 1, 2, 2, 2]


def test_classifier_needs_two_classes():
    X = np.random.default_rng(0).uniform(size=(10, 4))
    with pytest.raises(ValueError, match="at least 2 classes"):
        StackedDenoisingClassifier(hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1).fit(X, ["a"] * 10)


# ----------------------------------------------------------------------------------------------------------------
# shapes, round trips, fitted attributes


@pytest.mark.parametrize(
    "estimator, n_code",
    [
        (Autoencoder(n_hidden=16, epochs=3), 16),
        (SparseAutoencoder(n_hidden=16, epochs=3), 16),
        (ContractiveAutoencoder(n_hidden=16, epochs=3), 16),
        (StackedDenoisingAutoencoder(hidden_layer_sizes=(24, 12), pretrain_epochs=2, finetune_epochs=2), 12),
    ],
    ids=lambda e: type(e).__name__ if not isinstance(e, int) else str(e),
)
def test_transform_inverse_transform(digits, estimator, n_code):
    X_train, X_test, _, _ = digits
    est = clone(estimator).set_params(random_state=0).fit(X_train)
    assert est.n_features_in_ == 64
    assert est.history_ and all("train_loss" in log for log in est.history_)
    Z = est.transform(X_test)
    assert Z.shape == (len(X_test), n_code) and Z.dtype == np.float64
    assert est.transform(X_test.astype(np.float32)).dtype == np.float32
    R = est.inverse_transform(Z)
    assert R.shape == X_test.shape
    # decoding the code is the reconstruction that score_samples measures
    np.testing.assert_allclose(-((R - X_test) ** 2).mean(1), est.score_samples(X_test), rtol=1e-6, atol=1e-9)
    names = est.get_feature_names_out()
    assert len(names) == n_code and names[0] == f"{type(est).__name__.lower()}0"


def test_stacked_history_phases(digits):
    X_train = digits[0]
    est = StackedDenoisingAutoencoder(hidden_layer_sizes=(16, 8, 4), pretrain_epochs=2, finetune_epochs=3).fit(X_train)
    assert [(log["phase"], log.get("layer")) for log in est.history_] == (
        [("pretrain", 1)] * 2 + [("pretrain", 2)] * 2 + [("pretrain", 3)] * 2 + [("finetune", None)] * 3
    )
    # deeplearning.net's noise schedule by default; a number means the same level for every layer
    assert [b.corruption_level for b in est.model_.stack.blocks] == pytest.approx([0.1, 0.2, 0.3])
    est.set_params(corruption_levels=0.25, finetune_epochs=0).fit(X_train)
    assert [b.corruption_level for b in est.model_.stack.blocks] == [0.25, 0.25, 0.25]


def test_conv_denoising_autoencoder(digits):
    X_train, X_test, _, _ = digits
    X28, X28_test = as_28x28(X_train[:200]), as_28x28(X_test[:50])
    est = ConvDenoisingAutoencoder(filters=(4, 4, 2), epochs=2, batch_size=50, random_state=0).fit(X28)
    Z = est.transform(X28_test)
    assert Z.shape == (50, 2 * 4 * 4)
    R = est.inverse_transform(Z)
    assert R.shape == (50, 784) and R.min() >= 0 and R.max() <= 1
    np.testing.assert_allclose(-((R - X28_test) ** 2).mean(1), est.score_samples(X28_test), rtol=1e-6, atol=1e-9)
    assert len(est.history_) == 2


def test_subclasses_change_only_defaults():
    base = Autoencoder().get_params()
    for cls, changed in [
        (SparseAutoencoder, {"sparsity_target": 0.02, "sparsity_weight": 7.5e-5}),
        (DenoisingAutoencoder, {"corruption": "masking", "corruption_level": 0.3}),
        (ContractiveAutoencoder, {"contractive_weight": 0.1}),
    ]:
        params = cls().get_params()
        assert params == {**base, **changed}


def test_feature_names_in(digits):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(digits[0][:100], columns=[f"pixel{i}" for i in range(64)])
    est = Autoencoder(n_hidden=4, epochs=1).fit(X)
    assert list(est.feature_names_in_) == list(X.columns)


def test_verbose_prints_epochs(digits, capsys):
    StackedDenoisingAutoencoder(hidden_layer_sizes=(8,), pretrain_epochs=2, finetune_epochs=1, verbose=True).fit(
        digits[0][:100]
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "pretrain layer 1" in out[0] and "finetune" in out[2] and "train_loss=" in out[0]


# ----------------------------------------------------------------------------------------------------------------
# determinism


@pytest.mark.parametrize(
    "estimator",
    [
        DenoisingAutoencoder(n_hidden=8, epochs=2),
        StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 4), pretrain_epochs=2, finetune_epochs=1),
        StackedDenoisingClassifier(hidden_layer_sizes=(8, 4), pretrain_epochs=1, finetune_epochs=2),
    ],
    ids=lambda e: type(e).__name__,
)
def test_same_random_state_same_model(digits, estimator):
    X, _, y, _ = digits
    X, y = X[:300], y[:300]
    torch_state = torch.get_rng_state()
    a = clone(estimator).set_params(random_state=7).fit(X, y)
    b = clone(estimator).set_params(random_state=7).fit(X, y)
    c = clone(estimator).set_params(random_state=8).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)  # fit leaves the global torch generator alone
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert a.history_ == b.history_
    assert not np.allclose(a.transform(X), c.transform(X))


# ----------------------------------------------------------------------------------------------------------------
# error messages


def test_wrong_feature_count_names_X_and_expected_count(digits):
    est = Autoencoder(n_hidden=4, epochs=1).fit(digits[0][:50])
    with pytest.raises(ValueError, match=r"X has 10 features, but Autoencoder is expecting 64 features"):
        est.transform(np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"X has 10 features, .*expecting 64 features"):
        est.score_samples(np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"X has 5 features, but Autoencoder.inverse_transform is expecting 4"):
        est.inverse_transform(np.zeros((3, 5)))
    clf = StackedDenoisingClassifier(hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1)
    clf.fit(digits[0][:50], digits[2][:50])
    with pytest.raises(ValueError, match=r"X has 10 features, .*expecting 64 features"):
        clf.predict(np.zeros((3, 10)))


@pytest.mark.parametrize(
    "estimator, match",
    [
        (Autoencoder(corruption="masking", corruption_level=1.5), "corruption_level == 1.5, must be <= 1"),
        (DenoisingAutoencoder(corruption_level=-0.1), "corruption_level == -0.1, must be >= 0"),
        (ConvDenoisingAutoencoder(corruption_level=2.0), "corruption_level == 2.0, must be <= 1"),
        (
            StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 4), corruption_levels=(0.1, 1.2)),
            r"corruption_levels\[1\]",
        ),
        (StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 4), corruption_levels=(0.1,)), "corruption_levels"),
        (StackedDenoisingAutoencoder(corruption_levels=3.0), "corruption_levels == 3.0"),
        (StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 0)), "hidden_layer_sizes"),
        (StackedDenoisingAutoencoder(hidden_layer_sizes=(8, 2.5)), "hidden_layer_sizes"),
        (StackedDenoisingClassifier(hidden_layer_sizes=()), "hidden_layer_sizes"),
        (Autoencoder(n_hidden=0), "n_hidden == 0, must be >= 1"),
        (Autoencoder(loss="l1"), "loss must be one of"),
        (Autoencoder(corruption="blur"), "corruption must be one of"),
        (Autoencoder(optimizer="lbfgs"), "optimizer must be one of"),
        (Autoencoder(lr=0.0), "lr == 0.0, must be > 0"),
        (ConvDenoisingAutoencoder(filters=(4, 4)), "filters"),
    ],
    ids=str,
)
def test_bad_parameters_raise_value_error_naming_them(estimator, match):
    X = np.random.default_rng(0).uniform(size=(20, 784))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        estimator.fit(X, y)


@pytest.mark.parametrize(
    "estimator",
    [
        Autoencoder(loss="bce", n_hidden=4, epochs=1),
        StackedDenoisingAutoencoder(loss="bce", hidden_layer_sizes=(4,), pretrain_epochs=1),
        StackedDenoisingClassifier(loss="bce", hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bce_needs_data_in_unit_interval(estimator):
    X = np.random.default_rng(0).uniform(size=(20, 6))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=r"X has values above 1 \(min .*, max 1\.99"):
        clone(estimator).fit(X * 2, y)
    with pytest.raises(ValueError, match=r"Negative values in data passed to X"):
        clone(estimator).fit(X - 0.5, y)
    assert clone(estimator).fit(X, y).transform(X).shape == (20, 4)  # in [0, 1] it trains


def test_conv_rejects_other_shapes_naming_X(digits):
    with pytest.raises(ValueError, match=r"X has shape \(50, 64\), but ConvDenoisingAutoencoder needs .* 784"):
        ConvDenoisingAutoencoder(epochs=1).fit(digits[0][:50])
    with pytest.raises(ValueError, match=r"X has values above 1"):
        ConvDenoisingAutoencoder(epochs=1).fit(as_28x28(digits[0][:10]) * 16)


def test_unfitted_estimator_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Autoencoder().transform(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        StackedDenoisingAutoencoder().inverse_transform(np.zeros((2, 3)))


# ----------------------------------------------------------------------------------------------------------------
# parameters: explicit in __init__, stored as given, checked in fit from their annotations


def _estimator_classes():
    import deeprecipes.estimators as est

    return [getattr(est, name) for name in est.__all__ if isinstance(getattr(est, name), type)]


@pytest.mark.parametrize("cls", _estimator_classes(), ids=lambda c: c.__name__)
def test_every_parameter_is_annotated_and_stored_as_given(cls):
    import inspect
    import typing

    if not issubclass(cls, BaseEstimator):
        pytest.skip("not an estimator")
    params = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    assert set(params) <= set(typing.get_type_hints(cls.__init__)), "a parameter without an annotation is unchecked"
    assert cls().get_params() == params


@pytest.mark.parametrize(
    "estimator, error, match",
    [
        (Autoencoder(tied="yes"), TypeError, "tied must be a bool, got 'yes'"),
        (Autoencoder(verbose="loud"), TypeError, "verbose must be a bool or an integer"),
        (Autoencoder(device="toaster"), ValueError, "device must name a torch device"),
        (Autoencoder(epochs=True), TypeError, "epochs must be an integer, got True"),
        (Autoencoder(init="zeros"), ValueError, "init must be one of 'normal', 'glorot-sigmoid', 'xavier'"),
        (StackedDenoisingAutoencoder(pretrain_epochs=-1), ValueError, "pretrain_epochs == -1, must be >= 0"),
        (StackedDenoisingClassifier(finetune_epochs=0), ValueError, "finetune_epochs == 0, must be >= 1"),
    ],
    ids=str,
)
def test_annotated_checks_name_the_parameter(estimator, error, match):
    X = np.random.default_rng(0).uniform(size=(20, 6))
    with pytest.raises(error, match=match):
        estimator.fit(X, np.arange(20) % 2)


# ----------------------------------------------------------------------------------------------------------------
# parameters taken from the models' signatures


def test_estimator_parameters_are_the_models_with_their_bounds():
    from deeprecipes.models import autoencoder as ae

    params = inspect.signature(Autoencoder).parameters
    assert params["loss"].annotation is ae.Loss and params["loss"].default == "mse"  # the model's, as written
    assert params["init"].default == "xavier"  # the estimator's own default
    assert list(params)[-3:] == ["random_state", "device", "verbose"]
    assert Autoencoder(8, True).get_params()["tied"] is True  # positional arguments bind in order
    with pytest.raises(ValueError, match="n_hidden == 0, must be >= 1"):
        Autoencoder(n_hidden=0).fit(np.zeros((4, 3)))


def test_estimator_init_names_what_it_cannot_take():
    from deeprecipes.estimators.base import estimator_init
    from deeprecipes.models import rbm

    with pytest.raises(TypeError, match="no estimator parameter 'n_hiddn': neither RBM nor settings takes"):
        estimator_init("X", rbm.RBM, "n_hiddn")
    with pytest.raises(TypeError, match="X.__init__ takes no parameter lr"):
        estimator_init("X", rbm.RBM, "k", lr=0.1)
    init = estimator_init("X", rbm.RBM, "n_components=n_hidden k hidden_layer_sizes", hidden_layer_sizes=[3, 2])
    assert [p.default for p in inspect.signature(init).parameters.values()][1:] == [500, 1, (3, 2)]
