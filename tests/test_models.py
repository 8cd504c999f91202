"""Every registered model: builds, runs forward and backward, and its metrics have one value per sample; the
registry's signatures (what a recipe's ``[model]`` may set) keep their defaults; presets and typed parameters."""

import inspect
import typing
from typing import Annotated

import pytest
import torch

from deeprecipes.errors import ConfigError, DeepRecipesError
from deeprecipes.models.base import Model
from deeprecipes.params import Interval, OneOf, check_arguments, choices, specs, with_defaults
from deeprecipes.registry import MODELS, Registry, create_model, list_models


def _images():
    return (torch.rand(8, 784),)


def _labelled():
    return (torch.rand(8, 784), torch.randint(0, 10, (8,)))


def _ratings():
    """Users x 3883 items, ratings / 5 with 0 for unrated; item 0 rated by everyone."""
    x = (torch.rand(8, 3883) < 0.05) * torch.randint(1, 6, (8, 3883)) / 5.0
    x[:, 0] = 0.8
    return (x, x.clone())


INPUTS = {
    "tied-denoising-autoencoder": _images,
    "autoencoder": _images,
    "sparse-autoencoder": _images,
    "sparse-denoising-autoencoder": _images,
    "contractive-autoencoder": _images,
    "conv-denoising-autoencoder": _images,
    "stacked-autoencoder": _images,
    "deep-autoencoder": _images,
    "stacked-denoising-classifier": _labelled,
    "lstm-classifier": _labelled,
    "linear-regression": lambda: (torch.rand(8, 1), torch.rand(8)),
    "softmax-regression": _labelled,
    "logistic-regression": lambda: (torch.rand(8, 4), torch.randint(0, 3, (8,))),
    "perceptron": lambda: (torch.rand(8, 3), torch.randint(0, 2, (8,)).float()),
    "mlp-regressor": lambda: (torch.rand(8, 3), torch.rand(8)),
    "siamese-mlp": _labelled,
    "mlp": _labelled,
    "mlp-backprop": _labelled,
    "cnn": _labelled,
    "pca": _images,
    "kmeans": _images,
    "som": lambda: (torch.rand(8, 3),),
    "seq2seq": lambda: (
        torch.randint(4, 8, (8, 6)),
        torch.cat([torch.randint(4, 8, (8, 4)), torch.full((8, 1), 2)], 1),
    ),
    "gru-forecaster": lambda: (torch.rand(8, 40, 1), torch.rand(8, 40, 1)),
    "rnn-lm": lambda: (torch.randint(0, 65, (8, 12)), torch.randint(0, 65, (8, 12))),
    "rnn-sequence-classifier": lambda: (torch.randint(1, 11, (8, 7)), torch.randint(0, 10, (8,))),
    "rnn-sequence-tagger": lambda: (torch.randint(1, 11, (8, 7)), torch.randint(1, 12, (8, 7))),
    "rnn-encoder-decoder": lambda: (torch.randint(1, 11, (8, 7)), torch.randint(1, 12, (8, 8))),
    "rbm": _images,
    "gaussian-rbm": _images,
    "dbn": _labelled,
    "dbn-cookbook": lambda: (torch.rand(8, 2304), torch.randint(0, 7, (8,))),
    "rbm-recommender": _ratings,
    "gaussian-gan": lambda: (torch.randn(8, 1) + 4,),
    "mlp-gan": _images,
    "dcgan": _images,
    "dcgan-radford": lambda: (torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8),),
    "vae": _images,
    "conv-vae": _images,
    "capsnet": _labelled,
    # reinforcement learning: (observations, actions, targets or weights)
    "q-mlp": lambda: (torch.rand(8, 4), torch.randint(0, 2, (8,)), torch.rand(8)),
    "nature-dqn": lambda: (
        torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8),
        torch.randint(0, 4, (8,)),
        torch.rand(8),
    ),
    "minatar-dqn": lambda: (torch.rand(8, 10, 10, 4) < 0.1, torch.randint(0, 3, (8,)), torch.rand(8)),
    "rbf-q-linear": lambda: (torch.rand(8, 4), torch.randint(0, 2, (8,)), torch.rand(8)),
    "policy-mlp": lambda: (torch.rand(8, 4), torch.randint(0, 2, (8,)), torch.randn(8)),
    "sigmoid-policy": lambda: (torch.rand(8, 33600), torch.randint(0, 9, (8,)), torch.randn(8)),
    "actor-critic-mlp": lambda: (torch.rand(8, 4), torch.randint(0, 2, (8,)), torch.randn(8)),
}
# models whose parameters are one tensor (centroids, prototypes, per-action weights): the rest have at least a
# weight and a bias
ONE_PARAMETER = {"kmeans", "som", "rbf-q-linear"}


