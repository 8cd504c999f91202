"""Activation functions of the cookbook (3.1) and the course (A5), and one picture of them all with derivatives.

The functions are torch one-liners (models use ``torch.nn`` directly); they live here, beside the drawing code,
because showing them is what this module is for. Derivatives come from autograd, except where the function has
none (the step's derivative is 0 away from 0 and undefined at 0; it is drawn as 0 with the point marked).

    from deeprecipes.viz.activations import save_activations
    save_activations("activations.png")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import ConfigError
from . import pyplot, save_figure

__all__ = ["ACTIVATIONS", "activation", "derivative", "save_activations", "step"]


def step(x: torch.Tensor) -> torch.Tensor:
    """Threshold: 1 where x >= 0, else 0 (the cookbook's ``tf.where(tf.less(x, 0), 0, 1)``)."""
    return (x >= 0).to(x.dtype)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(x)  # ln(1 + e^x), computed stably


#: name -> (function, one-line description). ``softmax`` normalises over the whole vector it is given.
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    "identity": (lambda x: x, "x"),
    "step": (step, "1 if x >= 0 else 0"),
    "sigmoid": (torch.sigmoid, "1 / (1 + e^-x)"),
    "tanh": (torch.tanh, "tanh x"),
    "relu": (torch.relu, "max(0, x)"),
    "leaky-relu": (lambda x: torch.nn.functional.leaky_relu(x, 0.1), "x if x > 0 else 0.1 x"),
    "elu": (torch.nn.functional.elu, "x if x > 0 else e^x - 1"),
    "softplus": (_softplus, "ln(1 + e^x)"),
    "softmax": (lambda x: torch.softmax(x, dim=-1), "e^x_i / sum_j e^x_j"),
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function called ``name`` (see :data:`ACTIVATIONS`); ConfigError listing the names otherwise."""
    key = name.lower().replace("_", "-")
    if key not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key][0]


def derivative(name: str, x: torch.Tensor) -> torch.Tensor:
    """d f(x_i) / d x_i at each point of the 1-D tensor x (for softmax: the diagonal of its Jacobian,
    p_i (1 - p_i)). The step's derivative is returned as 0 everywhere (it is undefined at 0)."""
    fn = activation(name)
    if name.lower() == "step":
        return torch.zeros_like(x)
    if name.lower() == "softmax":
        p = fn(x)
        return p * (1 - p)
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


def save_activations(
    path: str | Path, *, x_min: float = -5.0, x_max: float = 5.0, points: int = 401, title: str = ""
) -> Path:
    """Draw every activation of :data:`ACTIVATIONS` with its derivative, one panel each, into one PNG.

    Parameters
    ----------
    path : str or Path
        The PNG file to write (folders are created; written atomically).
    x_min, x_max : float
        The range of x.
    points : int
        Points on the x grid. Softmax is drawn as the book did (cookbook 3.1): softmax of the whole grid as one
        vector, so its values depend on the grid; its curve is scaled to the panel (see its label).
    title : str
        Figure title; default "Activation functions and their derivatives".

    Returns
    -------
    Path
        The file written.
    """
    if not x_min < x_max:
        raise ConfigError(f"activations: x_min ({x_min}) must be below x_max ({x_max})")
    if points < 3:
        raise ConfigError(f"activations: points must be >= 3, got {points}")
    plt = pyplot()
    x = torch.linspace(x_min, x_max, points, dtype=torch.float64)
    names = list(ACTIVATIONS)
    ncols = 3
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        fn, formula = ACTIVATIONS[name]
        y = fn(x)
        d = derivative(name, x)
        scale = 1.0
        if name == "softmax":  # tiny values over a long vector: show them relative to their maximum
            scale = 1.0 / float(y.max())
        label = f"f(x) = {formula}" + (f"  (x {scale:.3g})" if scale != 1.0 else "")
        ax.plot(x.numpy(), (y * scale).numpy(), color="tab:blue", lw=2, label=label)
        ax.plot(x.numpy(), (d * scale).numpy(), color="tab:orange", lw=1.5, ls="--", label="f'(x)")
        if name == "step":
            ax.plot([0], [0], marker="o", mfc="white", color="tab:orange")  # undefined at 0
            ax.text(0.1, 0.08, "f'(0) undefined", fontsize=7, color="tab:orange")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("activity of neuron")
        ax.set_ylabel("output of neuron")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title or "Activation functions and their derivatives")
    fig.tight_layout()
    return save_figure(fig, Path(path))
