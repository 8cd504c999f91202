"""The VAE and GAN scikit-learn estimators: the estimator check suite, what they learn on scikit-learn's 8x8 digits,
seeded sampling and scoring, and bad input. Small networks and few epochs: the file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from deeprecipes.errors import Collapsed
from deeprecipes.estimators import GAN, VAE, DataRangeWarning

_NOISY_SCORE = (
    "score_samples averages importance weights of random draws of z, taken in row order from one seeded "
    "generator: a row's score depends on which rows share the call (as the RBM's pseudo-likelihood does)"
)


@parametrize_with_checks(
    [VAE(n_latent=2, hidden_sizes=(8,), epochs=2, iw_samples=5), GAN(noise_dim=4, hidden=8, epochs=2)],
    expected_failed_checks=lambda est: (
        {"check_methods_sample_order_invariance": _NOISY_SCORE, "check_methods_subset_invariance": _NOISY_SCORE}
        if isinstance(est, VAE)
        else {}
    ),
    xfail_strict=True,
)
@pytest.mark.filterwarnings("ignore::deeprecipes.estimators.DataRangeWarning")  # the checks' data go above 1
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def vae(digits):
    return VAE(n_latent=2, hidden_sizes=(64,), epochs=30, iw_samples=50, random_state=0).fit(digits[0])


def test_vae_learns_and_scores_held_out_digits(digits, vae):
    X_train, X_test, _, _ = digits
    untrained = VAE(n_latent=2, hidden_sizes=(64,), epochs=1, iw_samples=50, random_state=0).fit(X_train)
    assert vae.history_[-1]["train_loss"] < vae.history_[0]["train_loss"] - 5
    assert vae.score(X_test) > untrained.score(X_test) + 5  # nats per row
    # the importance-weighted bound is tighter than one draw's ELBO
    one_draw = clone(vae).set_params(iw_samples=1)
    one_draw.model_ = vae.model_
    assert vae.score(X_test) > one_draw.score(X_test)
    # the same call gives the same numbers
    np.testing.assert_array_equal(vae.score_samples(X_test[:20]), vae.score_samples(X_test[:20]))


def test_vae_codes_decode_and_sample(digits, vae):
    X_test = digits[1]
    codes = vae.transform(X_test)
    assert codes.shape == (len(X_test), 2)
    recon = vae.inverse_transform(codes)
    assert recon.shape == X_test.shape and recon.min() >= 0 and recon.max() <= 1
    assert np.mean((recon - X_test) ** 2) < np.mean((X_test.mean(0) - X_test) ** 2)  # beats the mean image
    draws = vae.sample(16, random_state=3)
    assert draws.shape == (16, 64)
    np.testing.assert_array_equal(draws, vae.sample(16, random_state=3))
    assert not np.allclose(draws, vae.sample(16, random_state=4))
    assert vae.get_feature_names_out().tolist() == ["vae0", "vae1"]


def test_gan_generates_digits_a_classifier_recognises(digits):
    X_train, _, y_train, _ = digits
    gan = GAN(noise_dim=16, hidden=64, epochs=60, batch_size=32, random_state=0).fit(X_train)
    assert {"train_d_loss", "train_g_loss", "lr_g", "lr_d"} <= set(gan.history_[-1])
    fake = gan.sample(500, random_state=1)
    assert fake.shape == (500, 64) and fake.min() >= 0 and fake.max() <= 1
    np.testing.assert_array_equal(fake, gan.sample(500, random_state=1))
    assert not hasattr(gan, "transform")
    # a logistic regression trained on the real digits is 0.90 sure of held-out ones on average, 0.55 of uniform
    # noise; after one epoch the GAN's draws fall in 2 to 6 classes. Trained, they cover the ten digits.
    clf = LogisticRegression(max_iter=2000).fit(X_train, y_train)
    proba = clf.predict_proba(fake)
    assert proba.max(1).mean() > 0.58
    assert (np.bincount(proba.argmax(1), minlength=10) >= 5).sum() >= 8
    assert np.corrcoef(fake.mean(0), X_train.mean(0))[0, 1] > 0.85


def test_a_gan_whose_discriminator_wins_outright_stops_with_one_line(digits, monkeypatch):
    """Any d_loss counts as "pinned" under a floor of 1e9: the guard fires at its first check (step 50)."""
    from deeprecipes.models.gan import MLPGAN

    monkeypatch.setattr(MLPGAN, "collapse_signal", ("d_loss", 1e9))
    X_train = digits[0]  # 1,347 rows: 43 steps an epoch at batch 32
    off = r"\(collapse_steps = 0 turns this check off\)"  # the estimator's parameter, not a recipe key
    with pytest.raises(Collapsed, match=r"below 1e\+09 for 50 steps in a row .*" + off):
        GAN(hidden=8, epochs=2, batch_size=32, collapse_steps=20).fit(X_train)
    assert GAN(hidden=8, epochs=2, batch_size=32, collapse_steps=0).fit(X_train).history_
    assert GAN().get_params()["collapse_steps"] == 1000


def test_bad_input_names_what_is_wrong(digits):
    X_train = digits[0]
    with pytest.raises(ValueError, match="Negative values"):
        VAE(epochs=1).fit(X_train - 0.5)
    with pytest.warns(DataRangeWarning, match="values above 1 are clipped"):
        GAN(epochs=1, hidden=8).fit(X_train * 2)
    with pytest.raises(ValueError, match="n_latent == 0, must be >= 1"):
        VAE(n_latent=0).fit(X_train)
    with pytest.raises(ValueError, match="activation must be one of"):
        VAE(activation="gelu").fit(X_train)
    with pytest.raises(ValueError, match="hidden_sizes must be a positive integer or a non-empty sequence"):
        VAE(hidden_sizes=()).fit(X_train)
    fitted = VAE(n_latent=2, hidden_sizes=(8,), epochs=1).fit(X_train)
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got 0"):
        fitted.sample(0)
    with pytest.raises(ValueError, match="X has 3 features, but VAE.inverse_transform is expecting 2 features"):
        fitted.inverse_transform(np.zeros((2, 3)))