def test_every_model_has_a_test_input():
    assert set(list_models()) == set(INPUTS)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_eval(name):
    from deeprecipes.training import Engine

    torch.manual_seed(0)
    model = create_model(name)
    batch = INPUTS[name]()
    if type(model).compute_loss is not Model.compute_loss:  # GANs define only train_step
        loss, logs = model.compute_loss(batch)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        # parameters off the path (a stacked classifier's decoder biases) get no gradient
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        assert len(grads) >= (1 if name in ONE_PARAMETER else 2) and all(torch.isfinite(g).all() for g in grads)
    for v in model.eval_step(batch).values():
        assert v.shape == (8,)
    # every declared optimizer, at rate 0: the step runs and changes nothing
    opts = {k: torch.optim.SGD(groups, lr=0.0) for k, groups in model.configure_optimizers().items()}
    logs = model.train_step(batch, Engine(model, optimizers=opts))
    assert logs and all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    assert "loss" in logs or {"d_loss", "g_loss"} <= set(logs)  # image GANs log each network's loss


def test_dae_matches_blog_000_definition():
    torch.manual_seed(0)
    m = create_model("tied-denoising-autoencoder")
    assert m.W.shape == (784, 500) and m.W.abs().max() <= 0.27343437 and m.W.abs().max() > 0.27
    assert torch.count_nonzero(m.b) == 0 and torch.count_nonzero(m.b_prime) == 0
    x = torch.rand(4, 784)
    expected = torch.sigmoid(torch.sigmoid(x @ m.W + m.b) @ m.W.T + m.b_prime)
    assert torch.allclose(m(x), expected, atol=1e-6)
    kept = (m.corrupt(torch.ones(200, 784)) == 1).float().mean()
    assert abs(kept - 0.7) < 0.01  # masking keeps each pixel with probability 0.7


def test_lstm_classifier_initialised_like_tensorflow():
    m = create_model("lstm-classifier", hidden_size=128, readout_std=1.0)
    b = m.lstm.bias_ih_l0.detach()
    assert torch.all(b[128:256] == 1.0) and torch.count_nonzero(b[:128]) == 0
    assert 0.5 < m.readout.weight.std() < 1.5
    assert m(torch.rand(3, 28, 28)).shape == (3, 10)


# ----------------------------------------------------------------------------------------------------------------
# the registry: signatures, presets

