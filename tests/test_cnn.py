"""The convolutional classifier (course A8, cookbook 4.1, Keras mnist_cnn): the convolution maths on the cookbook's
worked example, shapes, initialisation schemes, argument and data checks, feature maps, pictures, and its recipes."""

import pytest
import torch
import torch.nn.functional as F

import deeprecipes
from deeprecipes.data.base import ArrayData, DataSplits
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.models.cnn import CNN
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_model, list_models, list_recipes

RECIPES = ("cnn-mnist-course", "cnn-mnist-experts", "cnn-mnist-cookbook", "cnn-mnist-fast", "cnn-fashion-mnist")


# ------------------------------------------------------------------------------------------------------------------
# the convolution maths


def test_cookbook_worked_convolution_example():
    """Cookbook chapter 4 intro: 5x5 image I, 3x3 kernel K, valid convolution -> [[4,3,4],[2,4,3],[2,3,4]].

    torch's conv2d is a cross-correlation (no kernel flip); K is symmetric under a 180-degree turn, so the flipped
    and unflipped kernels agree and the book's convolution is reproduced either way."""
    image = torch.tensor(
        [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.float32
    )
    kernel = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    assert torch.equal(kernel, kernel.flip(0, 1))
    expected = torch.tensor([[4, 3, 4], [2, 4, 3], [2, 3, 4]], dtype=torch.float32)
    out = F.conv2d(image[None, None], kernel[None, None])
    assert torch.equal(out[0, 0], expected)
    assert torch.equal(F.conv2d(image[None, None], kernel.flip(0, 1)[None, None])[0, 0], expected)
    # zero padding ("SAME") keeps 5x5, and its centre is the valid result
    same = F.conv2d(image[None, None], kernel[None, None], padding=1)[0, 0]
    assert same.shape == (5, 5) and torch.equal(same[1:4, 1:4], expected)


def test_a_cnn_layer_computes_that_convolution():
    model = CNN(channels=(1,), kernel_size=3, padding="valid", pool=(1,), dense=(), image_shape=(1, 5, 5))
    with torch.no_grad():
        model.convs[0].weight.copy_(torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]]).reshape(1, 1, 3, 3))
        model.convs[0].bias.zero_()
    image = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0.0]])
    (maps,) = model.feature_maps(image.reshape(1, 25))
    assert maps[0, 0].tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]


# ------------------------------------------------------------------------------------------------------------------
# the network


@pytest.mark.parametrize("shape", [(3, 784), (3, 28, 28), (3, 1, 28, 28)])
def test_course_net_shapes(shape):
    torch.manual_seed(0)
    model = create_model("cnn")
    assert model.flat_size == 7 * 7 * 64  # 28 -> pool 14 -> pool 7, 64 maps: 3136 (digest A8)
    assert [tuple(c.weight.shape) for c in model.convs] == [(32, 1, 5, 5), (64, 32, 5, 5)]
    assert tuple(model.dense[0].weight.shape) == (1024, 3136) and tuple(model.readout.weight.shape) == (10, 1024)
    assert model(torch.rand(shape)).shape == (3, 10)
    maps = model.feature_maps(torch.rand(shape))
    assert [tuple(m.shape) for m in maps] == [(3, 32, 28, 28), (3, 64, 14, 14)]


def test_keras_mnist_cnn_shapes():
    """conv 3x3 32 valid (26), conv 3x3 64 valid (24), max-pool 2 (12): 64 * 12 * 12 = 9216 features, dense 128."""
    model = create_model(
        "cnn", channels=[32, 64], kernel_size=3, padding="valid", pool=[1, 2], dense=[128], conv_dropout=0.25
    )
    assert model.flat_size == 9216
    assert model(torch.rand(2, 784)).shape == (2, 10)


def test_same_pooling_rounds_up_valid_rounds_down():
    same = create_model("cnn", channels=[4, 4, 4], pool=[2, 2, 2], dense=[8])  # 28 -> 14 -> 7 -> 4 (TF SAME)
    valid = create_model("cnn", channels=[4], kernel_size=4, padding="valid", pool=[2], dense=[8])  # 25 -> 12
    assert same.flat_size == 4 * 4 * 4 and valid.flat_size == 4 * 12 * 12
    assert same(torch.rand(2, 784)).shape == valid(torch.rand(2, 784)).shape == (2, 10)


