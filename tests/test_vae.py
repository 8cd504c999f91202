"""The VAE (cookbook 11.4): the ELBO's two terms, the importance-weighted likelihood bound, dynamic binarisation,
pictures, and the vae-mnist recipe end to end on the shipped MNIST files."""

import contextlib
import json

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.errors import ConfigError
from deeprecipes.models.vae import VAE
from deeprecipes.registry import create_dataset


def test_the_kl_term_is_the_closed_form_of_torch_distributions():
    torch.manual_seed(0)
    model = VAE(n_visible=20, hidden_sizes=[16], n_latent=3, image_shape=[4, 5])
    x = torch.rand(6, 20)
    mu, log_var = model.posterior(x)
    expected = kl_divergence(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(1)
    _, kl = model.terms(x)
    assert torch.allclose(kl, expected, atol=1e-5)


def test_the_importance_weighted_bound_is_above_the_elbo_and_tightens_with_k():
    torch.manual_seed(0)
    model = VAE(n_visible=20, hidden_sizes=[16], n_latent=3, image_shape=[4, 5])
    x = torch.bernoulli(torch.full((256, 20), 0.3))
    elbo = torch.stack([model.eval_step((x,))["elbo"].mean() for _ in range(40)]).mean()
    one = torch.stack([model.log_likelihood(x, 1).mean() for _ in range(40)]).mean()
    many = model.log_likelihood(x, 500).mean()
    assert float(one) == pytest.approx(float(elbo), abs=0.1)  # k = 1 is the ELBO, in expectation
    assert many > one + 0.3  # Burda et al.: log p(x) >= L_k >= L_1


class _Engine:
    """What ``train_step`` needs of the engine: its step count, autocast, and a step that keeps the loss."""

    def __init__(self, step_count):
        self.step_count, self.loss = step_count, None

    def autocast(self):
        return contextlib.nullcontext()

    def step(self, loss):
        self.loss = loss


def test_kl_warmup_weighs_the_kl_term_by_the_step_count_then_leaves_the_elbo():
    x = torch.rand(8, 20)
    for warmup, step, weight in [(4, 0, 0.25), (4, 1, 0.5), (4, 3, 1.0), (4, 100, 1.0), (0, 0, 1.0)]:
        torch.manual_seed(0)
        model = VAE(n_visible=20, hidden_sizes=[16], n_latent=3, image_shape=[4, 5], kl_warmup=warmup)
        engine = _Engine(step)
        torch.manual_seed(1)
        logs = model.train_step((x,), engine)
        torch.manual_seed(1)
        recon, kl = model.terms(x)
        assert float(engine.loss) == pytest.approx(float((recon + weight * kl).mean()), rel=1e-6)
        assert float(logs["kl"]) == pytest.approx(float(kl.mean()), rel=1e-6)  # the KL term is logged unweighted
        assert ("kl_weight" in logs) == bool(warmup)
    assert "kl_weight" not in model.state_dict()  # derived from the step count, not a weight of the model


def test_dynamic_binarisation_fixes_the_evaluation_images_and_redraws_training_batches():
    data = create_dataset("mnist")
    model = VAE(binarize="dynamic")
    prepared = model.prepare_data(data)
    test = prepared.test.x
    assert set(test.unique().tolist()) == {0.0, 1.0}
    again = VAE(binarize="dynamic").prepare_data(create_dataset("mnist")).test.x
    assert torch.equal(test, again)  # one seeded draw: every evaluation scores the same images
    train = prepared.train.x[:50]
    assert not set(train.unique().tolist()) <= {0.0, 1.0}  # grey levels, drawn afresh per batch in training
    assert not torch.equal(model._binarized(train), model._binarized(train))


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match="model.n_latent must be an integer >= 1"):
        deeprecipes.create_model("vae", n_latent=0)
    with pytest.raises(ConfigError, match="model.binarize must be one of none, dynamic"):
        deeprecipes.create_model("vae", binarize="yes")
    with pytest.raises(ValueError, match="n_latent = 2"):
        VAE(n_latent=5).canvas()


