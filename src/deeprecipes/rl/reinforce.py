"""REINFORCE (Williams 1992): policy-gradient steps on whole episodes, weighted by their normalised returns.

Cookbook 9.5 and Karpathy's "Pong from Pixels": after every ``batch_episodes`` episodes, one optimizer step on
``-mean(R_t * log pi(a_t | s_t))``, where R_t is the discounted return from step t (``gamma``), normalised to mean 0
and standard deviation 1 over the batch (``normalize``: the baseline). Actions are sampled from the softmax policy;
evaluation takes the most probable one.

``preprocess = "pong"`` is Karpathy's preprocessing, with the book's slips fixed: the frame is cropped to rows
35:195, downsampled with ``I[::2, ::2, 0]`` (the book's ``I[:, :, ::2, 0]`` indexes a 3-D frame wrongly), the two
background colours (144, 109) erased, everything else set to 1, and the input is the difference of consecutive
80x80 frames. The return restarts at every point scored (``reset_on_reward``, Pong's game boundary), and the
normalised return weights the log-probabilities (the book computes it but never passes it to the loss).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch

from ..params import OneOf, PositiveInt, Probability
from .base import Agent, discounted, discrete_actions, obs_size, register_agent, to_tensor

__all__ = ["Reinforce", "pong_frame"]


def pong_frame(frame: np.ndarray) -> np.ndarray:
    """Karpathy's Pong preprocessing: 210x160x3 uint8 -> 80x80 float32 of 0s and 1s."""
    img = np.asarray(frame)[35:195][::2, ::2, 0].astype(np.float32)
    img[img == 144] = 0
    img[img == 109] = 0
    img[img != 0] = 1
    return img


def sample_action(probs: np.ndarray, rng: np.random.Generator) -> int:
    cdf = np.cumsum(probs, dtype=np.float64)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(probs) - 1))


@register_agent("reinforce")
class Reinforce(Agent):
    name = "reinforce"

    def __init__(
        self,
        gamma: Probability = 0.99,
        batch_episodes: PositiveInt = 1,
        normalize: bool = True,
        preprocess: Annotated[str, OneOf("none", "pong")] = "none",
        reset_on_reward: bool = False,
    ) -> None:
        self.gamma, self.batch_episodes, self.normalize = gamma, batch_episodes, normalize
        self.preprocess, self.reset_on_reward = preprocess, reset_on_reward

    def network_args(self, observation_space: Any, action_space: Any) -> dict[str, Any]:
        n = 6400 if self.preprocess == "pong" else obs_size(observation_space, self.name)
        return {"n_inputs": n, "n_actions": discrete_actions(action_space, self.name)}

    def bind(self, network: Any, engine: Any, observation_space: Any, action_space: Any, seed: int) -> None:
        super().bind(network, engine, observation_space, action_space, seed)
        self._clear()
        self.prev: np.ndarray | None = None
        self.x: np.ndarray | None = None

    def _clear(self) -> None:
        self.obs: list[np.ndarray] = []
        self.actions: list[int] = []
        self.returns: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.batch_count = 0

    def _input(self, obs: Any) -> np.ndarray:
        if self.preprocess != "pong":
            return np.asarray(obs, np.float32).ravel()
        cur = pong_frame(obs).ravel()
        x = cur - self.prev if self.prev is not None else np.zeros_like(cur)
        self.prev = cur
        return x

    def start_policy(self, obs: Any) -> None:
        self.prev = None
        self.x = self._input(obs)

    def _probs(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.net(to_tensor(x, self.device).unsqueeze(0))
            return torch.softmax(logits.double(), 1)[0].cpu().numpy()

    def act(self, obs: Any) -> int:
        action = sample_action(self._probs(self.x), self.rng)
        self.obs.append(self.x)
        self.actions.append(action)
        return action

    def policy(self, obs: Any) -> int:
        x = self._input(obs) if self.x is None else self.x
        action = int(np.argmax(self._probs(x)))
        self.x = None
        return action

    def greedy(self, obs: Any) -> int:
        return int(np.argmax(self._probs(self._input(obs))))

    def observe(self, action: int, reward: float, next_obs: Any, terminal: bool, end: bool) -> dict[str, float]:
        self.steps += 1
        self.rewards.append(reward)
        self.x = self._input(next_obs)
        return {}

    def end_episode(self) -> dict[str, float]:
        self.episode += 1
        # Karpathy: a point scored at step t ends a game; R_t = r_t, and the steps before it see only its game
        resets = [r != 0 for r in self.rewards] if self.reset_on_reward else None
        self.returns.append(discounted(self.rewards, self.gamma, resets))
        self.rewards = []
        self.batch_count += 1
        if self.batch_count < self.batch_episodes:
            return {}
        loss = self.learn()
        self._clear()
        return {"loss": loss}

    def learn(self) -> float:
        weights = np.concatenate(self.returns)
        if self.normalize:
            weights = (weights - weights.mean()) / np.sqrt(weights.var() + 1e-6)
        d = self.device
        batch = (to_tensor(np.stack(self.obs), d), to_tensor(np.array(self.actions), d), to_tensor(weights, d).float())
        loss, _ = self.net.compute_loss(batch)
        self.engine.step(loss)
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        if self.batch_count:  # episodes collected for a batch that is not complete yet
            pending = {
                "obs": np.stack(self.obs),
                "actions": np.array(self.actions),
                "returns": np.concatenate(self.returns),
                "lengths": np.array([len(r) for r in self.returns]),
            }
        else:
            pending = None
        return {**super().state_dict(), "pending": pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._clear()
        pending = state.get("pending")
        if pending:
            self.obs = list(np.asarray(pending["obs"]))
            self.actions = [int(a) for a in pending["actions"]]
            ends = np.cumsum(np.asarray(pending["lengths"]))
            self.returns = list(np.split(np.asarray(pending["returns"]), ends[:-1]))
            self.batch_count = len(self.returns)
