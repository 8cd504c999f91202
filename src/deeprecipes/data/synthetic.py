"""Small generated datasets the tutorials build in code: noisy points on a line, and a boolean truth table.

Registered datasets:

``synthetic-linear``
    The course's linear-regression data (Module 1, "Linear Regression with TensorFlow"): x ~ U[0, 1), y = 3x + 2
    plus N(0, 0.1) noise; 100 training points and, our addition, 100 test points drawn the same way.
``boolean-function``
    The truth table of the cookbook's perceptron recipe (3.2), Y = AB + BC over three inputs, with a constant
    bias column; train and test are the same 8 rows, as in the book.
``gaussian-1d``
    Numbers drawn from one Gaussian, N(4, 1.25) by default: what the toy GAN learns to imitate.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..params import Seed
from ..registry import register_dataset
from .base import ArrayData, DataSplits

__all__ = ["boolean_function", "gaussian_1d", "synthetic_linear", "BOOLEAN_FUNCTIONS"]


@register_dataset("synthetic-linear")
def synthetic_linear(
    n_train: int = 100,
    n_test: int = 100,
    slope: float = 3.0,
    intercept: float = 2.0,
    noise: float = 0.1,
    seed: Seed = 0,
) -> DataSplits:
    """Points near the line y = slope * x + intercept (course A3: y = 3x + 2, noise N(0, 0.1), 100 points).

    The training points are the course's ``np.random.rand(100)`` with ``np.random.normal(0, 0.1)`` added to each y;
    the test points (the course has none) are drawn the same way, after them, from the same generator, so they
    never coincide with training points. The data depend only on ``seed``, not on the run's seed.

    Parameters
    ----------
    n_train, n_test : int
        Number of points in each split.
    slope, intercept : float
        The true line.
    noise : float
        Standard deviation of the Gaussian noise added to y.
    seed : int
        Seed of the numpy generator that draws the points.

    Returns
    -------
    DataSplits
        x float32 (n, 1) in [0, 1), y float32 (n,); no validation split. ``meta["line"]`` holds the true line.
    """
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"dataset 'synthetic-linear' needs n_train and n_test >= 1, got {n_train} and {n_test}")
    if noise < 0:
        raise ConfigError(f"dataset 'synthetic-linear' argument 'noise' must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)

    def draw(n: int) -> ArrayData:
        x = rng.random(n)
        y = slope * x + intercept + rng.normal(0.0, noise, size=n)
        return ArrayData(torch.from_numpy(x.astype(np.float32)[:, None]), torch.from_numpy(y.astype(np.float32)))

    train, test = draw(n_train), draw(n_test)
    meta = {
        "task": "regression",
        "num_classes": 0,
        "classes": [],
        "shape": [1],
        "feature_names": ["x"],
        "files": [],
        "line": {"slope": slope, "intercept": intercept, "noise": noise},
    }
    return DataSplits(name="synthetic-linear", split="generated", train=train, test=test, meta=meta)


#: name -> function of the boolean inputs (a, b, c)
BOOLEAN_FUNCTIONS = {
    "ab+bc": lambda a, b, c: (a & b) | (b & c),
    "and": lambda a, b, c: a & b & c,
    "or": lambda a, b, c: a | b | c,
    "majority": lambda a, b, c: (a & b) | (b & c) | (a & c),
    "xor": lambda a, b, c: a ^ b ^ c,  # not linearly separable: a perceptron never converges on it
}


@register_dataset("boolean-function")
def boolean_function(function: str = "ab+bc", bias_column: bool = True) -> DataSplits:
    """The truth table of a 3-input boolean function, T = 1 and F = 0 (cookbook 3.2: Y = AB + BC).

    Rows come in the book's order TTT, TTF, TFT, TFF, FTT, FTF, FFT, FFF, so for ``ab+bc`` the targets are
    1, 1, 0, 0, 1, 0, 0, 0. Train and test are the same 8 rows: the book learns the table and reports the error
    on it, there is nothing else to test on.

    Parameters
    ----------
    function : str
        One of ``ab+bc``, ``and``, ``or``, ``majority``, ``xor``.
    bias_column : bool
        Append the book's constant input 1 (the bias is the weight on it), giving 4 columns.

    Returns
    -------
    DataSplits
        x float32 (8, 3 or 4), y float32 (8,) in {0, 1}.
    """
    fn = BOOLEAN_FUNCTIONS.get(function.lower())
    if fn is None:
        raise ConfigError(
            f"dataset 'boolean-function' argument 'function' must be one of {', '.join(BOOLEAN_FUNCTIONS)}; "
            f"got {function!r}"
        )
    rows = [(a, b, c) for a in (1, 0) for b in (1, 0) for c in (1, 0)]  # TTT, TTF, ..., FFF
    x = np.array(rows, dtype=np.float32)
    y = np.array([fn(a, b, c) for a, b, c in rows], dtype=np.float32)
    names = ["A", "B", "C"]
    if bias_column:
        x = np.concatenate([x, np.ones((8, 1), dtype=np.float32)], axis=1)
        names.append("bias")
    part = ArrayData(torch.from_numpy(x), torch.from_numpy(y))
    meta = {
        "task": "regression",  # targets are 0/1 floats; the perceptron's error is their mean squared error
        "num_classes": 0,
        "classes": [],
        "shape": [x.shape[1]],
        "feature_names": names,
        "files": [],
        "function": function.lower(),
    }
    return DataSplits(name="boolean-function", split="truth-table", train=part, test=part, meta=meta)


@register_dataset("gaussian-1d")
def gaussian_1d(
    n_train: int = 10000, n_test: int = 2000, mean: float = 4.0, std: float = 1.25, seed: Seed = 0
) -> DataSplits:
    """Samples of N(mean, std**2), the target distribution of the 1-D GAN demos.

    Parameters
    ----------
    n_train, n_test : int
        Number of samples in each split (the test split is drawn after the training one, from the same generator).
    mean, std : float
        The Gaussian.
    seed : int
        Seed of the numpy generator; the data depend only on it, not on the run's seed.

    Returns
    -------
    DataSplits
        x float32 (n, 1); no targets, no validation split. ``meta["gaussian"]`` holds mean and std.
    """
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"dataset 'gaussian-1d' needs n_train and n_test >= 1, got {n_train} and {n_test}")
    if not std > 0:
        raise ConfigError(f"dataset 'gaussian-1d' argument 'std' must be > 0, got {std}")
    rng = np.random.default_rng(seed)
    train, test = (
        ArrayData(torch.from_numpy(rng.normal(mean, std, size=(n, 1)).astype(np.float32))) for n in (n_train, n_test)
    )
    meta = {
        "task": "generation",
        "num_classes": 0,
        "classes": [],
        "shape": [1],
        "files": [],
        "gaussian": {"mean": mean, "std": std},
    }
    return DataSplits(name="gaussian-1d", split="generated", train=train, test=test, meta=meta)