# What each registered name's [model] section may set, with its default: recipes and the README's numbers depend on
# these (written from the builders before models were registered as classes and presets).
SIGNATURE_DEFAULTS = {
    "autoencoder": {
        "n_visible": 784,
        "n_hidden": 256,
        "tied": False,
        "loss": "mse",
        "decoder": "sigmoid",
        "init": "normal",
        "init_std": 1.0,
        "corruption": "none",
        "corruption_level": 0.0,
        "noise": "batch",
        "sparsity_target": 0.05,
        "sparsity_weight": 0.0,
        "contractive_weight": 0.0,
        "image_shape": (28, 28),
    },
    "cnn": {
        "channels": None,
        "kernel_size": 5,
        "padding": "same",
        "pool": None,
        "dense": None,
        "dropout": 0.5,
        "conv_dropout": 0.0,
        "init": "tf-truncated-normal",
        "image_shape": None,
        "num_classes": 10,
        "channels_last": False,
    },
    "contractive-autoencoder": {
        "n_visible": 784,
        "n_hidden": 500,
        "tied": True,
        "loss": "bce",
        "decoder": "sigmoid",
        "init": "glorot-sigmoid",
        "init_std": 1.0,
        "corruption": "none",
        "corruption_level": 0.0,
        "noise": "batch",
        "sparsity_target": 0.05,
        "sparsity_weight": 0.0,
        "contractive_weight": 0.1,
        "image_shape": (28, 28),
    },
    "conv-denoising-autoencoder": {
        "corruption": "gaussian",
        "corruption_level": 0.5,
        "filters": None,
        "image_shape": None,
    },
    "dbn": {
        "layer_sizes": None,
        "n_classes": 10,
        "k": 1,
        "block_args": None,
        "hidden_layers": None,
        "output": "linear",
        "head_init": "zeros",
        "dropout": None,
        "freeze": 0,
    },
    "dbn-cookbook": {
        "layer_sizes": None,
        "n_classes": 7,
        "k": 1,
        "block_args": None,
        "hidden_layers": None,
        "output": "sigmoid",
        "head_init": "glorot-sigmoid",
        "dropout": None,
        "freeze": 0,
    },
    "deep-autoencoder": {
        "layer_sizes": None,
        "block": "autoencoder",
        "block_args": None,
        "loss": "mse",
        "freeze": 0,
        "image_shape": None,
        "compare_pca": True,
    },
    "gaussian-gan": {"noise_dim": 4, "hidden": 32, "d_steps": 1},
    "mlp-gan": {
        "noise_dim": 100,
        "hidden": 128,
        "image_shape": [28, 28],
        "d_steps": 1,
        "g_steps": 1,
        "same_noise": True,
    },
    "dcgan": {
        "noise_dim": 100,
        "image_shape": [1, 28, 28],
        "g_channels": 64,
        "d_channels": 64,
        "d_hidden": 256,
        "dropout": 0.6,
        "slope": 0.2,
        "init_std": 0.1,
        "book_modes": True,
        "d_steps": 1,
        "g_steps": 1,
        "same_noise": True,
    },
    "dcgan-radford": {
        "noise_dim": 100,
        "image_shape": [3, 64, 64],
        "g_channels": 64,
        "d_channels": 64,
        "slope": 0.2,
        "init_std": 0.02,
        "d_steps": 1,
        "g_steps": 2,
        "same_noise": True,
    },
    "gaussian-rbm": {
        "n_visible": 784,
        "n_hidden": 500,
        "k": 1,
        "persistent": False,
        "n_chains": 20,
        "sparsity_target": 0.0,
        "sparsity_cost": 0.0,
        "init": "normal",
        "init_std": 0.01,
        "ais_runs": 100,
        "ais_betas": 1000,
        "final_ais_betas": 0,
        "image_shape": None,
        "sample_every": 1000,
        "sample_rows": 10,
        "train_monitor": True,
    },
    "gru-forecaster": {"input_dim": 1, "hidden_size": 12, "num_layers": 2, "horizon": 40, "loss": "tf-sum"},
    "kmeans": {
        "n_clusters": 8,
        "n_features": 784,
        "init": "k-means++",
        "distance": "euclidean",
        "tol": 0.0,
        "image_shape": None,
    },
    "linear-regression": {
        "n_inputs": 1,
        "n_outputs": 1,
        "init": "normal",
        "std": 1.0,
        "weight": 1.0,
        "bias": 0.2,
        "loss": "mse",
        "huber_delta": 1.0,
        "snapshot_every": 0,
    },
    "logistic-regression": {"n_inputs": 4, "n_classes": 3, "std": 0.01, "tol": 0.0001, "check_every": 10},
    "lstm-classifier": {
        "input_size": 28,
        "hidden_size": 128,
        "num_layers": 1,
        "num_classes": 10,
        "forget_bias": 1.0,
        "readout_std": 1.0,
    },
    "mlp": {
        "in_features": 784,
        "hidden_sizes": [512, 512],
        "num_classes": 10,
        "activation": "relu",
        "dropout": 0.0,
        "input_dropout": 0.0,
        "init": "glorot-uniform",
        "output_init": None,
        "init_std": 1.0,
    },
    "mlp-backprop": {
        "in_features": 784,
        "n_hidden": 30,
        "num_classes": 10,
        "init_std": 1.0,
        "manual_backprop": True,
        "weight_update": "sum",
        "eval_every": 0,
    },
    "mlp-regressor": {
        "n_inputs": 3,
        "hidden": None,
        "activation": "relu",
        "output": "sigmoid",
        "n_outputs": 1,
        "loss": "mse",
        "huber_delta": 1.0,
    },
    "pca": {"n_features": 784, "n_components": 2, "center": True, "keep_info": 0.0, "image_shape": None},
    "perceptron": {"n_inputs": 3, "bias": True, "eta": 0.4, "std": 2.0, "epsilon": 0.001},
    "rbm": {
        "n_visible": 784,
        "n_hidden": 500,
        "visible": "bernoulli",
        "k": 1,
        "persistent": False,
        "n_chains": 20,
        "sparsity_target": 0.0,
        "sparsity_cost": 0.0,
        "init": "normal",
        "init_std": 0.01,
        "sum_hidden_term": False,
        "binarize": "none",
        "ais_runs": 100,
        "ais_betas": 1000,
        "final_ais_betas": 0,
        "image_shape": None,
        "sample_every": 1000,
        "sample_rows": 10,
        "train_monitor": True,
    },
    "rbm-recommender": {
        "n_items": 3883,
        "n_hidden": 20,
        "k": 1,
        "scale": None,
        "liked": 4.0,
        "top_n": 10,
        "negative": "sample",
        "rbm_args": None,
    },
    "rnn-encoder-decoder": {
        "vocab_size": 13,
        "embed_size": 16,
        "cell": "lstm",
        "hidden_size": 128,
        "num_layers": 1,
        "dropout": 0.0,
        "eos": 11,
        "go": 12,
    },
    "rnn-lm": {
        "vocab_size": 65,
        "cell": "lstm",
        "hidden_size": 128,
        "num_layers": 2,
        "embed_size": 128,
        "dropout": 0.0,
        "init": "torch",
        "init_scale": 0.1,
        "forget_bias": 0.0,
        "carry_state": True,
        "sum_steps": False,
    },
    "rnn-sequence-classifier": {
        "vocab_size": 12,
        "embed_size": 16,
        "cell": "lstm",
        "hidden_size": 64,
        "num_layers": 1,
        "bidirectional": False,
        "dropout": 0.0,
        "num_classes": 10,
    },
    "rnn-sequence-tagger": {
        "vocab_size": 12,
        "embed_size": 16,
        "cell": "gru",
        "hidden_size": 64,
        "num_layers": 2,
        "bidirectional": True,
        "dropout": 0.0,
        "num_classes": 12,
    },
    "seq2seq": {
        "src_vocab_size": 0,
        "tgt_vocab_size": 0,
        "embedding_size": 128,
        "hidden_size": 128,
        "num_layers": 2,
        "dropout": 0.2,
        "attention": "none",
        "beam_width": 5,
        "length_penalty": 0.0,
        "max_length_factor": 2.0,
        "temperature": 1.0,
        "init_scale": 0.1,
    },
    "siamese-mlp": {
        "input_size": 784,
        "hidden_sizes": None,
        "embedding_size": 2,
        "margin": 5.0,
        "loss": "spring",
        "pairing": "balanced",
        "genuine_fraction": 0.5,
        "init_std": 0.01,
        "init_bias": 0.01,
        "knn": 5,
    },
    "softmax-regression": {"n_inputs": 784, "n_classes": 10, "init": "zeros", "std": 0.01, "double_softmax": False},
    "som": {
        "m": 30,
        "n": 30,
        "n_features": 3,
        "iterations": 400,
        "sigma": None,
        "eta": 0.5,
        "mode": "online",
        "init": "normal",
        "image_shape": None,
    },
    "sparse-autoencoder": {
        "n_visible": 784,
        "n_hidden": 256,
        "tied": False,
        "loss": "mse",
        "decoder": "sigmoid",
        "init": "normal",
        "init_std": 1.0,
        "corruption": "none",
        "corruption_level": 0.0,
        "noise": "batch",
        "sparsity_target": 0.02,
        "sparsity_weight": 7.5e-05,
        "contractive_weight": 0.0,
        "image_shape": (28, 28),
    },
    "sparse-denoising-autoencoder": {
        "n_visible": 784,
        "n_hidden": 800,
        "tied": False,
        "loss": "mse",
        "decoder": "sigmoid",
        "init": "normal",
        "init_std": 1.0,
        "corruption": "gaussian",
        "corruption_level": 0.3,
        "noise": "once",
        "sparsity_target": 0.02,
        "sparsity_weight": 0.05,
        "contractive_weight": 0.0,
        "image_shape": (28, 28),
    },
    "stacked-autoencoder": {
        "layer_sizes": None,
        "block": "autoencoder",
        "block_args": None,
        "corruption_levels": None,
        "loss": "mse",
        "corruption": "gaussian",
        "corruption_level": 0.3,
        "noise": "once",
        "freeze": 0,
        "image_shape": None,
    },
    "stacked-denoising-classifier": {
        "layer_sizes": None,
        "n_classes": 10,
        "block": "autoencoder",
        "block_args": None,
        "corruption_levels": None,
        "freeze": 0,
        "dropout": None,
    },
    "tied-denoising-autoencoder": {
        "n_visible": 784,
        "n_hidden": 500,
        "corruption": "masking",
        "corruption_level": 0.3,
        "reduction": "sum",
        "image_shape": None,
    },
    "capsnet": {
        "conv_channels": 256,
        "primary_caps": 32,
        "primary_dim": 8,
        "digit_dim": 16,
        "routing_iterations": 3,
        "kernel_size": 9,
        "decoder": [512, 1024],
        "recon_weight": 0.0005,
        "m_plus": 0.9,
        "m_minus": 0.1,
        "lambda_": 0.5,
        "init_std": 0.01,
        "image_shape": [28, 28],
        "n_classes": 10,
    },
    "conv-vae": {
        "n_latent": 2,
        "channels": [32, 64],
        "dense": 16,
        "binarize": "none",
        "iw_samples": 0,
        "image_shape": [28, 28],
    },
    "vae": {
        "n_visible": 784,
        "hidden_sizes": [500, 500],
        "n_latent": 2,
        "activation": "softplus",
        "binarize": "none",
        "iw_samples": 0,
        "image_shape": [28, 28],
        "kl_warmup": 0,
    },
    "q-mlp": {"n_inputs": 4, "n_actions": 2, "hidden": None, "loss": "huber"},
    "nature-dqn": {"frames": 4, "size": 84, "n_actions": 4, "loss": "huber"},
    "minatar-dqn": {"channels": 4, "size": 10, "n_actions": 3, "loss": "huber"},
    "rbf-q-linear": {"n_inputs": 4, "n_actions": 2, "n_components": 500, "n_samplers": 4},
    "policy-mlp": {"n_inputs": 4, "n_actions": 2, "hidden": None, "bias": True, "init": "torch"},
    "sigmoid-policy": {"n_inputs": 33600, "n_actions": 9},
    "actor-critic-mlp": {
        "n_inputs": 4,
        "n_actions": 2,
        "hidden": None,
        "shared": False,
        "value_coef": 0.5,
        "entropy_coef": 0.0,
    },
}


