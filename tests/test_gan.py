"""Image GANs (cookbook 11.1 and 11.2) and the feature network that scores them: the book's layers and traps, the
alternating steps, sample grids and TensorBoard summaries, FID and the Inception-style score with their sanity
ladder, and the gan-mnist recipe end to end on the shipped MNIST files."""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.errors import CheckpointError, Collapsed, ConfigError
from deeprecipes.models.dcgan import DCGAN
from deeprecipes.models.feature_net import (
    WEIGHTS,
    frechet_distance,
    frechet_distances,
    inception_score,
    load_feature_net,
)
from deeprecipes.registry import create_dataset
from deeprecipes.runs import api
from deeprecipes.training.callbacks import CollapseGuard
from deeprecipes.training.engine import Engine
from deeprecipes.training.strategy import Single
from deeprecipes.viz import save_tiles

# the feature network every FID and Inception-style score in the README was measured with
SHA256 = "b12697a0dfd82c4ce8e2db3f5c6453a976cd8fb4a593881bf9d59a192ac4b0cc"


@pytest.fixture(scope="module")
def mnist():
    return create_dataset("mnist", split="tf")


@pytest.fixture(scope="module")
def net():
    return load_feature_net()


def test_the_shipped_feature_network_is_pinned_and_classifies_mnist(mnist, net):
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == SHA256
    assert net.meta["recipe"] == "cnn-mnist-fast" and float(net.meta["test_accuracy"]) >= 0.99
    with torch.no_grad():
        predicted = torch.cat([net.logits(x).argmax(1) for x in mnist.test.x.split(2000)])
    assert (predicted == mnist.test.y).float().mean() >= 0.99
    assert net(mnist.test.x[:5]).shape == (5, net.num_features) and not any(p.requires_grad for p in net.parameters())


def test_a_damaged_feature_network_is_one_line(tmp_path):
    bad = tmp_path / "net.safetensors"
    bad.write_bytes(WEIGHTS.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="unreadable feature network"):
        load_feature_net(bad)


def test_fid_and_inception_score_order_real_digits_above_noise(mnist, net):
    test, train = mnist.test.x[:2000], mnist.train.x[:2000]
    noise = torch.rand(2000, 784, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(test, test, net) == pytest.approx(0.0, abs=1e-3)
    real, rand = frechet_distance(test, train, net), frechet_distance(test, noise, net)
    assert 0 < real < 50 and rand > 10 * real  # the ladder's two ends: digits against digits, noise against digits
    digits_is, _ = inception_score(test, net)
    one_class_is, _ = inception_score(test[mnist.test.y[:2000] == 1], net)
    assert 9 < digits_is <= 10 and one_class_is < 1.5  # ten classes equally likely, each confidently
    assert frechet_distances(test, {"train": train, "noise": noise}, net) == pytest.approx(
        {"train": real, "noise": rand}
    )


def test_dcgan_has_the_books_layers_and_keeps_batch_norm_and_dropout_on():
    model = DCGAN()
    g, d = model.generator, model.discriminator
    assert [type(m).__name__ for m in g if not isinstance(m, nn.LeakyReLU)] == [
        "Linear", "Unflatten", "ConvTranspose2d", "_ShiftOnlyBatchNorm", "Dropout", "ConvTranspose2d", "Flatten"
    ]  # fmt: skip
    assert g[0].out_features == 7 * 7 * 256 and g[3].out_channels == 64 and g[7].out_channels == 1
    assert d[1].out_channels == 64 and d[5].out_channels == 128 and d[10].in_features == 7 * 7 * 128
    assert d[10].out_features == 256 and d[12].out_features == 1
    assert all(m.p == 0.6 for m in model.modules() if isinstance(m, nn.Dropout))  # keep_prob 0.4
    assert 0.09 < float(d[5].weight.detach().std()) < 0.11 and not d[5].bias.any()
    model.eval()
    assert all(m.training for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.Dropout)))
    usual = DCGAN(book_modes=False).eval()
    assert not any(m.training for m in usual.modules())
    with pytest.raises(ConfigError, match="divisible by 4"):
        deeprecipes.create_model("dcgan", image_shape=[1, 30, 30])