def test_vae_mnist_learns_draws_its_pictures_and_samples_from_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    sets = {"train.train_subset": 5000, "train.eval_subset": 500, "model.iw_samples": 50, "train.threads": 1}
    result = deeprecipes.run("vae-mnist", epochs=3, out=out, overrides=sets, progress=False)
    m = result.summary["metrics"]
    assert m["test_loss"] == pytest.approx(-m["test_elbo"]) and m["test_loss"] < 210  # 543 untrained
    assert m["test_nll"] < m["test_loss"]  # the k = 50 bound is tighter than one draw
    assert m["active_units"] == 2  # both latent units in use: none collapsed to the prior
    for name in ("canvas.png", "samples.png", "codes.png", "reconstructions.png"):
        assert (out / "figures" / name).stat().st_size > 1000, name
    assert main(["-q", "sample", str(out), "--n", "16", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "figures" / "samples-s3.png")
    assert main(["-q", "sample", str(out), "--n", "16", "--interpolate", "--out", str(tmp_path / "lines.png")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "lines.png")
    assert (tmp_path / "lines.png").stat().st_size > 1000
    loaded = deeprecipes.load_run(out)
    assert torch.equal(loaded.model.sample_images(4, seed=1), loaded.model.sample_images(4, seed=1))
    assert json.loads((out / "model.json").read_text())["args"]["n_latent"] == 2
    scored = deeprecipes.evaluate(out, scores=True)  # the end-of-run scores again, on all 10,000 test images
    assert scored["test_nll"] < scored["test_loss"] and "test_nll" not in deeprecipes.evaluate(out)


def test_latent_interpolations_run_from_one_image_to_the_other():
    torch.manual_seed(0)
    model = VAE(n_visible=20, hidden_sizes=[16], n_latent=3, image_shape=[4, 5])
    x = torch.rand(5, 20)
    lines = model.interpolations(x, steps=6)
    assert lines.shape == (12, 4, 5)  # 2 pairs (the fifth image has no partner), 6 steps each
    assert torch.allclose(lines[0].reshape(-1), model(x[:1])[0], atol=1e-6)
    assert torch.allclose(lines[11].reshape(-1), model(x[3:4])[0], atol=1e-6)


def test_prior_interpolations_are_seeded_straight_lines_between_two_draws():
    torch.manual_seed(0)
    model = VAE(n_visible=20, hidden_sizes=[16], n_latent=3, image_shape=[4, 5])
    lines = model.interpolate_images(2, 4, seed=1)
    assert lines.shape == (8, 4, 5)
    ends = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))  # rows start at draws 0, 1; end at 2, 3
    assert torch.allclose(lines[0::4].reshape(2, -1), model.decode(ends[:2]), atol=1e-6)
    assert torch.allclose(lines[3::4].reshape(2, -1), model.decode(ends[2:]), atol=1e-6)
    assert torch.equal(lines, model.interpolate_images(2, 4, seed=1))


def test_conv_vae_has_keras_ios_layers_and_shares_the_elbo():
    from torch import nn

    model = deeprecipes.create_model("conv-vae")
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.stride) for c in convs] == [(32, (2, 2)), (64, (2, 2))]
    assert model.mu.in_features == 16 and model.mu.out_features == 2
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [64, 32, 1]
    x = torch.rand(3, 784)
    assert model.decoder(model.encode(x)).shape == (3, 784) and model.log_likelihood(x, 4).shape == (3,)
    loss, logs = model.compute_loss((x,))
    assert float(loss) == pytest.approx(float(logs["recon"] + logs["kl"]), rel=1e-5)
    with pytest.raises(ConfigError, match="divisible by 4"):
        deeprecipes.create_model("conv-vae", image_shape=[30, 30])
