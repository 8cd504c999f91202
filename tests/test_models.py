"""Every registered model: builds, runs forward and backward, and its metrics have one value per sample."""

import pytest
import torch

from deeprecipes.models.base import Model
from deeprecipes.registry import create_model, list_models


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
}
# models whose parameters are one tensor (centroids, prototypes): the rest have at least a weight and a bias
ONE_PARAMETER = {"kmeans", "som"}


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
    assert "loss" in logs and all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())


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