def test_registered_signatures_keep_their_names_and_defaults():
    got = {n: {p.name: repr(p.default) for p in MODELS.signature(n).parameters.values()} for n in list_models()}
    want = {n: {k: repr(v) for k, v in params.items()} for n, params in SIGNATURE_DEFAULTS.items()}
    assert got == want


@pytest.mark.parametrize("name", list_models())
def test_registered_annotations_resolve(name):
    """The recipe checks read every parameter's type from the registered entry: none may be left unresolved."""
    hints = typing.get_type_hints(MODELS.get(name))
    assert set(MODELS.signature(name).parameters) <= set(hints)


class Toy:
    """A toy class to register."""

    def __init__(self, size: int = 1, kind: str = "a", scale: float = 0.5) -> None:
        self.size, self.kind, self.scale = size, kind, scale


def test_presets_replace_defaults_and_fix_arguments():
    reg = Registry("model")
    reg.register("toy")(Toy)
    reg.register_preset("toy-b", Toy, doc="kind b, scale fixed", fixed={"scale": 2.0}, kind="b")
    reg.register_preset("toy-b3", "toy-b", size=3)
    assert list(reg.signature("toy").parameters) == ["size", "kind", "scale"]
    assert {k: p.default for k, p in reg.signature("toy-b").parameters.items()} == {"size": 1, "kind": "b"}
    built = reg.create("toy-b3")
    assert (type(built), built.size, built.kind, built.scale) == (Toy, 3, "b", 2.0)
    assert reg.create("toy-b", size=4, kind="c").kind == "c"
    assert reg.get("toy-b").__doc__ == "kind b, scale fixed" and reg.get("toy").__doc__ == Toy.__doc__
    with pytest.raises(ConfigError, match="unknown argument 'scale' for model 'toy-b'"):
        reg.create("toy-b", scale=1.0)
    with pytest.raises(ConfigError, match="argument 'size' must be an integer"):
        reg.create("toy", size="big")
    with pytest.raises(TypeError, match="takes no argument colour"):
        reg.register_preset("toy-c", Toy, colour="red")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register_preset("toy", Toy, size=2)
    reg.register_preset("toy-b", Toy, fixed={"scale": 2.0}, kind="b")  # the same again is fine


