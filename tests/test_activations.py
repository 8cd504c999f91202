"""Activation functions (cookbook 3.1, course A5): values, derivatives and the one picture of them all."""

from __future__ import annotations

import math

import pytest
import torch

from deeprecipes.errors import ConfigError
from deeprecipes.viz.activations import ACTIVATIONS, activation, derivative, save_activations

X = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64)


def test_values():
    assert activation("step")(X).tolist() == [0, 0, 1, 1, 1]
    assert activation("relu")(X).tolist() == [0, 0, 0, 0.5, 3]
    assert activation("identity")(X).equal(X)
    assert activation("leaky_relu")(X).tolist() == pytest.approx([-0.3, -0.05, 0, 0.5, 3])
    assert activation("elu")(X).tolist() == pytest.approx([math.exp(-3) - 1, math.exp(-0.5) - 1, 0, 0.5, 3])
    assert activation("softplus")(X).tolist() == pytest.approx([math.log1p(math.exp(v)) for v in X.tolist()])
    assert activation("sigmoid")(X).tolist() == pytest.approx([1 / (1 + math.exp(-v)) for v in X.tolist()])
    p = activation("softmax")(X)
    assert float(p.sum()) == pytest.approx(1.0) and bool((p > 0).all())
    assert set(ACTIVATIONS) >= {"step", "sigmoid", "tanh", "relu", "softplus", "elu", "leaky-relu", "identity"}


def test_derivatives():
    s = torch.sigmoid(X)
    assert torch.allclose(derivative("sigmoid", X), s * (1 - s))
    assert torch.allclose(derivative("tanh", X), 1 - torch.tanh(X) ** 2)
    assert torch.allclose(derivative("softplus", X), s)
    assert derivative("relu", X).tolist() == [0, 0, 0, 1, 1]
    assert derivative("step", X).tolist() == [0, 0, 0, 0, 0]
    assert torch.allclose(derivative("elu", X[:2]), torch.exp(X[:2]))
    p = torch.softmax(X, 0)
    assert torch.allclose(derivative("softmax", X), p * (1 - p))


def test_unknown_activation():
    with pytest.raises(ConfigError, match="known: identity, step"):
        activation("swish")


def test_save_activations(tmp_path):
    path = save_activations(tmp_path / "sub" / "act.png")
    assert path == tmp_path / "sub" / "act.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20000
    assert not list(path.parent.glob(".*"))  # no temporary file left behind
    with pytest.raises(ConfigError, match="x_min"):
        save_activations(tmp_path / "bad.png", x_min=1.0, x_max=-1.0)


def test_activations_command(tmp_path, capsys):
    from deeprecipes.cli import main

    out = tmp_path / "a.png"
    assert main(["activations", "--out", str(out)]) == 0
    assert out.stat().st_size > 20000 and str(out) in capsys.readouterr().out
    assert main(["activations", "--out", str(out), "--range", "2", "1"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: activations: x_min")
