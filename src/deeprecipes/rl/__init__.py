"""Reinforcement learning (cookbook chapter 9): Gymnasium environments, agents, a replay buffer, the environment loop.

- :mod:`.envs`: environments by id (``deeprecipes envs``), the Atari wrappers, the seeded environment source;
- :mod:`.buffer`: a uint8-friendly replay buffer that stores each frame once and checkpoints its contents;
- :mod:`.loop`: the loop a run's ``rl`` phase drives (steps, episodes, curves, checkpoints), evaluation and GIFs;
- :mod:`.vector`: N environments stepped together (``env.num_envs``), seeded and replayed for exact resume;
- one file per agent, registered by name for a recipe's ``[agent]`` section: :mod:`.dqn` (``dqn``),
  :mod:`.reinforce` (``reinforce``), :mod:`.a2c` (``a2c``), :mod:`.qlearning` (``rbf-q-learning``),
  :mod:`.random_search` (``random``, ``random-search``). Their networks are registered models
  (:mod:`deeprecipes.models.agents`).
"""

from . import a2c, dqn, qlearning, random_search, reinforce
from .base import Agent, register_agent
from .buffer import ReplayBuffer
from .envs import EnvSource, env_ids, make_env
from .loop import EnvironmentLoop, evaluate_agent

__all__ = [
    "Agent",
    "register_agent",
    "ReplayBuffer",
    "EnvSource",
    "EnvironmentLoop",
    "env_ids",
    "make_env",
    "evaluate_agent",
    "a2c",
    "dqn",
    "qlearning",
    "random_search",
    "reinforce",
]
