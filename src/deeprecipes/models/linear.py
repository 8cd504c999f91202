"""Linear models: linear regression (course A3, cookbook 2.4/2.5), softmax regression on MNIST (cookbook 2.6,
course A7) and the course's sigmoid "logistic regression" on iris (A4).

- :class:`LinearRegression` is ``y = x W + b``; its loss is the Regressor's (``mse``, ``l1`` or ``huber``), L1/L2
  penalties come from ``train.l1`` / ``train.l2``. A bias column of ones with its own weight (the cookbook's
  ``append_bias_reshape``) is the same model as the separate bias here. At the end of a run it reports the
  closed-form least-squares fit on the same training data beside its own (``ols_test_mse``), and for one input
  the fitted ``a`` and ``b``.
- :class:`SoftmaxRegression` is ``softmax(x W + b)``. ``double_softmax`` reproduces cookbook 2.6's bug: the book
  applied ``tf.nn.softmax`` and fed the result to ``softmax_cross_entropy_with_logits``, which applies softmax
  again, so the loss it minimised is flat and cannot fall below about 1.46 nats.
- :class:`LogisticRegression` is the course's iris model: ``sigmoid(x W + b)`` per class with the cost
  ``tf.nn.l2_loss(activation - onehot)`` (half the sum of squared errors over the batch), and its stopping rule
  (every ``check_every`` epochs, stop when the cost changed by less than ``tol``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..params import NonNegative, NonNegativeInt, Positive, PositiveInt
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Batch, Classifier, Regressor
from .regression import save_predicted_vs_actual, scaled_metrics

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "SoftmaxRegression",
]

INITS = ("normal", "zeros", "constant")


def _init_linear(layer: nn.Linear, init: str, std: float, weight: float, bias: float, where: str) -> None:
    """``normal``: weights and bias ~ N(0, std) (tf.random_normal); ``zeros``; ``constant``: every weight
    ``weight`` and every bias ``bias`` (the course's a = 1.0, b = 0.2)."""
    if init not in INITS:
        raise ConfigError(f"model '{where}' init must be one of {', '.join(INITS)}; got {init!r}")
    with torch.no_grad():
        if init == "normal":
            layer.weight.normal_(0.0, std)
            layer.bias.normal_(0.0, std)
        elif init == "zeros":
            layer.weight.zero_()
            layer.bias.zero_()
        else:
            layer.weight.fill_(weight)
            layer.bias.fill_(bias)


def _check_inputs(model: nn.Module, x: torch.Tensor, name: str) -> None:
    d = x.reshape(len(x), -1).shape[1]
    if d != model.n_inputs:  # type: ignore[attr-defined]
        raise ConfigError(
            f"model '{name}' has n_inputs={model.n_inputs} but the data have {d} features; set model.n_inputs"
        )


@register_model("linear-regression")
class LinearRegression(Regressor):
    """``y = x W + b`` for float targets.

    Registered as ``linear-regression``: course A3 (init constant, a = 1.0, b = 0.2) and cookbook 2.5 (init normal,
    std 1).

    Parameters
    ----------
    n_inputs, n_outputs : int
    init : str
        ``normal`` (N(0, std), the cookbook's ``tf.random_normal``), ``zeros`` or ``constant`` (``weight``,
        ``bias``; the course's a = 1.0, b = 0.2).
    std, weight, bias : float
    loss : str
        ``mse`` (the sources), ``l1`` or ``huber`` (``huber_delta``).
    snapshot_every : int
        Record (a, b) after every this many steps (course A3: 5) to draw the line as it moved; 0 = never.
        Kept in memory only: a resumed or redrawn run draws the final line alone.
    """

    def __init__(
        self,
        n_inputs: PositiveInt = 1,
        n_outputs: PositiveInt = 1,
        init: str = "normal",
        std: NonNegative = 1.0,
        weight: float = 1.0,
        bias: float = 0.2,
        loss: str = "mse",
        huber_delta: Positive = 1.0,
        snapshot_every: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.set_loss(loss, huber_delta, "linear-regression")
        self.n_inputs, self.snapshot_every = n_inputs, snapshot_every
        self.linear = nn.Linear(n_inputs, n_outputs)
        _init_linear(self.linear, init, std, weight, bias, "linear-regression")
        self.snapshots: list[tuple[int, float, float]] = []  # (step, a, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n_inputs) -> (batch, n_outputs)."""
        return self.linear(x.reshape(len(x), -1))

    def check_data(self, x: torch.Tensor) -> None:
        _check_inputs(self, x, "linear-regression")

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        logs = super().train_step(batch, engine)
        if self.snapshot_every and engine.step_count % self.snapshot_every == 0 and self.linear.weight.numel() == 1:
            # the course printed [a, b] after steps 0, 5, ..., 95 (engine.step_count counts the steps before this)
            w, b = self.linear.weight.detach(), self.linear.bias.detach()
            self.snapshots.append((engine.step_count, float(w), float(b)))
        return logs

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        out = scaled_metrics(self, data, super().reference_metrics(data))
        if self.linear.weight.numel() == 1:
            out["a"], out["b"] = float(self.linear.weight), float(self.linear.bias)
        out.update(least_squares_baseline(data))
        return out

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        if self.linear.weight.numel() == 1 and data.train.x.reshape(len(data.train.x), -1).shape[1] == 1:
            return [self._line_figure(data, fig_dir / "fitted-line.png", title)]
        return [save_predicted_vs_actual(self, data, fig_dir / "predicted-vs-actual.png", f"{title}: test set")]

    def _line_figure(self, data: Any, path: Path, title: str) -> Path:
        """The data (training points red, as the course drew them; test points grey), the line after every
        snapshot coloured from yellow (1, 1, 0) to magenta (1, 0, 1) as in the course, and the final line."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        xs = torch.cat([data.train.x.reshape(-1), data.test.x.reshape(-1)])
        grid = torch.linspace(float(xs.min()), float(xs.max()), 2)
        ax.scatter(data.test.x.reshape(-1), data.test.y.reshape(-1), s=10, color="0.6", label="test points")
        ax.scatter(data.train.x.reshape(-1), data.train.y.reshape(-1), s=10, color="red", label="training points")
        k = len(self.snapshots)
        for i, (step, a, b) in enumerate(self.snapshots):
            t = i / max(k - 1, 1)
            label = f"after step {step + 1}" if i in (0, k - 1) else None
            ax.plot(grid, a * grid + b, color=(1.0, 1.0 - t, t), lw=1, label=label)
        w, b0 = float(self.linear.weight.detach()), float(self.linear.bias.detach())
        ax.plot(grid, w * grid + b0, color="black", lw=2, label=f"final: y = {w:.3f} x + {b0:.3f}")
        line = getattr(data, "meta", {}).get("line")
        if line:
            true = f"true: y = {line['slope']:g} x + {line['intercept']:g}"
            ax.plot(grid, line["slope"] * grid + line["intercept"], color="tab:green", ls="--", lw=1, label=true)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(title)
        return save_figure(fig, path)


@torch.no_grad()
def least_squares_baseline(data: Any) -> dict[str, float]:
    """Closed-form ordinary least squares (with intercept) fitted on the training split, scored on the test split
    in the same units as the model's metrics: ``ols_test_mse`` and ``ols_test_r2`` (what scikit-learn's
    ``LinearRegression`` gives on the same split)."""
    train, test = getattr(data, "train", None), getattr(data, "test", None)
    if train is None or test is None or train.y is None or test.y is None or not train.y.is_floating_point():
        return {}
    x = train.x.reshape(len(train.x), -1).double()
    y = train.y.reshape(len(train.y), -1).double()
    ones = torch.ones(len(x), 1, dtype=torch.float64)
    coef = torch.linalg.lstsq(torch.cat([x, ones], 1), y, driver="gelsd").solution
    xt = test.x.reshape(len(test.x), -1).double()
    yt = test.y.reshape(len(test.y), -1).double()
    pred = torch.cat([xt, torch.ones(len(xt), 1, dtype=torch.float64)], 1) @ coef
    sse = float((pred - yt).pow(2).sum())
    sst = float((yt - yt.mean(0)).pow(2).sum())
    return {"ols_test_mse": sse / yt.numel(), "ols_test_r2": 1.0 - sse / sst if sst > 0 else float("nan")}


@register_model("softmax-regression")
class SoftmaxRegression(Classifier):
    """Multinomial logistic regression, ``softmax(x W + b)``.

    Registered as ``softmax-regression``: softmax regression on MNIST (cookbook 2.6 with ``double_softmax = true``;
    course A7).

    Parameters
    ----------
    n_inputs, n_classes : int
    init : str
        ``zeros`` (the sources), ``normal`` (N(0, std)).
    std : float
    double_softmax : bool
        Cookbook 2.6's bug: ``forward`` returns probabilities, and training applies softmax cross-entropy to them
        as if they were logits. Evaluation then reports ``loss`` as the cross-entropy of the model's own
        probabilities (what the model predicts) and ``objective`` as the doubly-softmaxed loss the book minimised
        (its printed "cross-entropy", 1.586 after 100 epochs).
    """

    def __init__(
        self,
        n_inputs: PositiveInt = 784,
        n_classes: PositiveInt = 10,
        init: str = "zeros",
        std: NonNegative = 0.01,
        double_softmax: bool = False,
    ) -> None:
        super().__init__()
        self.n_inputs, self.n_classes, self.double_softmax = n_inputs, n_classes, double_softmax
        self.linear = nn.Linear(n_inputs, n_classes)
        _init_linear(self.linear, init, std, 0.0, 0.0, "softmax-regression")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n_inputs) -> logits (batch, n_classes), or probabilities with ``double_softmax``."""
        logits = self.linear(x.reshape(len(x), -1))
        return torch.softmax(logits, dim=1) if self.double_softmax else logits

    def check_data(self, x: torch.Tensor) -> None:
        _check_inputs(self, x, "softmax-regression")

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        if not self.double_softmax:
            return super().eval_step(batch)
        x, y = batch[0], batch[1]
        logits = self.linear(x.reshape(len(x), -1)).float()
        probs = torch.softmax(logits, dim=1)
        return {
            "loss": nn.functional.cross_entropy(logits, y, reduction="none"),
            "objective": nn.functional.cross_entropy(probs, y, reduction="none"),
            "accuracy": (logits.argmax(1) == y).float(),
        }

    def weight_images(self) -> dict[str, torch.Tensor]:
        if self.n_inputs != 784:
            return {}
        return {"weights": self.linear.weight.detach().reshape(self.n_classes, 28, 28)}


@register_model("logistic-regression")
class LogisticRegression(Classifier):
    """The course's iris classifier (A4): one sigmoid unit per class, trained on squared error.

    Registered as ``logistic-regression``: sigmoid per class, half-sum-of-squares cost, stop on a flat cost.

    ``forward`` returns the sigmoid activations (batch, n_classes); the predicted class is the largest. The cost
    is ``tf.nn.l2_loss(activation - onehot)``: half the sum of squared errors over the whole batch (a sum, so the
    learning rate 0.0008 acts on 99 samples at once).

    Parameters
    ----------
    n_inputs, n_classes : int
    std : float
        Weights and bias ~ N(0, std) (the course: 0.01).
    tol : float
        Stop when the training cost changed by less than this between two checks (the course: 0.0001).
    check_every : int
        Epochs between checks (the course: 10); 0 = never stop early. The cost is taken on the epoch's first
        batch after its update, which is the whole training set when training full-batch as the course did.
    """

    summed_metrics: ClassVar[frozenset[str]] = frozenset({"cost"})

    def __init__(
        self,
        n_inputs: PositiveInt = 4,
        n_classes: PositiveInt = 3,
        std: NonNegative = 0.01,
        tol: NonNegative = 1e-4,
        check_every: NonNegativeInt = 10,
    ) -> None:
        super().__init__()
        self.n_inputs, self.n_classes, self.tol, self.check_every = n_inputs, n_classes, tol, check_every
        self.linear = nn.Linear(n_inputs, n_classes)
        _init_linear(self.linear, "normal", std, 0.0, 0.0, "logistic-regression")
        self.register_buffer("last_cost", torch.tensor(float("nan")))  # checkpointed, so a resume keeps the rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n_inputs) -> sigmoid activations (batch, n_classes)."""
        return torch.sigmoid(self.linear(x.reshape(len(x), -1)))

    def check_data(self, x: torch.Tensor) -> None:
        _check_inputs(self, x, "logistic-regression")

    def _cost(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample half squared error (batch,) and the activations."""
        act = self(x)
        gold = nn.functional.one_hot(y, self.n_classes).to(act.dtype)
        return 0.5 * (act - gold).pow(2).sum(1), act

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        per_sample, act = self._cost(x, y)
        return per_sample.sum(), {"accuracy": (act.argmax(1) == y).float().mean()}

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        logs = super().train_step(batch, engine)
        if self.check_every and engine.batch == 0 and engine.epoch % self.check_every == 0:
            with torch.no_grad():
                cost = self._cost(batch[0], batch[1])[0].sum()
            diff = float((cost - self.last_cost).abs())  # NaN at the first check, which never stops
            self.last_cost.fill_(float(cost))
            if engine.epoch > 0 and diff < self.tol:
                engine.should_stop = True
                engine.stop_reason = f"change in cost {diff:g} < {self.tol:g} after epoch {engine.epoch + 1}"
        return logs

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        per_sample, act = self._cost(x, y)
        return {"loss": per_sample.float(), "cost": per_sample.float(), "accuracy": (act.argmax(1) == y).float()}
