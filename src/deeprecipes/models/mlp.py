"""Multilayer perceptrons on flat inputs (MNIST's 784 pixels): a general classifier and the cookbook's hand-written
backpropagation.

- ``mlp``: any stack of fully connected hidden layers (sizes, activation, dropout, weight initialisation) under a
  linear softmax readout. Cookbook 3.4 (784-30-10 ReLU, Xavier weights), Keras' ``mnist_mlp`` (2 x 512 ReLU,
  dropout 0.2) and deeplearning.net's ``mlp.py`` (1 x 500 tanh, Glorot-uniform hidden weights, zero readout) are
  all instances.
- ``mlp-backprop``: cookbook 3.3, a 784-30-10 network with sigmoid hidden AND output units, the loss
  J = 1/(2M) sum (Y - Y_hat)^2 against one-hot labels, and its gradients written out by hand (forward and backward
  pass, no autograd in the update), exactly as the book's bundle ``MNIST_with_BPN_hard_way.py`` applied them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import NonNegative, NonNegativeInt, OneOf, PositiveInt, check_arguments, choices
from ..registry import register_model
from ..viz import pyplot, save_figure
from .base import Batch, Classifier, ErrorRateClassifier

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = [
    "ACTIVATIONS",
    "BOOK_TABLE_3_3",
    "INITS",
    "BackpropMLP",
    "MLPClassifier",
    "init_linear",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}

Activation = Annotated[str, OneOf(*ACTIVATIONS)]
#: weight initialisations; biases start at zero for all but ``torch`` (torch's own default for both)
Init = Annotated[str, OneOf("glorot-uniform", "glorot-normal", "he-uniform", "he-normal", "normal", "zeros", "torch")]
INITS = choices(Init)

#: cookbook 3.3's printed table: loop index -> (train %, test %); evaluated after step index + 1, and the train
#: column divides the correct count on the 55,000 training images by 600 (so it reads 55/60 of the true accuracy)
BOOK_TABLE_3_3: dict[int, tuple[float, float]] = {
    0: (10.13, 11.04),
    1000: (77.14166666666667, 84.6),
    2000: (80.05333333333333, 87.27),
    3000: (82.18666666666667, 90.16),
    4000: (82.99333333333333, 90.71),
    5000: (82.82666666666667, 90.58),
    6000: (83.99166666666666, 91.85),
    7000: (84.29333333333334, 92.07),
    8000: (84.62833333333333, 92.1),
    9000: (84.45, 92.16),
}


def init_linear(layer: nn.Linear, scheme: str, std: float = 1.0) -> None:
    """Initialise ``layer`` in place. Glorot (= Xavier: Keras' ``glorot_uniform``, TF's ``xavier_initializer``,
    deeplearning.net's tanh layers) and He use fan-in/fan-out; ``normal`` draws N(0, std^2) for the weights."""
    w = layer.weight
    with torch.no_grad():
        if scheme == "torch":
            layer.reset_parameters()
            return
        if scheme == "glorot-uniform":
            nn.init.xavier_uniform_(w)
        elif scheme == "glorot-normal":
            nn.init.xavier_normal_(w)
        elif scheme == "he-uniform":
            nn.init.kaiming_uniform_(w, nonlinearity="relu")
        elif scheme == "he-normal":
            nn.init.kaiming_normal_(w, nonlinearity="relu")
        elif scheme == "normal":
            w.normal_(0.0, std)
        elif scheme == "zeros":
            w.zero_()
        else:
            raise ConfigError(f"model argument 'init' must be one of {', '.join(INITS)}; got {scheme!r}")
        if layer.bias is not None:
            layer.bias.zero_()


@register_model("mlp")
class MLPClassifier(ErrorRateClassifier):
    """Fully connected hidden layers under a linear readout that gives class logits (softmax cross-entropy).

    Registered as ``mlp`` (cookbook 3.4: [30] relu; Keras mnist_mlp: [512, 512] relu, dropout 0.2; deeplearning.net:
    [500] tanh, output_init zeros).

    Parameters
    ----------
    in_features : int
        Inputs per sample (784 for MNIST); inputs of any shape (batch, ...) are flattened.
    hidden_sizes : list of int
        Units of each hidden layer, e.g. [512, 512]; empty = softmax regression.
    num_classes : int
    activation : str
        One of ``ACTIVATIONS``, after every hidden layer.
    dropout : float or list of float
        Dropout after each hidden layer's activation (Keras ``mnist_mlp``: 0.2); a list gives one rate per layer.
    input_dropout : float
        Dropout on the inputs.
    init : str
        Weight initialisation of the hidden layers, one of ``INITS`` (biases zero, except ``torch``).
    output_init : str, optional
        Initialisation of the readout (deeplearning.net: ``zeros``); default: as ``init``.
    init_std : float
        Standard deviation for ``init = "normal"``.

    Evaluation adds ``error``: the misclassification rate in percent (deeplearning.net reports test error).
    """

    def __init__(
        self,
        in_features: PositiveInt = 784,
        hidden_sizes: list[int] = [512, 512],  # noqa: B006 (read only; the registry shows the default)
        num_classes: PositiveInt = 10,
        activation: Activation = "relu",
        dropout: float | list[float] = 0.0,
        input_dropout: float = 0.0,
        init: Init = "glorot-uniform",
        output_init: Init | None = None,
        init_std: NonNegative = 1.0,
    ) -> None:
        super().__init__()
        check_arguments(MLPClassifier.__init__, locals())
        hidden_sizes = list(hidden_sizes)
        if in_features < 1 or num_classes < 2 or any(h < 1 for h in hidden_sizes):
            raise ConfigError(
                f"model arguments: in_features and hidden_sizes must be >= 1 and num_classes >= 2; got "
                f"in_features={in_features}, hidden_sizes={hidden_sizes}, num_classes={num_classes}"
            )
        rates = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * len(hidden_sizes)
        if len(rates) != len(hidden_sizes):
            raise ConfigError(
                f"model argument 'dropout' needs one rate per hidden layer ({len(hidden_sizes)}), got {len(rates)}"
            )
        for name, r in [("input_dropout", input_dropout)] + [(f"dropout[{i}]", r) for i, r in enumerate(rates)]:
            if not 0.0 <= r < 1.0:
                raise ConfigError(f"model argument '{name}' must be in [0, 1), got {r}")
        self.in_features = in_features
        self.hidden_sizes = hidden_sizes
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout else []
        n_in = in_features
        for h, rate in zip(hidden_sizes, rates, strict=True):
            linear = nn.Linear(n_in, h)
            init_linear(linear, init, init_std)
            layers += [linear, ACTIVATIONS[activation]()]
            if rate:
                layers.append(nn.Dropout(rate))
            n_in = h
        self.hidden = nn.Sequential(*layers)
        self.readout = nn.Linear(n_in, num_classes)
        init_linear(self.readout, output_init or init, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, in_features) or (batch, 28, 28) -> logits (batch, num_classes)."""
        return self.readout(self.hidden(x.reshape(x.shape[0], -1)))

    def check_data(self, x: torch.Tensor) -> None:
        if x[0].numel() != self.in_features:
            raise ConfigError(
                f"model argument 'in_features' is {self.in_features}, but the data has {x[0].numel()} features"
            )

    def weight_images(self) -> dict[str, torch.Tensor]:
        """The first layer's weights of the first 64 hidden units as 28x28 images (square inputs only)."""
        first = next((m for m in self.hidden if isinstance(m, nn.Linear)), self.readout)
        side = math.isqrt(self.in_features)
        if side * side != self.in_features:
            return {}
        return {"filters": first.weight.detach()[:64].float().cpu().reshape(-1, side, side)}


# ----------------------------------------------------------------------------------------------------------------
# cookbook 3.3: backpropagation by hand


def _sigmaprime(h: torch.Tensor) -> torch.Tensor:
    """sigma'(h) = sigma(h) (1 - sigma(h)), the bundle's ``sigmaprime``."""
    s = torch.sigmoid(h)
    return s * (1.0 - s)


@register_model("mlp-backprop")
class BackpropMLP(Classifier):
    """784-30-10 with sigmoid hidden and output units, trained on J = 1/(2M) sum_i ||y_i - y_hat_i||^2.

    Registered as ``mlp-backprop``: cookbook 3.3, sigmoid 784-30-10 on a squared error, backpropagation written out
    by hand.

    The update is the one of the book's bundle (``MNIST_with_BPN_hard_way.py``), with ``err = y - y_hat``::

        delta_2 = err * sigma'(h_2)                  delta_w_2 = o_1^T delta_2
        delta_1 = (delta_2 W_out^T) * sigma'(h_1)     delta_w_1 = x^T delta_1
        W_h1 += eta delta_w_1     b_h1 += eta mean_batch(delta_1)
        W_out += eta delta_w_2    b_out += eta mean_batch(delta_2)

    ``delta_w`` sums over the M images of the batch, so the weights move by ``eta * M * (-dJ/dW)`` and the biases
    by ``eta * (-dJ/db)``: gradient descent on J with a step M times larger for the weights (10 x 0.5 = 5 in the
    book). The printed text of the book is inconsistent (deltas swapped, ``err = y_hat - y`` with additions: an
    ascent); the bundle's signs, used here, descend. ``weight_update = "mean"`` gives plain gradient descent on J
    (the weights' step divided by M) instead.

    Parameters
    ----------
    in_features, n_hidden, num_classes : int
    init_std : float
        Weights and biases start N(0, init_std^2), as ``tf.random_normal`` (std 1).
    manual_backprop : bool
        True: ``train_step`` applies the hand-written update with the optimizer's learning rate (plain SGD only).
        False: the same update from autograd through the engine (``optimizer = "sgd"``, same rate).
    weight_update : {"sum", "mean"}
        "sum" (the bundle): weights move by eta * sum over the batch; "mean": by eta * mean (gradient descent on J).
    eval_every : int
        Every this many steps (after step 1, eval_every + 1, ...: the book's loop printed after its step ``k``
        for k = 0, 1000, ...), record train and test accuracy on the full splits; they join the final metrics as
        ``test_accuracy_at_<k>`` and ``train_accuracy_at_<k>`` (0 = off).
    """

    def __init__(
        self,
        in_features: PositiveInt = 784,
        n_hidden: PositiveInt = 30,
        num_classes: PositiveInt = 10,
        init_std: NonNegative = 1.0,
        manual_backprop: bool = True,
        weight_update: Annotated[str, OneOf("sum", "mean")] = "sum",
        eval_every: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        check_arguments(BackpropMLP.__init__, locals())
        self.in_features, self.num_classes = in_features, num_classes
        self.manual_backprop = manual_backprop
        self.weight_update = weight_update
        self.eval_every = eval_every
        # TF layout: (in, out) matrices, x @ W + b
        self.w_h1 = nn.Parameter(torch.randn(in_features, n_hidden) * init_std)
        self.b_h1 = nn.Parameter(torch.randn(n_hidden) * init_std)
        self.w_out = nn.Parameter(torch.randn(n_hidden, num_classes) * init_std)
        self.b_out = nn.Parameter(torch.randn(num_classes) * init_std)
        self.table: dict[int, tuple[float, float]] = {}  # step -> (train accuracy, test accuracy)
        self._probe: Any = None

    # forward --------------------------------------------------------------------------------------------------

    def layers(self, x: torch.Tensor, bias_grad_scale: float = 1.0) -> tuple[torch.Tensor, ...]:
        """The bundle's ``multilayer_perceptron``: (h_1, o_1, h_2, y_hat), pre-activations and outputs.

        ``bias_grad_scale`` leaves the values unchanged and multiplies the biases' gradients (autograd mode)."""
        b1, b2 = self.b_h1, self.b_out
        if bias_grad_scale != 1.0:
            s = bias_grad_scale
            b1 = b1 * s + (b1 * (1.0 - s)).detach()
            b2 = b2 * s + (b2 * (1.0 - s)).detach()
        x = x.reshape(x.shape[0], -1)
        h_1 = x @ self.w_h1 + b1  # (M, n_hidden)
        o_1 = torch.sigmoid(h_1)
        h_2 = o_1 @ self.w_out + b2  # (M, 10)
        return h_1, o_1, h_2, torch.sigmoid(h_2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 784) -> the output units' pre-activations h_2 (batch, 10); argmax = argmax of y_hat."""
        return self.layers(x)[2]

    def one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(y.long(), self.num_classes).to(like.dtype)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """J = 1/(2M) sum over the batch and the outputs of (y - y_hat)^2; ``y`` holds class labels."""
        return 0.5 * (self.one_hot(y, y_hat) - y_hat).pow(2).sum(1).mean()

    # backward, by hand ----------------------------------------------------------------------------------------

    def deltas(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The bundle's backward pass for images ``x`` (M, 784) and labels ``y`` (M,): the increments it added,
        before the learning rate (``delta_w`` summed over the batch, bias deltas averaged)."""
        x = x.reshape(x.shape[0], -1)
        h_1, o_1, h_2, y_hat = self.layers(x)
        err = self.one_hot(y, y_hat) - y_hat  # (M, 10)
        delta_2 = err * _sigmaprime(h_2)  # (M, 10)
        delta_w_2 = o_1.t() @ delta_2  # (n_hidden, 10)
        wtd_error = delta_2 @ self.w_out.t()  # (M, n_hidden)
        delta_1 = wtd_error * _sigmaprime(h_1)  # (M, n_hidden)
        delta_w_1 = x.t() @ delta_1  # (784, n_hidden)
        return {"w_h1": delta_w_1, "b_h1": delta_1.mean(0), "w_out": delta_w_2, "b_out": delta_2.mean(0)}

    @torch.no_grad()
    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """dJ/dparameter for every parameter, from the hand-written backward pass (no autograd)."""
        m = x.shape[0]
        d = self.deltas(x, y)
        return {k: -v / m if k.startswith("w_") else -v for k, v in d.items()}

    @torch.no_grad()
    def manual_step(self, x: torch.Tensor, y: torch.Tensor, eta: float) -> None:
        """One update of the bundle: ``param += eta * delta`` (weights divided by M when ``weight_update='mean'``)."""
        m = x.shape[0]
        for name, d in self.deltas(x, y).items():
            scale = eta / m if (name.startswith("w_") and self.weight_update == "mean") else eta
            getattr(self, name).add_(d, alpha=scale)

    # the engine's hooks ---------------------------------------------------------------------------------------

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        y_hat = self.layers(x)[3]
        return self.loss(y_hat, y), {"accuracy": (y_hat.argmax(1) == y).float().mean()}

    def _check_manual(self, engine: Engine) -> None:
        opt = engine.optimizers.get("main")
        group = opt.param_groups[0] if opt is not None else {}
        plain_sgd = type(opt) is torch.optim.SGD and not group.get("momentum") and not group.get("weight_decay")
        if not plain_sgd or engine.l1 or engine.l2 or engine.grad_clip or engine.precision != "fp32":
            raise ConfigError(
                "model argument 'manual_backprop' = true applies plain SGD by hand: use optimizer 'sgd' without "
                "momentum or weight_decay, train.l1 = train.l2 = train.grad_clip = 0 and train.precision 'fp32' "
                "(or set manual_backprop = false)"
            )

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        m = x.shape[0]
        if self.manual_backprop:
            self._check_manual(engine)
            with torch.no_grad():
                y_hat = self.layers(x)[3]
                loss, acc = self.loss(y_hat, y), (y_hat.argmax(1) == y).float().mean()
                self.manual_step(x, y, engine.lr())
            sched = engine.schedules.get("main")
            if sched is not None:
                sched.step()
        else:
            # the same update from autograd: d(M * J)/dW = M dJ/dW; the biases' gradient scaled back to dJ/db
            summed = self.weight_update == "sum"
            with engine.autocast():
                y_hat = self.layers(x, bias_grad_scale=1.0 / m if summed else 1.0)[3]
                loss = self.loss(y_hat.to(self.w_h1.dtype), y)
            engine.step(loss * m if summed else loss)
            loss, acc = loss.detach(), (y_hat.argmax(1) == y).float().mean()
        step = engine.step_count + 1  # the engine counts this step after we return
        if self.eval_every and self._probe is not None and (step - 1) % self.eval_every == 0:
            self.table[step - 1] = self._accuracies()
        return {"loss": loss, "accuracy": acc}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        y_hat = self.layers(x)[3].float()
        return {
            "loss": 0.5 * (self.one_hot(y, y_hat) - y_hat).pow(2).sum(1),
            "accuracy": (y_hat.argmax(1) == y).float(),
        }

    def prepare_data(self, data: Any) -> Any:
        self._probe = data  # for the accuracy table every ``eval_every`` steps
        return data

    @torch.no_grad()
    def _accuracies(self) -> tuple[float, float]:
        device = self.w_h1.device
        out = []
        for part in (self._probe.train, self._probe.test):
            correct = 0
            for i in range(0, len(part.x), 10000):
                pred = self(part.x[i : i + 10000].to(device)).argmax(1).cpu()
                correct += int((pred == part.y[i : i + 10000]).sum())
            out.append(correct / len(part.x))
        return out[0], out[1]

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """The accuracy table of cookbook 3.3 (full train and test splits, every ``eval_every`` steps)."""
        out: dict[str, float] = {}
        for step, (train, test) in sorted(self.table.items()):
            out[f"train_accuracy_at_{step}"] = train
            out[f"test_accuracy_at_{step}"] = test
        return out

    def weight_images(self) -> dict[str, torch.Tensor]:
        side = math.isqrt(self.in_features)
        if side * side != self.in_features:
            return {}
        return {"filters": self.w_h1.detach()[:, :64].t().float().cpu().reshape(-1, side, side)}

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``accuracy-table.png``: our accuracy table beside the book's (its train column rescaled by 60/55 to a
        true accuracy), when ``eval_every`` recorded one."""
        if not self.table:
            return []
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5))
        steps = sorted(self.table)
        ax.plot(steps, [100 * self.table[s][1] for s in steps], "o-", label="ours: test")
        ax.plot(steps, [100 * self.table[s][0] for s in steps], "s--", label="ours: train")
        book = sorted(BOOK_TABLE_3_3)
        ax.plot(book, [BOOK_TABLE_3_3[s][1] for s in book], "o-", color="k", alpha=0.6, label="book: test")
        ax.plot(book, [BOOK_TABLE_3_3[s][0] * 60 / 55 for s in book], "s--", color="k", alpha=0.4, label="book: train")
        ax.set(xlabel="step (the book's loop index)", ylabel="accuracy %", title=f"{title}: accuracy by step")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        return [save_figure(fig, fig_dir / "accuracy-table.png")]