def test_presets_of_the_package_build_their_class():
    assert type(create_model("gaussian-rbm")).__name__ == "RBM" and create_model("gaussian-rbm").visible == "gaussian"
    assert "visible" not in MODELS.signature("gaussian-rbm").parameters
    assert create_model("sparse-autoencoder").sparsity_weight == 7.5e-5
    assert create_model("dbn-cookbook", layer_sizes=[20, 8]).stack.sizes == [20, 8]


# ----------------------------------------------------------------------------------------------------------------
# typed parameters

Level = Annotated[float, Interval(0.0, 1.0, "left")]
Mode = Annotated[str, OneOf("on", "off")]


def typed(count: Annotated[int, Interval(1)] = 1, level: Level = 0.0, mode: Mode = "on", width: Level | None = None):
    check_arguments(typed, locals())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 0}, "model.count must be an integer >= 1, got 0"),
        ({"count": True}, "model.count must be an integer >= 1, got True"),
        ({"level": 1.0}, r"model.level must be in \[0, 1\), got 1.0"),
        ({"mode": "auto"}, "model.mode must be one of on, off; got 'auto'"),
        ({"width": -0.5}, r"model.width must be in \[0, 1\), got -0.5"),
    ],
)
def test_annotations_give_one_line_errors_naming_the_parameter(kwargs, message):
    typed(width=0.5)
    typed(width=None)
    with pytest.raises(ConfigError, match=message):
        typed(**kwargs)


