"""What every agent is to the environment loop (:mod:`deeprecipes.rl.loop`), and the helpers agents share.

An agent is registered under a name (``@register_agent("dqn")``); its ``__init__`` arguments are what a recipe's
``[agent]`` section may set (checked before any work). The loop gives it the network (a registered model), the
engine (the network's optimizer, stepped with ``engine.step(loss)``), the spaces and a seed, then per episode::

    agent.begin_episode(obs)
    a = agent.act(obs)                                   # exploring
    logs = agent.observe(a, r, next_obs, terminal, end)  # learning; scalars for TensorBoard
    ...
    agent.end_episode()

``greedy(obs)`` is the evaluation policy. ``state_dict()`` holds everything else an exact resume needs (replay
buffer, target network, counters, the agent's random generator); the loop saves it between episodes only.

An agent with ``vector = True`` also acts on N environments at once (``env.num_envs``; the methods it adds are
described in :mod:`deeprecipes.rl.vector`); the others refuse ``env.num_envs > 1``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import AGENTS

__all__ = ["Agent", "register_agent", "discrete_actions", "obs_size", "to_tensor", "discounted"]

register_agent = AGENTS.register


def discrete_actions(action_space: Any, agent: str) -> int:
    """The number of actions of a ``Discrete`` space; any other space is one ConfigError line."""
    n = getattr(action_space, "n", None)
    if type(action_space).__name__ != "Discrete" or n is None:
        raise ConfigError(f"agent '{agent}' needs a discrete action space, the environment has {action_space}")
    return int(n)


def obs_size(observation_space: Any, agent: str, flat: bool = True) -> int:
    """The number of values of a ``Box`` observation; other spaces (or images, when ``flat``) are one line."""
    shape = getattr(observation_space, "shape", None)
    if type(observation_space).__name__ != "Box" or not shape:
        raise ConfigError(f"agent '{agent}' needs a Box observation space, the environment has {observation_space}")
    if flat and len(shape) > 1:
        raise ConfigError(
            f"agent '{agent}' with this network takes flat observations, the environment gives {tuple(shape)}; "
            "use an image network (model.name = 'nature-dqn') or env.wrappers = 'atari'"
        )
    return int(np.prod(shape))


def to_tensor(x: Any, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x))
    return t.to(device)


def discounted(rewards: list[float], gamma: float, resets: list[bool] | None = None) -> np.ndarray:
    """R_t = sum_k gamma^k r_{t+k} over one episode (restarting where ``resets`` is true, e.g. Pong's points)."""
    out = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in reversed(range(len(rewards))):
        if resets is not None and resets[t]:
            running = 0.0
        running = rewards[t] + gamma * running
        out[t] = running
    return out


class Agent:
    """Base class: random generator, bookkeeping and the defaults (no learning, no state of its own)."""

    name: ClassVar[str] = ""
    vector: ClassVar[bool] = False  # acts on a batch of N environments (act_batch, observe_batch, settled)

    def bind(self, network: Any, engine: Any, observation_space: Any, action_space: Any, seed: int) -> None:
        """Attach the agent to its network and engine, for an environment with these spaces."""
        self.net, self.engine = network, engine
        self.n_actions = discrete_actions(action_space, self.name)
        self.observation_space = observation_space
        self.rng = np.random.default_rng(seed)
        self.device = next((p.device for p in network.parameters()), torch.device("cpu"))
        self.episode = 0
        self.steps = 0
        self.finished = False

    def network_args(self, observation_space: Any, action_space: Any) -> dict[str, Any]:
        """The network's builder arguments that the environment decides (input and output sizes); the runner passes
        those the network's builder takes."""
        return {
            "n_inputs": obs_size(observation_space, self.name),
            "n_actions": discrete_actions(action_space, self.name),
        }

    def prepare(self, env: Any) -> None:
        """Fit what the agent learns before training from an environment of its own (a feature scaler); a new
        run calls it once, a resumed one does not (its result is in the network's checkpoint)."""

    def begin_episode(self, obs: Any) -> None:
        """A training episode starts with ``obs``."""
        self.start_policy(obs)

    def start_policy(self, obs: Any) -> None:
        """Any episode starts (training or evaluation): reset what the policy keeps within one (a previous frame)."""

    def policy(self, obs: Any) -> int:
        """The evaluation policy: greedy (a stochastic one for agents that have no other)."""
        return self.greedy(obs)

    def act(self, obs: Any) -> int:
        return self.greedy(obs)

    def greedy(self, obs: Any) -> int:
        with torch.no_grad():
            x = to_tensor(obs, self.device).unsqueeze(0)
            return int(self.net(x).argmax(1).item())

    def observe(self, action: int, reward: float, next_obs: Any, terminal: bool, end: bool) -> dict[str, float]:
        self.steps += 1
        return {}

    def end_episode(self) -> dict[str, float]:
        self.episode += 1
        return {}

    def scalars(self) -> dict[str, float]:
        """Values worth a curve besides the loss (epsilon)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "episode": self.episode, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.episode, self.steps = int(state["episode"]), int(state["steps"])