def test_init_schemes():
    torch.manual_seed(0)
    tf = create_model("cnn", init="tf-truncated-normal")
    w = tf.dense[0].weight  # 3136 x 1024 draws
    assert w.abs().max() <= 0.2  # truncated at two standard deviations
    assert 0.08 < w.std() < 0.095  # std of N(0, 0.1) truncated at +-2 std: 0.088
    assert all(torch.all(b == 0.1) for b in (tf.convs[0].bias, tf.dense[0].bias, tf.readout.bias))
    rn = create_model("cnn", init="random-normal")
    assert 0.98 < rn.dense[0].weight.std() < 1.02 and 0.9 < rn.dense[0].bias.std() < 1.1
    gl = create_model("cnn", init="glorot")
    bound = (6 / (3136 + 1024)) ** 0.5
    assert gl.dense[0].weight.abs().max() <= bound and torch.all(gl.dense[0].bias == 0)
    torch.manual_seed(0)
    default = create_model("cnn", init="torch").dense[0].weight
    assert default.abs().max() <= 1 / 3136**0.5 + 1e-7  # torch's kaiming_uniform(a=sqrt 5) bound


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = create_model("cnn", channels=[4, 8], dense=[32], dropout=0.5, conv_dropout=0.25)
    x = torch.rand(4, 784)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    a = create_model("cnn", channels=[4, 8], dense=[16])
    b = create_model("cnn", channels=[4, 8], dense=[16], channels_last=True)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = torch.rand(3, 784)
    torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)


def test_learns_one_batch():
    torch.manual_seed(0)
    model = create_model("cnn", channels=[4, 8], dense=[64], dropout=0.0, init="torch")
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss, logs = model.compute_loss((x, y))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first and logs["accuracy"] > 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pool": [2]}, "model.pool"),
        ({"init": "he"}, "model.init"),
        ({"padding": "SAME"}, "model.padding"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"channels": []}, "model.channels"),
        ({"channels": [4, 4, 4, 4, 4, 4], "pool": [2] * 6, "padding": "valid"}, "too small"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("cnn", **kwargs)


def test_bad_data():
    model = create_model("cnn", channels=[4], dense=[8])
    with pytest.raises(ConfigError, match="1x28x28 = 784"):
        model.check_data(torch.rand(10, 100))
    with pytest.raises(DataError, match="784"):
        model(torch.rand(2, 100))


# ------------------------------------------------------------------------------------------------------------------
# pictures


def test_weight_images_and_feature_map_figures(tmp_path):
    torch.manual_seed(0)
    model = create_model("cnn")
    imgs = model.weight_images()
    assert imgs["conv1-filters"].shape == (32, 5, 5) and imgs["conv2-filters-input0"].shape == (64, 5, 5)
    x = torch.rand(3, 784)
    data = DataSplits("fake", "tf", train=ArrayData(x), test=ArrayData(x, torch.tensor([0, 2, 1])))
    files = model.figures(data, tmp_path, "t")
    assert [f.name for f in files] == ["feature-maps-conv1.png", "feature-maps-conv2.png"]
    assert all(f.stat().st_size > 1000 for f in files)
    conv1 = model.feature_maps(x[1:2])[0]
    assert (conv1 < 0).any()  # pre-ReLU, as the course drew them


# ------------------------------------------------------------------------------------------------------------------
# recipes


def test_registered_with_recipes():
    assert "cnn" in list_models()
    for name in RECIPES:
        assert name in list_recipes()
        cfg = load_recipe(name)
        assert cfg.model.name == "cnn" and cfg.target.metric == "test_accuracy"
        deeprecipes.run(name, check=True)


def test_course_recipe_is_the_course_net():
    cfg = load_recipe("cnn-mnist-course")
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.train.batch_size, cfg.train.max_steps) == ("adam", 1e-4, 50, 1100)
    a = cfg.model.args
    assert (a["channels"], a["kernel_size"], a["dense"], a["dropout"], a["init"]) == (
        [32, 64],
        5,
        [1024],
        0.5,
        "tf-truncated-normal",
    )
    assert cfg.data.args["split"] == "tf" and load_recipe("cnn-mnist-experts").train.max_steps == 20000
    book = load_recipe("cnn-mnist-cookbook")
    assert (book.train.batch_size, book.train.max_steps, book.model.args["dropout"]) == (128, 500, 0.15)
    assert (book.optimizer.lr, book.model.args["init"]) == (0.001, "random-normal")