def test_specs_and_choices_read_the_annotations():
    spec = specs(typed)
    assert spec["count"].base is int and spec["count"].interval == Interval(1)
    assert spec["width"].optional and spec["width"].interval == Interval(0.0, 1.0, "left")
    assert choices(Mode) == ("on", "off") and spec["mode"].options == ("on", "off")
    assert typing.get_type_hints(typed)["count"] is int  # what the recipe checks see: the base type


class Sized(torch.nn.Module):
    def __init__(self, size: int = 1, *, kind: str = "a") -> None:
        super().__init__()
        self.size, self.kind = size, kind


class Resized(Sized):
    __init__ = with_defaults(
        Sized.__init__, "Resized.__init__", annotations={"size": Annotated[int, Interval(2)]}, size=3, kind="b"
    )


def test_with_defaults_gives_a_real_signature_with_other_defaults_and_bounds():
    assert {k: p.default for k, p in inspect.signature(Resized).parameters.items()} == {"size": 3, "kind": "b"}
    assert (Resized().size, Resized().kind, Resized(5, kind="c").size) == (3, "b", 5)
    assert (Sized().size, Sized().kind) == (1, "a")  # the class it came from keeps its own
    assert specs(Resized.__init__)["size"].interval == Interval(2) and specs(Sized.__init__)["size"].interval is None
    assert Resized.__init__.__qualname__ == "Resized.__init__"
    with pytest.raises(TypeError, match="takes no default for colour"):
        with_defaults(Sized.__init__, "Coloured.__init__", colour="red")


# 0 means something for these: no AIS estimate, no sample figure, one-hot input, never stop early
ZERO_ALLOWED = {("rbm", "ais_betas"), ("gaussian-rbm", "ais_betas"), ("rbm", "sample_rows")}
ZERO_ALLOWED |= {("gaussian-rbm", "sample_rows"), ("rnn-lm", "embed_size"), ("logistic-regression", "check_every")}


def _bad_values(default):
    """Values no size, count, rate or scale may take, by the parameter's default."""
    if isinstance(default, bool):
        return []
    if isinstance(default, int) and default > 0:
        return [0, -3]
    if isinstance(default, float):
        return [float("nan")]
    if isinstance(default, (list, tuple)) and default and all(isinstance(v, int) for v in default):
        return [[0], [-2]]
    return []


@pytest.mark.parametrize("name", list_models())
def test_impossible_sizes_and_nan_are_one_config_error_line(name):
    """Every model's sizes and counts below 1, and NaN in any float, stop at construction with one line that names
    the argument (never a torch traceback, never a model that fails later)."""
    for param in MODELS.signature(name).parameters.values():
        for value in _bad_values(param.default):
            if value == 0 and (name, param.name) in ZERO_ALLOWED:
                continue
            with pytest.raises(DeepRecipesError) as caught:
                create_model(name, **{param.name: value})
            assert "\n" not in str(caught.value) and param.name in str(caught.value), (name, param.name, value)
