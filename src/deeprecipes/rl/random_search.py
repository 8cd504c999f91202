"""Agents that do not learn by gradient: a random policy (cookbook 9.1) and random search (9.2).

- ``random``: uniform random actions (``np.random.randint(0, n)``), for training and evaluation alike.
- ``random-search``: ``candidates`` one-layer sigmoid policies with N(0, 1) weights (the ``sigmoid-policy``
  network), each playing ``episodes_per_candidate`` episodes; the one with the longest mean episode length is kept
  (loaded into the network) and the agent is finished. The observation is the book's: the channel mean of the RGB
  frame, pixels equal to 150 set to 0, then ``(img - 128) / 128 - 1``, flattened (210 x 160 = 33,600 inputs).
  Its policy samples an action (``tf.multinomial`` on the sigmoid outputs), in evaluation too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..params import PositiveInt
from .base import Agent, discrete_actions, register_agent, to_tensor
from .reinforce import sample_action

__all__ = ["RandomAgent", "RandomSearch", "pacman_frame"]


def pacman_frame(frame: np.ndarray) -> np.ndarray:
    """Cookbook 9.2's preprocessing: grey by channel mean, 150 -> 0 for contrast, (img - 128) / 128 - 1, flat."""
    img = np.asarray(frame, np.float32)
    img = img.mean(axis=2) if img.ndim == 3 else img
    img[img == 150] = 0
    return ((img - 128) / 128 - 1).ravel()


@register_agent("random")
class RandomAgent(Agent):
    name = "random"

    def network_args(self, observation_space: Any, action_space: Any) -> dict[str, Any]:
        shape = tuple(observation_space.shape or (1,))
        return {"n_inputs": int(np.prod(shape[:2])), "n_actions": discrete_actions(action_space, self.name)}

    def act(self, obs: Any) -> int:
        return int(self.rng.integers(self.n_actions))

    def policy(self, obs: Any) -> int:
        return self.act(obs)


@register_agent("random-search")
class RandomSearch(RandomAgent):
    name = "random-search"

    def __init__(self, candidates: PositiveInt = 10, episodes_per_candidate: PositiveInt = 10) -> None:
        self.candidates, self.per_candidate = candidates, episodes_per_candidate

    def bind(self, network: Any, engine: Any, observation_space: Any, action_space: Any, seed: int) -> None:
        super().bind(network, engine, observation_space, action_space, seed)
        network.requires_grad_(False)
        self.lengths: list[int] = []
        self.scores: list[float] = []
        self.best: dict[str, torch.Tensor] | None = None
        self.candidate_length = 0

    def policy(self, obs: Any) -> int:
        with torch.no_grad():
            logits = self.net(to_tensor(pacman_frame(obs), self.device).unsqueeze(0))
            probs = torch.softmax(logits.double(), 1)[0].cpu().numpy()
        return sample_action(probs, self.rng)

    def act(self, obs: Any) -> int:
        return self.policy(obs)

    def observe(self, action: int, reward: float, next_obs: Any, terminal: bool, end: bool) -> dict[str, float]:
        self.steps += 1
        self.candidate_length += 1
        return {}

    def end_episode(self) -> dict[str, float]:
        self.episode += 1
        self.lengths.append(self.candidate_length)
        self.candidate_length = 0
        if len(self.lengths) < self.per_candidate:
            return {}
        score = float(np.mean(self.lengths))
        k = len(self.scores)
        self.scores.append(score)
        self.lengths = []
        if self.best is None or score > max(self.scores[:-1]):
            self.best = {n: t.detach().clone() for n, t in self.net.state_dict().items()}
        if len(self.scores) == self.candidates:
            self.net.load_state_dict(self.best)
            self.finished = True
        else:
            gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
            self.net.redraw(gen)
        return {"candidate": k, "candidate_mean_length": score}

    def results(self) -> dict[str, Any]:
        """What the summary records: each candidate's mean episode length, and the best."""
        best = int(np.argmax(self.scores)) if self.scores else None
        return {"candidate_mean_lengths": self.scores, "best_candidate": best}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "lengths": self.lengths,
            "scores": self.scores,
            "best": self.best,
            "finished": self.finished,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.lengths = [int(n) for n in state["lengths"]]
        self.scores = [float(s) for s in state["scores"]]
        self.best, self.finished = state["best"], bool(state["finished"])
