"""A2C (Mnih et al. 2016, synchronous advantage actor-critic) on one environment.

Every ``n_steps`` environment steps (or at an episode's end) one optimizer step on the network's loss: the policy
gradient weighted by the advantage ``R_t - V(s_t)``, plus ``value_coef`` times the value error, minus
``entropy_coef`` times the entropy (both set on the ``actor-critic-mlp`` network). R_t is the n-step return,
bootstrapped from ``V(s_{t+n})`` unless the episode terminated (a time limit is not a terminal state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..params import PositiveInt, Probability
from .base import Agent, register_agent, to_tensor
from .reinforce import sample_action

__all__ = ["A2C"]


@register_agent("a2c")
class A2C(Agent):
    name = "a2c"

    def __init__(self, gamma: Probability = 0.99, n_steps: PositiveInt = 16) -> None:
        self.gamma, self.n_steps = gamma, n_steps

    def bind(self, network: Any, engine: Any, observation_space: Any, action_space: Any, seed: int) -> None:
        super().bind(network, engine, observation_space, action_space, seed)
        self.obs: list[np.ndarray] = []
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.current: np.ndarray | None = None

    def start_policy(self, obs: Any) -> None:
        self.current = np.asarray(obs, np.float32).ravel()

    def act(self, obs: Any) -> int:
        x = np.asarray(obs, np.float32).ravel()
        with torch.no_grad():
            probs = torch.softmax(self.net(to_tensor(x, self.device).unsqueeze(0)).double(), 1)[0].cpu().numpy()
        action = sample_action(probs, self.rng)
        self.obs.append(x)
        self.actions.append(action)
        return action

    def observe(self, action: int, reward: float, next_obs: Any, terminal: bool, end: bool) -> dict[str, float]:
        self.steps += 1
        self.rewards.append(reward)
        if len(self.rewards) < self.n_steps and not end:
            return {}
        if terminal:
            bootstrap = 0.0
        else:
            with torch.no_grad():
                x = to_tensor(np.asarray(next_obs, np.float32).ravel(), self.device).unsqueeze(0)
                bootstrap = float(self.net.value(x)[0])
        returns = np.zeros(len(self.rewards), np.float32)
        running = bootstrap
        for t in reversed(range(len(self.rewards))):
            running = self.rewards[t] + self.gamma * running
            returns[t] = running
        d = self.device
        batch = (to_tensor(np.stack(self.obs), d), to_tensor(np.array(self.actions), d), to_tensor(returns, d))
        loss, logs = self.net.compute_loss(batch)
        self.engine.step(loss)
        self.obs, self.actions, self.rewards = [], [], []
        return {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}
