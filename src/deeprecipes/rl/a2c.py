"""A2C (Mnih et al. 2016, synchronous advantage actor-critic), on one environment or on N (``env.num_envs``).

Every ``n_steps`` environment steps (or at an episode's end) one optimizer step on the network's loss: the policy
gradient weighted by the advantage ``R_t - V(s_t)``, plus ``value_coef`` times the value error, minus
``entropy_coef`` times the entropy (both set on the ``actor-critic-mlp`` network). R_t is the n-step return,
bootstrapped from ``V(s_{t+n})`` unless the episode terminated (a time limit is not a terminal state).

On N environments (:mod:`deeprecipes.rl.vector`) the agent samples the N actions from one forward pass and updates
every ``n_steps`` steps of all of them (a batch of ``n_steps * N`` transitions), as Stable-Baselines3's A2C: an
episode that ends inside the rollout cuts its returns there, bootstrapped from the value of its last observation when
it was truncated rather than terminated.
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
    vector = True

    def __init__(self, gamma: Probability = 0.99, n_steps: PositiveInt = 16) -> None:
        self.gamma, self.n_steps = gamma, n_steps

    def bind(self, network: Any, engine: Any, observation_space: Any, action_space: Any, seed: int) -> None:
        super().bind(network, engine, observation_space, action_space, seed)
        self.obs: list[np.ndarray] = []
        self.actions: list[int] = []
        self.rewards: list[Any] = []  # floats (one environment), arrays of N (vectorised)
        self.ends: list[np.ndarray] = []
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

    # -------------------------------------------------------------------------------------------------------------
    # N environments

    def act_batch(self, obs: Any) -> np.ndarray:
        """One action per environment, sampled from one forward pass over the batch of observations."""
        x = np.asarray(obs, np.float32).reshape(len(obs), -1)
        with torch.no_grad():
            probs = torch.softmax(self.net(to_tensor(x, self.device)).double(), 1).cpu().numpy()
        actions = np.array([sample_action(p, self.rng) for p in probs], np.int64)
        self.obs.append(x)
        self.actions.append(actions)
        return actions

    def _values(self, obs: Any) -> np.ndarray:
        x = np.asarray(obs, np.float32).reshape(len(obs), -1)
        with torch.no_grad():
            return self.net.value(to_tensor(x, self.device)).double().cpu().numpy()

    def observe_batch(
        self, actions: Any, rewards: np.ndarray, next_obs: Any, terminal: np.ndarray, end: np.ndarray
    ) -> dict[str, float]:
        """Store one step of every environment; after ``n_steps`` of them, one update on the whole rollout."""
        self.steps += len(rewards)
        r = np.asarray(rewards, np.float64).copy()
        cut = np.asarray(end) & ~np.asarray(terminal)  # a time limit: the return goes on from its last state's value
        if cut.any():
            r[cut] += self.gamma * self._values(np.asarray(next_obs)[cut])
        self.rewards.append(r)
        self.ends.append(np.asarray(end, bool))
        if len(self.rewards) < self.n_steps:
            return {}
        running = self._values(next_obs)
        returns = np.zeros((len(self.rewards), len(r)), np.float32)
        for t in reversed(range(len(self.rewards))):
            running = self.rewards[t] + self.gamma * running * ~self.ends[t]
            returns[t] = running
        d = self.device
        obs, actions = np.concatenate(self.obs), np.concatenate(self.actions)
        loss, logs = self.net.compute_loss((to_tensor(obs, d), to_tensor(actions, d), to_tensor(returns.ravel(), d)))
        self.engine.step(loss)
        self.obs, self.actions, self.rewards, self.ends = [], [], [], []
        return {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}

    def settled(self) -> bool:
        """No partial rollout held: the agent's state is whole (a checkpoint may be taken)."""
        return not self.obs and not self.rewards

    def state_dict(self) -> dict[str, Any]:
        if not self.settled():
            raise RuntimeError("an A2C agent is saved between updates only")
        return super().state_dict()
