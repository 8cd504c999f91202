"""The networks of the reinforcement-learning agents (cookbook chapter 9), each a registered ``nn.Module`` whose
``compute_loss`` is the agent's learning rule on a batch of experience:

- ``q-mlp``: Q-values of a flat observation (DQN on CartPole); batch ``(obs, actions, targets)``, Huber or MSE loss
  of Q(s, a) against the targets.
- ``nature-dqn``: the Nature DQN network the book builds in 9.4 (conv 32 8x8/4, 64 4x4/2, 64 3x3/1, FC 512, FC K)
  on a stack of uint8 frames scaled by 1/255; the same loss. The book's ReLU on the Q output is left out (it clips
  Q-values at 0; a listing slip).
- ``minatar-dqn``: the MinAtar paper's small DQN (conv 16 3x3, FC 128) on 10x10 object planes.
- ``rbf-q-linear``: cookbook 9.3, one linear model per action on 2,000 RBF features (a standard scaler, then four
  random Fourier feature maps, held as buffers that the agent fits with scikit-learn); squared error, summed.
- ``policy-mlp``: a softmax policy (REINFORCE on CartPole, and Karpathy's 6400-200-A Pong network with no biases);
  batch ``(obs, actions, weights)``, loss ``-mean(weight * log pi(a|s))``.
- ``sigmoid-policy``: cookbook 9.2, one layer with sigmoid outputs used as logits (``tf.multinomial``), random
  weights never trained (random search); its loss is the same policy-gradient loss, for the engine contract.
- ``actor-critic-mlp``: A2C, a policy head and a value head on a shared body; batch ``(obs, actions, returns)``,
  loss = policy loss on the advantage + ``value_coef`` * value MSE - ``entropy_coef`` * entropy.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from ..params import NonNegative, OneOf, PositiveInt
from ..registry import register_model
from .base import Batch, Model

__all__ = ["QMLP", "NatureDQN", "MinAtarDQN", "RBFQLinear", "PolicyMLP", "SigmoidPolicy", "ActorCriticMLP"]

TDLoss = Annotated[str, OneOf("huber", "mse")]


def _mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, bias: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class PerSampleLoss(Model):
    """A model whose loss is the mean of a per-sample term, ``per_sample(batch)`` (shape (batch,)); evaluation
    reports the terms as the per-sample ``loss``."""

    def per_sample(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.per_sample(batch).mean(), {}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": self.per_sample(batch).detach()}


class QNetwork(PerSampleLoss):
    """Q(s, .) for every action; ``compute_loss((obs, actions, targets))`` regresses Q(s, a) on the targets."""

    td_loss: str = "huber"

    def q_of(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self(obs).gather(1, actions.long().view(-1, 1)).squeeze(1)

    def per_sample(self, batch: Batch) -> torch.Tensor:
        """The TD error of each sample: Huber or squared (``td_loss``)."""
        obs, actions, targets = batch[:3]
        q = self.q_of(obs, actions)
        if self.td_loss == "huber":
            return F.smooth_l1_loss(q, targets.to(q.dtype), reduction="none")
        return (q - targets.to(q.dtype)) ** 2


@register_model("q-mlp")
class QMLP(QNetwork):
    """A fully connected Q-network: obs -> hidden ReLU layers -> one Q-value per action."""

    def __init__(
        self,
        n_inputs: PositiveInt = 4,
        n_actions: PositiveInt = 2,
        hidden: list[int] | None = None,
        loss: TDLoss = "huber",
    ) -> None:
        super().__init__()
        self.hidden = [256, 256] if hidden is None else list(hidden)
        self.td_loss = loss
        self.net = _mlp([n_inputs, *self.hidden, n_actions])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float().flatten(1))


@register_model("nature-dqn")
class NatureDQN(QNetwork):
    """Mnih et al. (2015): conv 32 8x8 s4, conv 64 4x4 s2, conv 64 3x3 s1, FC 512, FC n_actions, on uint8 frame
    stacks (``frames`` x ``size`` x ``size``) scaled to [0, 1]."""

    def __init__(
        self, frames: PositiveInt = 4, size: PositiveInt = 84, n_actions: PositiveInt = 4, loss: TDLoss = "huber"
    ) -> None:
        super().__init__()
        self.td_loss = loss
        self.conv = nn.Sequential(
            nn.Conv2d(frames, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, frames, size, size)).shape[1]
        self.head = nn.Sequential(nn.Linear(n, 512), nn.ReLU(), nn.Linear(512, n_actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.float() / 255.0))


@register_model("minatar-dqn")
class MinAtarDQN(QNetwork):
    """The MinAtar paper's DQN (Young & Tian 2019): conv 16 3x3 stride 1 on the 10x10 grid of ``channels`` object
    planes (given channels last, as MinAtar does), FC 128, FC n_actions."""

    def __init__(
        self, channels: PositiveInt = 4, size: PositiveInt = 10, n_actions: PositiveInt = 3, loss: TDLoss = "huber"
    ) -> None:
        super().__init__()
        self.td_loss = loss
        self.conv = nn.Sequential(nn.Conv2d(channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(16 * (size - 2) ** 2, 128), nn.ReLU(), nn.Linear(128, n_actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.float().permute(0, 3, 1, 2)))


@register_model("rbf-q-linear")
class RBFQLinear(QNetwork):
    """Cookbook 9.3: ``n_actions`` linear models W (D x 1, normal init, no bias) on RBF features of the state.

    The features are sklearn's ``StandardScaler`` then a ``FeatureUnion`` of ``RBFSampler``s,
    ``sqrt(2 / n) * cos(x W_k + b_k)`` per sampler; their fitted arrays live in buffers (``scaler_mean``,
    ``scaler_scale``, ``rbf_weights``, ``rbf_offsets``), so a saved run plays without scikit-learn."""

    td_loss = "sse"

    def __init__(
        self,
        n_inputs: PositiveInt = 4,
        n_actions: PositiveInt = 2,
        n_components: PositiveInt = 500,
        n_samplers: PositiveInt = 4,
    ) -> None:
        super().__init__()
        self.n_components = n_components
        self.register_buffer("scaler_mean", torch.zeros(n_inputs))
        self.register_buffer("scaler_scale", torch.ones(n_inputs))
        self.register_buffer("rbf_weights", torch.zeros(n_samplers, n_inputs, n_components))
        self.register_buffer("rbf_offsets", torch.zeros(n_samplers, n_components))
        self.w = nn.Parameter(torch.randn(n_samplers * n_components, n_actions))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.float().flatten(1) - self.scaler_mean) / self.scaler_scale
        proj = torch.einsum("bi,kij->bkj", z, self.rbf_weights) + self.rbf_offsets
        return (math.sqrt(2.0 / self.n_components) * torch.cos(proj)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.w

    def per_sample(self, batch: Batch) -> torch.Tensor:
        obs, actions, targets = batch[:3]
        return (self.q_of(obs, actions) - targets.float()) ** 2

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.per_sample(batch).sum(), {}  # the book's reduce_sum((Y - XW)^2), one sample a step


class PolicyNetwork(PerSampleLoss):
    """A categorical policy: ``forward`` gives logits; ``compute_loss((obs, actions, weights))`` is REINFORCE."""

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self(obs))

    def per_sample(self, batch: Batch) -> torch.Tensor:
        """``-weight * log pi(a|s)`` of each sample."""
        obs, actions, weights = batch[:3]
        return -self.distribution(obs).log_prob(actions.long()) * weights.float()


@register_model("policy-mlp")
class PolicyMLP(PolicyNetwork):
    """obs -> hidden ReLU layers -> action logits. With ``bias = false`` and ``init = "karpathy"`` it is the Pong
    network of 9.5: W1 ~ truncated normal with std 1/sqrt(n_inputs)... as Greydanus's gist (1/80 for 6400 inputs),
    W2 with std 1/sqrt(hidden)."""

    def __init__(
        self,
        n_inputs: PositiveInt = 4,
        n_actions: PositiveInt = 2,
        hidden: list[int] | None = None,
        bias: bool = True,
        init: Annotated[str, OneOf("torch", "karpathy")] = "torch",
    ) -> None:
        super().__init__()
        self.hidden = [128] if hidden is None else list(hidden)
        self.net = _mlp([n_inputs, *self.hidden, n_actions], bias=bias)
        if init == "karpathy":
            linears = [m for m in self.net if isinstance(m, nn.Linear)]
            for m in linears:
                nn.init.trunc_normal_(
                    m.weight,
                    std=1.0 / math.sqrt(m.in_features),
                    a=-2.0 / math.sqrt(m.in_features),
                    b=2.0 / math.sqrt(m.in_features),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float().flatten(1))


@register_model("sigmoid-policy")
class SigmoidPolicy(PolicyNetwork):
    """Cookbook 9.2: W ~ N(0, 1) (n_inputs x n_actions) and b ~ N(0, 1), sigmoid outputs that ``tf.multinomial``
    read as logits (so every action keeps a probability near uniform). Not trained: random search redraws it."""

    def __init__(self, n_inputs: PositiveInt = 33600, n_actions: PositiveInt = 9) -> None:
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_actions)
        self.redraw(None)

    def redraw(self, generator: torch.Generator | None) -> None:
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(self.linear.weight.shape, generator=generator))
            self.linear.bias.copy_(torch.randn(self.linear.bias.shape, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x.float().flatten(1)))


@register_model("actor-critic-mlp")
class ActorCriticMLP(PolicyNetwork):
    """A2C: a policy (logits) and a value function, each an MLP of tanh layers (``shared``: one body, two heads;
    by default two bodies, as Stable-Baselines3's MlpPolicy); ``forward`` gives the logits."""

    def __init__(
        self,
        n_inputs: PositiveInt = 4,
        n_actions: PositiveInt = 2,
        hidden: list[int] | None = None,
        shared: bool = False,
        value_coef: NonNegative = 0.5,
        entropy_coef: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        self.hidden = [64, 64] if hidden is None else list(hidden)
        self.value_coef, self.entropy_coef = value_coef, entropy_coef
        self.body = nn.Sequential(_mlp([n_inputs, *self.hidden], activation=nn.Tanh), nn.Tanh())
        self.value_body = self.body if shared else nn.Sequential(_mlp([n_inputs, *self.hidden], nn.Tanh), nn.Tanh())
        self.pi = nn.Linear(self.hidden[-1], n_actions)
        self.v = nn.Linear(self.hidden[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pi(self.body(x.float().flatten(1)))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.v(self.value_body(x.float().flatten(1))).squeeze(1)

    def _parts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs, actions, returns = batch[:3]
        dist = torch.distributions.Categorical(logits=self(obs))
        values = self.value(obs)
        advantage = (returns.float() - values).detach()
        policy = -dist.log_prob(actions.long()) * advantage
        return policy, (returns.float() - values) ** 2, dist.entropy()

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        policy, value, entropy = self._parts(batch)
        loss = policy.mean() + self.value_coef * value.mean() - self.entropy_coef * entropy.mean()
        return loss, {"value_loss": value.mean().detach(), "entropy": entropy.mean().detach()}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        policy, value, entropy = self._parts(batch)
        return {"loss": (policy + self.value_coef * value - self.entropy_coef * entropy).detach()}
