"""Q-learning with RBF features and one linear model per action (cookbook 9.3, CartPole).

Before training, scikit-learn fits the features: a ``StandardScaler`` on ``scaler_samples`` states, then a
``FeatureUnion`` of ``RBFSampler``s (one per entry of ``rbf_gammas``, ``n_components`` each) on the scaled states.
The fitted arrays go into the ``rbf-q-linear`` network's buffers. Then every step is one SGD update of the taken
action's model towards ``G = r + gamma * max_a' Q(s', a')``, with epsilon-greedy acting at ``eps = 1/sqrt(n+1)``
in episode n.

The book's choices, kept by default (``faithful``):

- ``scaler_fit = "uniform"``: the scaler sees 20,000 draws of ``np.random.random((20000, 4))``, uniform on
  [0, 1), not CartPole states (``"states"`` fits it on states of random play, the fix);
- the reward is ``failure_reward`` (-400) whenever ``done``, the 200-step time limit included
  (``penalize_truncation``), and the target bootstraps from the next state even then (``bootstrap_terminal``).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch

from ..params import OneOf, PositiveInt, Probability
from .base import Agent, register_agent, to_tensor
from .envs import episode_seed

__all__ = ["RBFQLearning"]


@register_agent("rbf-q-learning")
class RBFQLearning(Agent):
    name = "rbf-q-learning"

    def __init__(
        self,
        gamma: Probability = 0.97,
        failure_reward: float = -400.0,
        scaler_fit: Annotated[str, OneOf("uniform", "states")] = "uniform",
        scaler_samples: PositiveInt = 20_000,
        rbf_gammas: list[float] | None = None,
        penalize_truncation: bool = True,
        bootstrap_terminal: bool = True,
    ) -> None:
        self.gamma, self.failure_reward = gamma, failure_reward
        self.scaler_fit, self.scaler_samples = scaler_fit, scaler_samples
        self.rbf_gammas = [0.02, 1.0, 0.5, 0.1] if rbf_gammas is None else list(rbf_gammas)
        self.penalize_truncation, self.bootstrap_terminal = penalize_truncation, bootstrap_terminal

    def network_args(self, observation_space: Any, action_space: Any) -> dict[str, Any]:
        return {**super().network_args(observation_space, action_space), "n_samplers": len(self.rbf_gammas)}

    def _states(self, env: Any) -> np.ndarray:
        n_dims = int(np.prod(env.observation_space.shape))
        if self.scaler_fit == "uniform":
            return self.rng.random((self.scaler_samples, n_dims))  # the book's np.random.random((20000, 4))
        states: list[np.ndarray] = []
        k = 0
        while len(states) < self.scaler_samples:
            obs, _ = env.reset(seed=episode_seed(int(self.rng.integers(2**31)), k))
            done = False
            while not done and len(states) < self.scaler_samples:
                states.append(np.asarray(obs, np.float64).ravel())
                obs, _, terminated, truncated, _ = env.step(int(self.rng.integers(self.n_actions)))
                done = terminated or truncated
            k += 1
        return np.stack(states)

    def prepare(self, env: Any) -> None:
        from sklearn.kernel_approximation import RBFSampler
        from sklearn.pipeline import FeatureUnion
        from sklearn.preprocessing import StandardScaler

        states = self._states(env)
        scaler = StandardScaler().fit(states)
        n = self.net.n_components
        union = FeatureUnion(
            [
                (f"rbf{k}", RBFSampler(gamma=g, n_components=n, random_state=int(self.rng.integers(2**31))))
                for k, g in enumerate(self.rbf_gammas)
            ]
        ).fit(scaler.transform(states))
        samplers = [s for _, s in union.transformer_list]
        with torch.no_grad():
            self.net.scaler_mean.copy_(torch.as_tensor(scaler.mean_))
            self.net.scaler_scale.copy_(torch.as_tensor(scaler.scale_))
            self.net.rbf_weights.copy_(torch.as_tensor(np.stack([s.random_weights_ for s in samplers])))
            self.net.rbf_offsets.copy_(torch.as_tensor(np.stack([s.random_offset_ for s in samplers])))

    @property
    def epsilon(self) -> float:
        return 1.0 / np.sqrt(self.episode + 1)

    def act(self, obs: Any) -> int:
        self.current = np.asarray(obs, np.float32).ravel()
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.n_actions))
        return self.greedy(obs)

    def observe(self, action: int, reward: float, next_obs: Any, terminal: bool, end: bool) -> dict[str, float]:
        self.steps += 1
        done = end if self.penalize_truncation else terminal
        if done:
            reward = self.failure_reward
        d = self.device
        with torch.no_grad():
            q_next = float(self.net(to_tensor(np.asarray(next_obs, np.float32).ravel(), d).unsqueeze(0)).max())
        target = reward + (self.gamma * q_next if (self.bootstrap_terminal or not done) else 0.0)
        batch = (
            to_tensor(self.current, d).unsqueeze(0),
            torch.tensor([action], device=d),
            torch.tensor([target], device=d),
        )
        loss, _ = self.net.compute_loss(batch)
        self.engine.step(loss)
        return {"loss": float(loss.detach())} if self.steps % 50 == 0 else {}

    def scalars(self) -> dict[str, float]:
        return {"epsilon": float(self.epsilon)}
