"""Deep belief networks: RBMs stacked greedily through the layer-wise pretraining API, then a classifier fine-tuned
end to end on their weights.

    model = create_model("dbn")                    # 784-1000-1000-1000 RBMs + softmax (deeplearning.net DBN.py)
    pretrain(model, x, epochs=100, lr=0.01, batch_size=10)   # deeprecipes.training.layerwise: CD-k per RBM
    engine.fit(...)                                 # supervised fine-tuning of everything (a recipe does both)

Each RBM block is the registered model ``rbm`` (:mod:`deeprecipes.models.rbm`): it trains on the codes p(h|v) of the
frozen blocks below it with its own ``train_step`` (contrastive divergence), and its ``encode`` (sigmoid(vW + c))
becomes a sigmoid layer of the classifier, so the pretrained weights are the network's weights, with no copying
step to forget (the cookbook's DBN, 7.6, never received its pretrained weights).

``dbn-cookbook`` is the cookbook's emotion-recognition DBN: RBMs 2304-1500-700-400, one more sigmoid layer of 1000
units that is not pretrained, and a sigmoid output layer under the softmax cross-entropy, as printed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import OneOf, check_arguments
from ..registry import create_model, register_preset
from .base import ErrorRateClassifier
from .stacked import LayerStack, StackedModel

__all__ = ["DBNClassifier", "build_rbm_stack"]


def build_rbm_stack(layer_sizes: Sequence[int], k: int = 1, block_args: dict[str, Any] | None = None) -> LayerStack:
    """RBMs ``layer_sizes[i] -> layer_sizes[i + 1]`` (CD-``k``), as a :class:`LayerStack` for layer-wise
    pretraining. ``block_args`` go to every ``rbm`` (e.g. ``{"visible": "gaussian"}`` applies to the first only:
    the codes the upper RBMs learn from are probabilities, so they stay Bernoulli)."""
    sizes = list(layer_sizes)
    if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise ConfigError(f"model.layer_sizes must list 2 or more positive sizes (input first), got {sizes}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"model.k (Gibbs steps of contrastive divergence) must be an integer >= 1, got {k!r}")
    blocks = []
    for i in range(len(sizes) - 1):
        args = {"k": k, **(block_args or {})}
        if i and args.get("visible", "bernoulli") != "bernoulli":
            args["visible"] = "bernoulli"
        blocks.append(create_model("rbm", n_visible=sizes[i], n_hidden=sizes[i + 1], **args))
    return LayerStack(blocks)


def _init_sigmoid_layer(layer: nn.Linear) -> None:
    """Uniform in +-4 sqrt(6 / (fan_in + fan_out)), biases zero (Glorot & Bengio for sigmoid units; the cookbook's
    DBN layers)."""
    a = 4.0 * math.sqrt(6.0 / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -a, a)
    nn.init.zeros_(layer.bias)


class DBNClassifier(StackedModel, ErrorRateClassifier):
    """Pretrained RBM layers, then optional sigmoid layers trained from scratch, then the output layer.

    Parameters
    ----------
    stack : LayerStack
        The RBMs, bottom first; each one's ``encode`` is a sigmoid layer here.
    n_classes : int
    hidden_layers : sequence of int
        Sizes of extra sigmoid layers above the RBMs (the cookbook appends 1000); not pretrained.
    output : str
        ``"linear"``: the output layer gives the logits (deeplearning.net). ``"sigmoid"``: the logits are the
        sigmoid of the output layer (the cookbook: every layer, the output included, is sigmoid).
    head_init : str
        ``"zeros"`` (deeplearning.net's LogisticRegression layer) or ``"glorot-sigmoid"`` (the cookbook).
    dropout : sequence of float, optional
        Dropout rates for the input of every layer (RBM layers, extra layers, output layer) during fine-tuning.

    Evaluation adds ``error``: the misclassification rate in percent.
    """

    def __init__(
        self,
        stack: LayerStack,
        n_classes: int = 10,
        *,
        hidden_layers: Sequence[int] = (),
        output: Annotated[str, OneOf("linear", "sigmoid")] = "linear",
        head_init: Annotated[str, OneOf("zeros", "glorot-sigmoid")] = "zeros",
        dropout: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ConfigError(f"model.n_classes must be >= 2, got {n_classes}")
        check_arguments(DBNClassifier.__init__, locals())
        extra = list(hidden_layers)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in extra):
            raise ConfigError(f"model.hidden_layers must list positive sizes, got {extra}")
        self.set_dropout(dropout, len(stack.blocks) + len(extra) + 1, "output")
        self.stack = stack
        self.output = output
        sizes = [stack.sizes[-1], *extra]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.hidden:
            _init_sigmoid_layer(layer)
        self.head = nn.Linear(sizes[-1], n_classes)
        if head_init == "zeros":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        else:
            _init_sigmoid_layer(self.head)

    @classmethod
    def from_layers(
        cls,
        layer_sizes: list[int] | None = None,
        n_classes: int = 10,
        k: int = 1,
        block_args: dict[str, Any] | None = None,
        hidden_layers: list[int] | None = None,
        output: str = "linear",
        head_init: str = "zeros",
        dropout: list[float] | None = None,
        freeze: int = 0,
        *,
        base_sizes: Sequence[int],
        base_block_args: Mapping[str, Any],
        base_hidden_layers: Sequence[int],
    ) -> DBNClassifier:
        """A DBN on new RBMs of ``layer_sizes`` (None: ``base_sizes``), each built with ``base_block_args``
        updated by ``block_args``, with ``hidden_layers`` (None: ``base_hidden_layers``) above them; the lowest
        ``freeze`` RBMs fixed. The presets registered below fix the ``base_*`` arguments."""
        stack = build_rbm_stack(list(layer_sizes or base_sizes), k, {**base_block_args, **(block_args or {})})
        extra = base_hidden_layers if hidden_layers is None else hidden_layers
        head = {"output": output, "head_init": head_init}
        return cls.on_stack(stack, freeze, n_classes, hidden_layers=extra, **head, dropout=dropout)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The top RBM's code p(h|v) (below the extra layers), shape (batch, layer_sizes[-1])."""
        return self.stack.encode(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the output layer: every RBM layer and extra layer, with dropout in training mode."""
        layers = [*self.stack.blocks, *self.hidden]
        for layer, rate in zip(layers, self.dropout):
            x = self.drop(x, rate)
            x = layer.encode(x) if hasattr(layer, "encode") else torch.sigmoid(layer(x))
        return self.drop(x, self.dropout[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (batch, n_classes); with ``output="sigmoid"`` they lie in (0, 1), as the cookbook's."""
        z = self.head(self.features(x))
        return torch.sigmoid(z) if self.output == "sigmoid" else z

    def check_data(self, x: torch.Tensor) -> None:
        self.check_input(x)
        check = getattr(self.stack.blocks[0], "check_data", None)
        if check is not None:
            check(x)


register_preset(
    "dbn",
    DBNClassifier.from_layers,
    doc="deeplearning.net DBN: 784-1000-1000-1000 Bernoulli RBMs (weights uniform in +-4 sqrt(6 / (fan_in + "
    "fan_out))) trained with CD-``k`` one at a time, then a softmax layer (zero-initialised) and supervised "
    "fine-tuning of everything. The RBMs' AIS log-likelihood monitoring is off unless ``block_args`` sets "
    "``ais_betas``.",
    fixed={
        "base_sizes": (784, 1000, 1000, 1000),
        "base_block_args": {"init": "glorot-sigmoid", "ais_betas": 0},
        "base_hidden_layers": (),
    },
)
register_preset(
    "dbn-cookbook",
    DBNClassifier.from_layers,
    doc="Cookbook 7.6 (emotion detection on FER2013): RBMs 2304-1500-700-400, an extra sigmoid layer of 1000 units, "
    "a sigmoid output layer of 7 under softmax cross-entropy; every layer initialised uniform in +-4 sqrt(6 / "
    "(fan_in + fan_out)) except the RBMs: the book's RBM (7.4) draws N(0, 1) weights and sums its free energy's "
    "hidden term over the batch (``sum_hidden_term``). AIS monitoring is off unless ``block_args`` sets "
    "``ais_betas``.",
    fixed={
        "base_sizes": (2304, 1500, 700, 400),
        "base_block_args": {"init": "normal", "init_std": 1.0, "sum_hidden_term": True, "ais_betas": 0},
        "base_hidden_layers": (1000,),
    },
    n_classes=7,
    output="sigmoid",
    head_init="glorot-sigmoid",
)
