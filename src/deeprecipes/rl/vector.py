"""Vectorised environments (``env.num_envs > 1``): N seeded copies of the environment stepped together, and the loop
that drives an agent acting on the batch of their observations in one forward pass.

:class:`VectorEnvSource` steps a ``gymnasium.vector.SyncVectorEnv`` of N environments made by
:func:`~deeprecipes.rl.envs.make_env` (the same wrappers each), with automatic resets disabled: a sub-environment whose
episode ends is reset by the source, with a seed of its own. Episode ``j`` of sub-environment ``i`` starts with
``reset(seed=episode_seed(s, i + N * j))`` (with N = 1, the seeds of :class:`~deeprecipes.rl.envs.EnvSource`).
``train.max_steps`` counts environment steps summed over the sub-environments; every episode that ends, in any of
them, is one more episode (numbered in the order they end, sub-environment index breaking ties).

Exact resume. Sub-environments end their episodes at different times, so there is no moment between episodes to
checkpoint at. The source's state therefore also holds, for each sub-environment, its episode count and the actions
of its episode in progress; :meth:`VectorEnvSource.start` resets each with its episode's seed and replays those
actions, which brings it back to the same state (the environments here are deterministic given the seed and the
actions; one that ends during a replay is an error). The loop checkpoints only where the agent holds no partial
rollout (right after an update), so the agent's state is whole too.

An agent that acts on batches sets ``vector = True`` and has ``act_batch(obs) -> actions``,
``observe_batch(actions, rewards, next_obs, terminal, end) -> logs`` (``next_obs`` as the step returned it, before
any reset) and ``settled()`` (no partial rollout held: a checkpoint may be taken).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ..config import EnvConfig
from ..errors import ConfigError
from ..training.events import writing_events
from .envs import episode_seed, gym, make_env
from .loop import EnvironmentLoop

__all__ = ["VectorEnvSource", "VectorStep", "VectorEnvironmentLoop", "check_vector_agent"]


def check_vector_agent(agent: Any, cfg: EnvConfig) -> None:
    """One ConfigError line when ``cfg.num_envs > 1`` and ``agent`` cannot act on a batch (or the environment is
    wrapped for Atari, whose episodic life the vector loop does not track)."""
    if cfg.num_envs <= 1:
        return
    if not getattr(agent, "vector", False):
        raise ConfigError(
            f"agent '{agent.name}' does not support env.num_envs = {cfg.num_envs} (vectorised environments); "
            "set env.num_envs = 1"
        )
    if cfg.wrappers == "atari":
        raise ConfigError(f"env.num_envs = {cfg.num_envs} does not support env.wrappers = 'atari' (episodic life)")


@dataclass
class VectorStep:
    """One step of all sub-environments: what they returned (``obs`` before any reset) and which episodes ended."""

    obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    finished: list[int]  # the numbers (counted from 1) of the episodes that ended, in sub-environment order

    @property
    def ended(self) -> np.ndarray:
        return self.terminated | self.truncated


class VectorEnvSource:
    """N environments stepped together, with the state an exact resume needs (see the module docstring).

    ``start()`` gives the first batch of observations (after a restore: the episodes in progress, replayed);
    ``step(actions)`` plays one step of every sub-environment, resets those whose episode ended and gives the
    observations to act on next and the :class:`VectorStep`. ``state_dict()`` is valid between steps."""

    def __init__(self, cfg: EnvConfig, seed: int, num_envs: int) -> None:
        self.cfg, self.seed, self.num_envs = cfg, seed, num_envs
        g = gym()
        fns = [partial(make_env, cfg) for _ in range(num_envs)]
        self.env = g.vector.SyncVectorEnv(fns, autoreset_mode=g.vector.AutoresetMode.DISABLED)
        self.steps = 0
        self.episodes = 0
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.counts = [0] * num_envs  # episodes each sub-environment has finished
        self.played: list[list[int]] = [[] for _ in range(num_envs)]  # actions of each episode in progress
        self._ret = np.zeros(num_envs, np.float64)
        self._len = np.zeros(num_envs, np.int64)

    @property
    def observation_space(self) -> Any:
        return self.env.single_observation_space

    @property
    def action_space(self) -> Any:
        return self.env.single_action_space

    def episode_seed(self, i: int) -> int:
        """The reset seed of sub-environment ``i``'s current episode."""
        return episode_seed(self.seed, i + self.num_envs * self.counts[i])

    def start(self) -> np.ndarray:
        """Reset every sub-environment with its episode's seed and replay the actions its episode has taken."""
        obs, _ = self.env.reset(seed=[self.episode_seed(i) for i in range(self.num_envs)])
        self._ret[:], self._len[:] = 0.0, 0
        for i, actions in enumerate(self.played):
            sub = self.env.envs[i]
            for a in actions:
                o, reward, terminated, truncated, _ = sub.step(a)
                self._ret[i] += float(reward)
                self._len[i] += 1
                if terminated or truncated:
                    raise RuntimeError(f"sub-environment {i} ended while replaying its episode: not deterministic")
                obs[i] = o
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VectorStep]:
        obs, rewards, terminated, truncated, _ = self.env.step(np.asarray(actions))
        self.steps += self.num_envs
        self._ret += rewards
        self._len += 1
        for i, a in enumerate(actions):
            self.played[i].append(int(a))
        ended = terminated | truncated
        finished = []
        for i in np.flatnonzero(ended):
            self.returns.append(float(self._ret[i]))
            self.lengths.append(int(self._len[i]))
            self.episodes += 1
            finished.append(self.episodes)
            self.counts[i] += 1
            self.played[i] = []
            self._ret[i], self._len[i] = 0.0, 0
        step = VectorStep(obs, np.asarray(rewards, np.float64), terminated, truncated, finished)
        if not finished:
            return obs, step
        seeds = [self.episode_seed(i) if e else None for i, e in enumerate(ended)]
        fresh, _ = self.env.reset(seed=seeds, options={"reset_mask": np.asarray(ended, np.bool_)})
        return fresh, step

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "episodes": self.episodes,
            "returns": self.returns,
            "lengths": self.lengths,
            "counts": list(self.counts),
            "played": [list(p) for p in self.played],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.episodes = int(state["steps"]), int(state["episodes"])
        self.returns = [float(r) for r in state["returns"]]
        self.lengths = [int(n) for n in state["lengths"]]
        saved = len(state.get("counts", [None]))
        if saved != self.num_envs:
            raise ConfigError(f"the checkpoint has {saved} environments, env.num_envs is {self.num_envs}")
        self.counts = [int(c) for c in state["counts"]]
        self.played = [[int(a) for a in p] for p in state["played"]]

    def close(self) -> None:
        self.env.close()


