"""The convolutional denoising autoencoder of Cookbook recipe 8.4: shapes, argument and data checks, and a short
run of its recipe on real MNIST."""

import pytest
import torch
import torch.nn.functional as F

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model, list_models, list_recipes
from deeprecipes.training import Engine

NAME = "conv-denoising-autoencoder"
SMOKE = {"train.epochs": 1, "train.max_steps": 20, "train.eval_subset": 1000}  # what run(smoke=True) sets
STEPS = {"train.max_steps": 60}  # a few more steps than a smoke run, so the loss has clearly fallen (~15 s)


def test_registered_with_its_recipe():
    assert NAME in list_models() and NAME in list_recipes()
    cfg = load_recipe(NAME)
    assert cfg.model.name == NAME and cfg.target.metric == "test_bce" and cfg.target.value is None
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.train.batch_size, cfg.train.epochs) == ("adam", 0.001, 100, 10)
    assert deeprecipes.run(NAME, check=True).model.args["corruption_level"] == 0.5


@pytest.mark.parametrize("shape", [(5, 784), (5, 1, 28, 28), (5, 28, 28)])
def test_shapes(shape):
    torch.manual_seed(0)
    m = create_model(NAME)
    x = torch.rand(shape)
    assert m.encode(x).shape == (5, 16, 4, 4)
    assert m.decode(m.encode(x)).shape == (5, 1, 28, 28)
    z = m(x)
    assert z.shape == x.shape and ((z > 0) & (z < 1)).all()
    for v in m.eval_step((x, torch.zeros(5, dtype=torch.long))).values():
        assert v.shape == (5,) and torch.isfinite(v).all()
    images = m.image_summaries((x,))
    assert set(images) == {"clean", "corrupted", "reconstructed"}
    assert all(v.shape == (5, 28, 28) and v.min() >= 0 and v.max() <= 1 for v in images.values())
    filters = m.weight_images()["filters"]
    assert filters.shape == (32, 3, 3) and filters.min() >= 0 and filters.max() <= 1


def test_layers_as_in_the_book():
    m = create_model(NAME)
    convs = [m.enc1, m.enc2, m.enc3, m.dec1, m.dec2, m.dec3, m.out]
    assert [c.out_channels for c in convs] == [32, 32, 16, 16, 32, 32, 1]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)  # tf.layers.conv2d: zero biases, Glorot kernels
    bound = (6 / (9 * 32 + 9 * 32)) ** 0.5
    assert m.enc2.weight.abs().max() <= bound and m.enc2.weight.abs().max() > 0.9 * bound
    assert m.sizes == [(28, 28), (14, 14), (7, 7)] and m.code_size == (4, 4)


def test_loss_is_mean_cross_entropy_against_the_clean_image():
    torch.manual_seed(0)
    m = create_model(NAME, corruption="none")
    x = torch.rand(4, 784)
    loss, _ = m.compute_loss((x,))
    logits = m.decode(m.encode(x)).reshape(4, 784)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, x))
    noisy = create_model(NAME)  # gaussian 0.5: the input is corrupted, the target stays clean
    torch.manual_seed(1)
    assert not torch.equal(noisy.corrupt(x), x) and noisy.corrupt(x).min() >= 0 and noisy.corrupt(x).max() <= 1


@pytest.mark.parametrize("level", [1.5, -0.1])
def test_bad_corruption_level_is_named(level):
    with pytest.raises(ConfigError, match=r"model\.corruption_level must be in \[0, 1\]"):
        create_model(NAME, corruption_level=level)
    with pytest.raises(ConfigError, match="corruption_level"):
        deeprecipes.run(NAME, overrides={"model.corruption_level": level}, check=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"corruption": "blur"}, "model.corruption must be one of"),
        ({"filters": [32, 16]}, "model.filters must be 3 positive integers"),
        ({"image_shape": [28]}, "model.image_shape must be 2"),
    ],
)
def test_other_bad_arguments(args, message):
    with pytest.raises(ConfigError, match=message):
        create_model(NAME, **args)


def test_check_data_wants_values_in_0_1():
    m = create_model(NAME)
    m.check_data(torch.rand(10, 784))
    m.check_data(torch.rand(10, 1, 28, 28).round())  # exactly 0 and 1 are fine
    nan = torch.rand(10, 784)
    nan[3, 5] = float("nan")
    for bad in (torch.rand(10, 784) * 255, torch.randn(10, 784), nan):
        with pytest.raises(ConfigError, match=r"data outside \[0, 1\] \(min .*, max .*\): the cross-entropy"):
            m.check_data(bad)
    with pytest.raises(ConfigError, match=r"expects images of 28x28 = 784 values each"):
        m.check_data(torch.rand(10, 100))


def _untrained_bce(overrides):
    cfg = load_recipe(NAME, overrides)
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model.name, **cfg.model.args)
    data = create_dataset(cfg.data.name, **cfg.data.args)
    model.check_data(data.train.tensors()[0])
    test = data.test.subset(cfg.train.eval_subset)
    return Engine(model).evaluate(Batches(*test.tensors(), batch_size=1000, shuffle=False))["bce"]


def test_recipe_learns_on_real_mnist(tmp_path):
    start = _untrained_bce({**SMOKE, **STEPS})
    result = deeprecipes.run(NAME, smoke=True, overrides=STEPS, out=tmp_path / "run", progress=False)
    end = result.metrics["test_bce"]
    assert 0.6 < start < 0.8  # logits near 0 at the start: about log 2
    assert end < 0.6 * start, (start, end)
    assert result.metrics["test_mse"] < 0.1
    assert result.summary["target"] == {
        "metric": "test_bce",
        "published": None,
        "ours": end,
        "mode": "min",
        "met": None,
        "source": "TensorFlow 1.x Deep Learning Cookbook, recipe 8.4 (qualitative only)",
    }
    assert (tmp_path / "run" / "figures" / "reconstructions.png").exists()
