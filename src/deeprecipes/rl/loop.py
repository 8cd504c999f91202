"""The environment loop of a reinforcement-learning run: steps, episodes, curves, checkpoints, evaluation, a GIF.

:class:`EnvironmentLoop` plays ``max_steps`` environment steps (``train.max_steps``, ``--steps``; the episode
in progress is played to its end) with an agent, logging in environment steps and episodes: a progress bar (or
one line every 10% of the steps), one JSON line per episode in ``metrics.jsonl``, and TensorBoard scalars
(``episode/return`` and ``episode/length``, raw and as the mean of the last 100 episodes; the agent's ``epsilon``
and ``loss``, by environment step).

Exact resume. A Gymnasium environment cannot be saved, so the loop checkpoints only between episodes (the first
episode end after every ``checkpoint_every`` steps, and the end of the run); each episode is reseeded from the run's
seed and its index (:class:`deeprecipes.rl.envs.EnvSource`). A checkpoint holds the network, the optimizer and the
global random generators (the engine's state), the agent's state (replay buffer, target network, its generator)
and the source's counters. A run killed mid-episode resumes at the episode's start and plays it again identically,
so on CPU it ends with the weights of a run never stopped. (On N environments, ``env.num_envs``, the loop of
:mod:`deeprecipes.rl.vector` checkpoints between updates instead, and replays the episodes in progress.)

:func:`evaluate_agent` plays greedy episodes with seeds of their own; :func:`save_gif` records one of them.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_text, writing
from ..training.checkpoint import load_checkpoint, read_index, save_checkpoint
from ..training.events import close_events, event_writer, writing_events
from .envs import EnvSource, episode_seed, make_env

__all__ = ["EnvironmentLoop", "evaluate_agent", "save_gif", "EVAL_OFFSET"]

log = logging.getLogger("deeprecipes")

EVAL_OFFSET = 2**31  # evaluation episodes are seeded far from the training episodes


class EnvironmentLoop:
    """Train ``agent`` on ``source`` for ``max_steps`` environment steps, writing into ``run_dir`` (or nowhere)."""

    def __init__(
        self,
        agent: Any,
        source: EnvSource,
        engine: Any,
        *,
        max_steps: int,
        run_dir: Path | None = None,
        checkpoint_every: int = 0,
        clock: Any = None,
        progress: bool | None = None,
        episodic_life: bool = False,
        log_every: int = 50,
        evaluate: Callable[[], dict[str, float]] | None = None,
        eval_every: int = 0,
        max_episodes: int = 0,
    ) -> None:
        self.agent, self.source, self.engine = agent, source, engine
        self.max_steps, self.run_dir, self.clock = max_steps, run_dir, clock
        self.max_episodes = max_episodes
        self.checkpoint_every = checkpoint_every or (max(max_steps // 10, 1) if max_steps else 10_000)
        self.live = sys.stderr.isatty() if progress is None else progress
        self.episodic_life, self.log_every = episodic_life, log_every
        self.last_checkpoint = 0
        self.writer: Any = None
        self.evaluate, self.eval_every = evaluate, eval_every
        # periodic greedy evaluations: the best one's weights are the "best" checkpoint
        self.evals: dict[str, Any] = {"last": 0, "best": None, "best_step": None, "solved_step": None, "solved_s": None}
        self.target: float | None = None  # the return that counts as solved (the recipe's target)

    # -------------------------------------------------------------------------------------------------------------
    # state

    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "source": self.source.state_dict(),
            "engine": self.engine.state_dict(),
            "clock": self.clock.state_dict() if self.clock is not None else {},
            "evals": dict(self.evals),
        }

    def save(self, best_value: float | None = None) -> Path | None:
        if self.run_dir is None:
            return None
        s = self.source
        name = f"ckpt-e{s.episodes:07d}-s{s.steps:09d}"
        self.last_checkpoint = s.steps
        weights, state = self.engine.model.state_dict(), self.state_dict()
        return save_checkpoint(self.run_dir / "checkpoints", name, weights, state, best_value=best_value)

    def _periodic_eval(self) -> None:
        """A greedy evaluation every ``eval_every`` steps (between episodes; it draws from no training generator);
        a new best is checkpointed as the run's best."""
        s = self.source
        if self.evaluate is None or not self.eval_every or s.steps - self.evals["last"] < self.eval_every:
            return
        ev = self.evals
        ev["last"] = s.steps
        metrics = self.evaluate()
        mean = metrics["eval_return_mean"]
        if self.writer is not None:
            with writing_events(self.run_dir / "tb"):
                self.writer.add_scalar("eval/return_mean", mean, s.steps)
                self.writer.add_scalar("eval/return_std", metrics["eval_return_std"], s.steps)
        log.info("evaluation at step %d: return %.1f +- %.1f", s.steps, mean, metrics["eval_return_std"])
        if self.target is not None and mean >= self.target and ev["solved_step"] is None:
            ev["solved_step"] = s.steps
            ev["solved_s"] = round(self.clock.elapsed(), 2) if self.clock is not None else None
        if ev["best"] is None or mean > ev["best"]:
            ev["best"], ev["best_step"] = mean, s.steps
            self.save(best_value=mean)

    def _done(self) -> bool:
        s = self.source
        steps_done = bool(self.max_steps) and s.steps >= self.max_steps
        episodes_done = bool(self.max_episodes) and s.episodes >= self.max_episodes
        return steps_done or episodes_done or self.agent.finished

    def _has_checkpoint(self) -> bool:
        return self.run_dir is None or bool(read_index(self.run_dir / "checkpoints").get("latest"))

    def restore(self) -> Path | None:
        """Load the latest checkpoint of ``run_dir`` when there is one; the checkpoint's folder, else None."""
        ckpt = None if self.run_dir is None else self.run_dir / "checkpoints"
        if ckpt is None or not read_index(ckpt).get("latest"):
            return None
        weights, state, path = load_checkpoint(ckpt)
        self.engine.model.load_state_dict(weights)
        self.engine.load_state_dict(state["engine"])  # optimizer, global random generators
        self.agent.load_state_dict(state["agent"])
        self.source.load_state_dict(state["source"])
        if self.clock is not None:
            self.clock.load_state_dict(state["clock"])
        self.evals.update(state.get("evals", {}))
        self.last_checkpoint = self.source.steps
        return path

    # -------------------------------------------------------------------------------------------------------------
    # the loop

    def run(self) -> list[dict[str, Any]]:
        """Play until ``max_steps`` environment steps (or the agent is finished); the per-episode records."""
        self._open_logs()
        bar = self._bar()
        t0, s0 = time.perf_counter(), self.source.steps
        try:
            while not self._done():
                before, episodes_before = self.source.steps, self.source.episodes
                self._advance()
                s = self.source
                if bar is not None:
                    bar.update(s.steps - before)
                    if s.episodes:
                        mean100 = f"{np.mean(s.returns[-100:]):.1f}"
                        bar.set_postfix(episode=s.episodes, ret=f"{s.returns[-1]:.1f}", mean100=mean100, refresh=False)
                elif self._tenth(before, episodes_before) and s.episodes:
                    fps = (s.steps - s0) / max(time.perf_counter() - t0, 1e-9)
                    log.info(
                        "step %d  episode %d  return %.1f  mean100 %.1f  (%.0f steps/s)",
                        *(s.steps, s.episodes, s.returns[-1], float(np.mean(s.returns[-100:])), fps),
                    )
                self._periodic_eval()
                if self.source.steps - self.last_checkpoint >= self.checkpoint_every:
                    self.save()
            if self.source.steps != self.last_checkpoint or not self._has_checkpoint():
                self.save()
        finally:
            if bar is not None:
                bar.close()
            if self.writer is not None:
                close_events(self.writer)
        return self.history()

    def _tenth(self, before: int, episodes_before: int) -> bool:
        """Whether the last episode crossed a tenth of the run (in steps, or in episodes when only they count)."""
        if self.max_steps:
            return self.source.steps * 10 // self.max_steps > before * 10 // self.max_steps
        n, total = self.source.episodes, max(self.max_episodes, 1)
        return n * 10 // total > episodes_before * 10 // total

    def _advance(self) -> None:
        """Play on to the next point where the run may be checkpointed: here, one whole episode."""
        self._episode()

    def _episode(self) -> dict[str, Any]:
        agent, source = self.agent, self.source
        obs, info = source.reset()
        agent.begin_episode(obs)
        lives = info.get("lives")
        losses: list[float] = []
        while True:
            action = agent.act(obs)
            obs, reward, terminated, truncated, info = source.step(action)
            terminal = terminated
            if self.episodic_life and lives is not None and info.get("lives", lives) < lives:
                terminal = True  # a lost life ends the episode for learning, not for the game
            lives = info.get("lives", lives)
            logs = agent.observe(action, reward, obs, terminal, terminated or truncated)
            if "loss" in logs and math.isfinite(logs["loss"]):
                losses.append(logs["loss"])
            if self.writer is not None and (source.steps % self.log_every == 0 or "loss" in logs):
                with writing_events(self.run_dir / "tb"):
                    for k, v in {**agent.scalars(), **logs}.items():
                        self.writer.add_scalar(f"step/{k}", float(v), source.steps)
            if terminated or truncated:  # episodes are played to their end: checkpoints fall between them
                break
        extra = agent.end_episode()
        return self._record(losses, extra, source.episodes)

    def _record(
        self, losses: list[float], extra: dict[str, float], episode: int, step: int | None = None
    ) -> dict[str, Any]:
        """Log finished episode number ``episode`` (counted from 1), which ended at environment step ``step`` (by
        default, the last one): a line of ``metrics.jsonl``, TensorBoard scalars."""
        s, n = self.source, episode
        step = s.steps if step is None else step
        record = {
            "episode": n,
            "step": step,
            "return": s.returns[n - 1],
            "length": s.lengths[n - 1],
            "return_mean100": float(np.mean(s.returns[max(n - 100, 0) : n])),
            "length_mean100": float(np.mean(s.lengths[max(n - 100, 0) : n])),
            **({"loss": float(np.mean(losses))} if losses else {}),
            **self.agent.scalars(),
            **extra,
        }
        if self.run_dir is not None:
            with writing(self.run_dir / "metrics.jsonl"), open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            with writing_events(self.run_dir / "tb"):
                for k in ("return", "length", "return_mean100", "length_mean100", *extra):
                    self.writer.add_scalar(f"episode/{k}", float(record[k]), step)
        return record

    def history(self) -> list[dict[str, Any]]:
        s = self.source
        return [{"episode": i + 1, "return": r, "length": n} for i, (r, n) in enumerate(zip(s.returns, s.lengths))]

    def _open_logs(self) -> None:
        if self.run_dir is None:
            return
        path = self.run_dir / "metrics.jsonl"
        if path.exists():  # episodes a killed run logged after its last checkpoint are played again: drop them
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if (
                    isinstance(rec, dict)
                    and isinstance(rec.get("episode"), int)
                    and rec["episode"] <= self.source.episodes
                ):
                    kept.append(line)
            atomic_write_text(path, "".join(f"{line}\n" for line in kept))
        self.writer = event_writer(self.run_dir / "tb", purge_step=self.source.steps or None)

    def _bar(self) -> Any:
        if not self.live:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.max_steps,
            initial=self.source.steps,
            desc="env steps",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
        )