class VectorEnvironmentLoop(EnvironmentLoop):
    """:class:`~deeprecipes.rl.loop.EnvironmentLoop` on a :class:`VectorEnvSource`: the agent acts on the batch of
    observations; the loop plays on to the agent's next update (rather than an episode's end) between checkpoints,
    and the run stops at the first such point after ``max_steps`` environment steps. Episodes in progress then are
    left unfinished (and unlogged)."""

    def run(self) -> list[dict[str, Any]]:
        if self.episodic_life:
            raise ConfigError("env.num_envs > 1 does not support episodic life (env.wrappers = 'atari')")
        self.obs = self.source.start()
        return super().run()

    def _advance(self) -> None:
        """One rollout: vector steps up to the agent's next update. The episodes that ended in it are logged at its
        end, with the loss of that update (the one that learned from their last steps)."""
        agent, source = self.agent, self.source
        losses: list[float] = []
        ended: list[tuple[int, int, dict[str, float]]] = []  # episode number, step it ended at, agent's extras
        while True:
            actions = agent.act_batch(self.obs)
            self.obs, step = source.step(actions)
            logs = agent.observe_batch(actions, step.rewards, step.obs, step.terminated, step.ended)
            if "loss" in logs and math.isfinite(logs["loss"]):
                losses.append(logs["loss"])
            if self.writer is not None and "loss" in logs:
                with writing_events(self.run_dir / "tb"):
                    for k, v in {**agent.scalars(), **logs}.items():
                        self.writer.add_scalar(f"step/{k}", float(v), source.steps)
            ended += [(k, source.steps, agent.end_episode()) for k in step.finished]
            if agent.settled():
                break
        for k, at, extra in ended:
            self._record(losses, extra, k, step=at)