@pytest.mark.parametrize("name", ["mlp-gan", "dcgan"])
def test_a_step_trains_d_then_g_with_their_own_optimizers(name):
    torch.manual_seed(0)
    model = deeprecipes.create_model(name)
    opts = {k: torch.optim.Adam(groups, lr=1e-3) for k, groups in model.configure_optimizers().items()}
    engine = Engine(model, optimizers=opts)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logs = model.train_step((torch.rand(16, 784),), engine)
    assert logs["d_loss"] == pytest.approx(float(logs["d_loss_real"] + logs["d_loss_fake"]))
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"generator", "discriminator"}
    hist = model.step_histograms()
    assert hist["d_real"].shape == (16, 1) and ((hist["d_fake"] >= 0) & (hist["d_fake"] <= 1)).all()
    assert model.sample_images(3, seed=1).shape == (3, 28, 28)


@pytest.mark.parametrize("g_steps", [1, 2])
def test_a_deterministic_generator_reuses_the_d_steps_images_with_the_same_result(monkeypatch, g_steps):
    def trained(reuse: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = deeprecipes.create_model("mlp-gan", g_steps=g_steps)
        monkeypatch.setattr(type(model), "_deterministic_generator", lambda self: reuse)
        opts = {k: torch.optim.Adam(groups, lr=1e-3) for k, groups in model.configure_optimizers().items()}
        engine = Engine(model, optimizers=opts)
        for _ in range(3):
            model.train_step((torch.rand(16, 784),), engine)
        return model.state_dict()

    reused, drawn_again = trained(True), trained(False)
    assert all(torch.equal(reused[k], drawn_again[k]) for k in reused)
    monkeypatch.undo()
    assert deeprecipes.create_model("mlp-gan")._deterministic_generator()
    # dropout masks and batch statistics would change if reused: the DCGANs draw their images again
    assert not DCGAN()._deterministic_generator()
    assert not deeprecipes.create_model("dcgan-radford", image_shape=[3, 32, 32])._deterministic_generator()


@pytest.mark.parametrize("recipe", ["gan-mnist", "dcgan-mnist-fast"])
def test_gan_recipes_write_grids_summaries_and_scores(recipe, tmp_path, monkeypatch):
    out = tmp_path / "run"
    sets = {"train.max_steps": 40, "train.sample_every": 20, "train.log_every": 10, "train.train_subset": 2000,
            "train.eval_subset": 500, "train.threads": 1}  # fmt: skip
    result = deeprecipes.run(recipe, out=out, overrides=sets, progress=False)
    m = result.summary["metrics"]
    assert m["fid_train_vs_test"] < m["fid_noise_vs_test"] and m["test_fid"] > m["fid_train_vs_test"]
    assert 1 <= m["test_inception_score"] <= 10 and 0 <= m["test_d_accuracy"] <= 1
    assert sorted(p.name for p in (out / "figures" / "samples").iterdir()) == ["step-0000020.png", "step-0000040.png"]
    for name in ("samples.png", "interpolations.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    events = EventAccumulator(str(out / "tb"), size_guidance={"histograms": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert {"step/d_loss_real", "step/d_loss_fake", "step/d_loss", "step/g_loss", "step/lr_g", "step/lr_d"} <= set(
        tags["scalars"]
    )
    assert {"step/d_real", "step/d_fake"} <= set(tags["histograms"]) and "samples" in tags["images"]
    assert [e.step for e in events.Histograms("step/d_real")] == [10, 20, 30, 40]
    loaded = deeprecipes.load_run(out)
    assert loaded.model.sample_images(4, seed=2).shape == (4, 28, 28)
    assert json.loads((out / "model.json").read_text())["name"] == ("mlp-gan" if recipe == "gan-mnist" else "dcgan")
    drawn = {}

    def tiles(images, path, title, ncols, normalize):
        drawn.update(shape=tuple(images.shape), ncols=ncols, title=title)
        return save_tiles(images, path, title, ncols, normalize)

    monkeypatch.setattr(api, "save_tiles", tiles)
    path = deeprecipes.sample(out, n=10, seed=5, interpolate=True)
    assert path == str(out / "figures" / "interpolations-s5.png") and Path(path).stat().st_size > 1000
    assert drawn == {"shape": (12, 28, 28), "ncols": 4, "title": f"{recipe}: 3 latent interpolations, seed 5"}


def test_gan_interpolations_walk_straight_lines_between_seeded_noise_vectors():
    torch.manual_seed(0)
    gan = deeprecipes.create_model("mlp-gan").eval()
    lines = gan.interpolate_images(3, 5, seed=7)
    assert lines.shape == (15, 28, 28)
    ends = gan.noise(6, torch.Generator().manual_seed(7))  # the first 3 draws start the lines, the next 3 end them
    with torch.no_grad():
        first, last = gan(ends[:3]).reshape(3, 28, 28), gan(ends[3:]).reshape(3, 28, 28)
        middle = gan((ends[:3] + ends[3:]) / 2).reshape(3, 28, 28)
    assert torch.allclose(lines[0::5], first, atol=1e-6) and torch.allclose(lines[4::5], last, atol=1e-6)
    assert torch.allclose(lines[2::5], middle, atol=1e-5)
    assert torch.equal(lines, gan.interpolate_images(3, 5, seed=7))
    assert not torch.equal(lines, gan.interpolate_images(3, 5, seed=8))


def test_sample_grids_need_a_model_that_draws_images(tmp_path):
    with pytest.raises(ConfigError, match="train.sample_every: model 'mlp' does not generate images"):
        deeprecipes.run("mlp-mnist-fast", out=tmp_path / "r", overrides={"train.sample_every": 10}, progress=False)


def test_the_collapse_guard_counts_steps_in_a_row_below_the_floor():
    guard = CollapseGuard("d_loss", 1e-3, steps=5)
    engine = SimpleNamespace(step_count=0, log_every=1, strategy=Single())

    def feed(*values):
        for v in values:
            engine.step_count += 1
            guard.on_train_batch_end(engine, {"d_loss": torch.tensor(v), "g_loss": torch.tensor(9.0)})

    feed(0.0, 0.0, 0.0, 0.0, 0.5)  # four below, then a healthy step: the count starts again
    feed(1e-4, 1e-4, 0.0, 0.0)
    assert guard.state_dict() == {"run": 4}
    resumed = CollapseGuard("d_loss", 1e-3, steps=5)
    resumed.load_state_dict(guard.state_dict())  # a resumed run goes on counting
    guard = resumed
    with pytest.raises(Collapsed, match=r"train d_loss stayed below 0.001 for 5 steps in a row \(steps 6 to 10\)"):
        feed(0.0)
    guard.load_state_dict({"run": "x"})  # a hand-edited state counts from 0
    assert guard.state_dict() == {"run": 0}


def test_make_engine_guards_the_models_that_name_a_collapse_signal():
    from deeprecipes.training.setup import make_engine

    def guards(model, **kw):
        return [cb for cb in make_engine(model, optimizer="adam", **kw).callbacks if isinstance(cb, CollapseGuard)]

    assert [g.steps for g in guards(deeprecipes.create_model("mlp-gan"))] == [1000]
    assert len(guards(deeprecipes.create_model("gaussian-gan"), collapse_steps=50)) == 1
    assert not guards(deeprecipes.create_model("mlp-gan"), collapse_steps=0)
    assert not guards(deeprecipes.create_model("vae"))


def test_a_collapsed_gan_stops_with_one_line_naming_the_steps(tmp_path, capsys):
    """G frozen (learning rate 1e-12) and D at 0.01: D wins outright within an epoch and d_loss sinks to ~1e-9."""
    sets = ["optimizers.g.lr=1e-12", "optimizers.d.lr=0.01", "train.log_every=10", "train.train_subset=2000",
            "train.sample_every=0", "train.collapse_steps=100"]  # fmt: skip
    args = ["run", "gan-mnist", "--threads", "1", "--steps", "3000", "--out", str(tmp_path / "a")]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train d_loss stayed below 0.001 for" in err, err
    assert "(collapse); training stopped" in err and f"the latest checkpoint is {tmp_path / 'a' / 'checkpoints'}" in err
