"""Gymnasium environments by id, and the environment source of a run: which episode it is in, and how it was seeded.

``gymnasium`` and ``ale_py`` are imported on first use (``import deeprecipes`` stays fast). :func:`make_env` builds an
environment from a recipe's ``[env]`` section, with the standard Atari wrappers when asked; :func:`env_ids` lists
what can be made, and an unknown id is one :class:`~deeprecipes.errors.ConfigError` line with the close matches.

A Gymnasium environment cannot be serialised, so :class:`EnvSource` makes it reproducible instead: episode ``k`` of
a run with seed ``s`` starts with ``reset(seed=s * 1_000_003 + k)``, which reseeds the environment's own generator
(and ALE's, sticky actions included). Its state is the episode counter, the step counter and the episode statistics;
a checkpoint taken between episodes therefore holds everything needed to play the rest of the run again exactly.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from typing import Any

import numpy as np

from ..config import EnvConfig
from ..errors import ConfigError

__all__ = ["gym", "env_ids", "matching_envs", "check_env_id", "make_env", "EnvSource", "episode_seed"]


def gym() -> Any:
    """The ``gymnasium`` module, with the ALE (Atari) and MinAtar environments registered when ``ale_py`` and
    ``minatar`` are installed."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # frames are rendered off-screen (rgb_array): no display
    try:
        import gymnasium
    except ImportError:
        raise ConfigError("reinforcement learning needs gymnasium: pip install 'deeprecipes[rl]'") from None
    try:
        import ale_py

        gymnasium.register_envs(ale_py)
    except ImportError:
        pass
    if not any(k.startswith("MinAtar/") for k in gymnasium.registry):
        try:  # MinAtar (10x10 Atari-like games), when installed
            from minatar.gym import register_envs

            register_envs()
        except ImportError:
            pass
    return gymnasium


def env_ids(pattern: str = "*") -> list[str]:
    """The environment ids that can be made, matching a shell-style ``pattern`` (case-insensitive)."""
    pattern = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return sorted(k for k in gym().registry if fnmatch.fnmatch(k.lower(), pattern.lower()))


def _close_matches(name: str, ids: list[str]) -> str:
    close = difflib.get_close_matches(name, ids, n=5, cutoff=0.5)
    if not close:
        low = name.lower().split("/")[-1].split("-")[0].strip("*?[]")
        close = [k for k in ids if low and low in k.lower()][:5]
    return f"; close matches: {', '.join(close)}" if close else "; 'deeprecipes envs' lists them"


def check_env_id(env_id: str) -> None:
    """One ConfigError line, with close matches, when no environment ``env_id`` is registered."""
    ids = env_ids()
    if env_id not in ids:
        raise ConfigError(f"unknown environment '{env_id}'{_close_matches(env_id, ids)}")


def matching_envs(pattern: str = "*") -> list[str]:
    """:func:`env_ids` for ``deeprecipes envs``: one ConfigError line, with close matches, when none matches."""
    ids = env_ids(pattern)
    if not ids:
        raise ConfigError(f"no environment matches '{pattern}'{_close_matches(pattern, env_ids())}")
    return ids


def make_env(cfg: EnvConfig, *, render: bool = False, clip_rewards: bool = True) -> Any:
    """The environment of ``cfg``: ``gym.make(id, **args)``, an episode limit, and the ``atari`` wrappers (noop
    reset up to 30, frame skip 4 with max-pooling, 84x84 grey, rewards clipped to their sign unless
    ``clip_rewards`` is False, a stack of 4 frames). Training clips; evaluation does not, so that an Atari
    evaluation is the game's score, as the papers report it.

    Episodic life (a lost life ends the episode for learning) is the loop's business: it marks the transition
    terminal without resetting the game (``info["lives"]``), as Stable-Baselines3's EpisodicLifeEnv does."""
    g = gym()
    check_env_id(cfg.id)
    kwargs = dict(cfg.args)
    if render:
        kwargs["render_mode"] = "rgb_array"
    if cfg.max_episode_steps:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if cfg.wrappers == "atari":
        kwargs.setdefault("frameskip", 1)  # AtariPreprocessing skips the frames
    try:
        env = g.make(cfg.id, **kwargs)
    except TypeError as e:
        raise ConfigError(f"env.args do not fit environment '{cfg.id}': {e}") from None
    if cfg.wrappers == "atari":
        env = g.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)
        if clip_rewards:
            env = g.wrappers.TransformReward(env, lambda r: float(np.sign(r)))
        env = g.wrappers.FrameStackObservation(env, 4)
    return env


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of a run seeded ``seed``; evaluation uses seeds far from training's."""
    return (seed * 1_000_003 + episode) % 2**32


class EnvSource:
    """The environment a run trains on, with state: the episode counter, steps, and each episode's return and length.

    ``reset()`` starts episode ``episodes`` with its own seed; ``step(action)`` plays one step and, at the end of
    an episode, records it. ``state_dict()`` is valid between episodes (the runner checkpoints only there)."""

    def __init__(self, cfg: EnvConfig, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        self.env = make_env(cfg)
        self.steps = 0
        self.episodes = 0
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self._ret, self._len = 0.0, 0
        self.in_episode = False

    @property
    def observation_space(self) -> Any:
        return self.env.observation_space

    @property
    def action_space(self) -> Any:
        return self.env.action_space

    def reset(self) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=episode_seed(self.seed, self.episodes))
        self._ret, self._len, self.in_episode = 0.0, 0, True
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self._ret += float(reward)
        self._len += 1
        if terminated or truncated:
            self.returns.append(self._ret)
            self.lengths.append(self._len)
            self.episodes += 1
            self.in_episode = False
        return obs, float(reward), bool(terminated), bool(truncated), info

    def state_dict(self) -> dict[str, Any]:
        if self.in_episode:
            raise RuntimeError("an environment source is saved between episodes only")
        return {"steps": self.steps, "episodes": self.episodes, "returns": self.returns, "lengths": self.lengths}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.episodes = int(state["steps"]), int(state["episodes"])
        self.returns = [float(r) for r in state["returns"]]
        self.lengths = [int(n) for n in state["lengths"]]

    def close(self) -> None:
        self.env.close()