def evaluate_agent(agent: Any, env_cfg: Any, seed: int, episodes: int, *, gif: Path | None = None) -> dict[str, float]:
    """``episodes`` greedy episodes (seeded apart from training); mean and std of return and length. The rewards
    are the game's own (no clipping: an Atari return is the score) and a game lasts all its lives. With ``gif``,
    the first is also recorded there."""
    env = make_env(env_cfg, render=gif is not None, clip_rewards=False)
    returns, lengths = [], []
    try:
        for k in range(max(episodes, 1 if gif else 0)):
            frames: list[np.ndarray] | None = [] if gif is not None and k == 0 else None
            ret, n = play_episode(agent, env, episode_seed(seed, EVAL_OFFSET + k), frames)
            returns.append(ret)
            lengths.append(n)
            if frames is not None:
                save_gif(frames, gif)
    finally:
        env.close()
    returns, lengths = returns[:episodes], lengths[:episodes]
    if not returns:
        return {}
    return {
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_length_mean": float(np.mean(lengths)),
        "eval_episodes": len(returns),
    }


GIF_STRIDE, GIF_MAX_FRAMES = 2, 500


def play_episode(agent: Any, env: Any, seed: int, frames: list[np.ndarray] | None = None) -> tuple[float, int]:
    """One greedy episode; its return and length (every ``GIF_STRIDE``-th frame into ``frames`` when given)."""
    obs, _ = env.reset(seed=seed)
    agent.start_policy(obs)
    total, n, done = 0.0, 0, False
    while not done:
        if frames is not None and n % GIF_STRIDE == 0 and len(frames) < GIF_MAX_FRAMES:
            frames.append(_small(env.render()))
        obs, reward, terminated, truncated, _ = env.step(agent.policy(obs))
        total += float(reward)
        n += 1
        done = terminated or truncated
    return total, n


def _small(frame: np.ndarray) -> np.ndarray:
    """A rendered frame as uint8, at most 320 pixels wide (a tiny one, MinAtar's 10x10, enlarged to 160)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:  # colours in [0, 1]
        frame = (np.clip(frame, 0, 1) * 255).astype(np.uint8)
    if frame.shape[1] < 100:
        k = 160 // frame.shape[1]
        return np.ascontiguousarray(frame.repeat(k, 0).repeat(k, 1))
    step = max(1, math.ceil(frame.shape[1] / 320))
    return np.ascontiguousarray(frame[::step, ::step])


def save_gif(frames: list[np.ndarray], path: Path) -> Path:
    """``frames`` as an animated GIF at ``path`` (written atomically), 25 frames a second, looping."""
    import imageio.v3 as iio

    data = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=40, loop=0)
    atomic_write_bytes(Path(path), data)
    return Path(path)
