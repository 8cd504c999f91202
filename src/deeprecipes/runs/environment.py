"""Runs of reinforcement-learning recipes (a recipe with ``[env]`` and ``[agent]``): their parts, the ``rl`` phase,
their ``model.json`` and summary, and :func:`play` for a saved agent.

The parts of such a run are the same :class:`~deeprecipes.runs.parts.RunParts` as a supervised run's, with no data:
the network (a registered model whose input and output sizes the environment decides), the engine (the network's
optimizers), the environment source and the agent (``parts.env``, ``parts.agent``). The ``rl`` phase drives
:class:`deeprecipes.rl.loop.EnvironmentLoop`, evaluates the greedy agent over ``env.eval_episodes`` episodes
(``eval_return_mean``, ``eval_return_std``) and saves a GIF of one of them (``figures/episode.gif``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RecipeConfig, changed_settings
from ..errors import ConfigError
from ..registry import AGENTS, MODELS, create_model
from ..rl.envs import EnvSource, check_env_id, make_env
from ..rl.loop import EnvironmentLoop, evaluate_agent
from ..rl.vector import VectorEnvironmentLoop, VectorEnvSource, check_vector_agent
from ..training.callbacks import WallClock
from ..training.checkpoint import atomic_write_text, load_checkpoint
from ..training.optim import describe_optimizer
from ..training.setup import make_engine
from ..viz import as_number, save_curves
from . import report
from .device import RunMachine, device_info, on_machine, versions
from .parts import RunParts, seed_everything
from .phases import Phase, register_phase
from .rundir import MODEL_FILE, load_run, read_config, run_path

__all__ = ["build_env_parts", "EnvironmentPhase", "env_record", "write_env_summary", "play", "network_for"]

log = logging.getLogger("deeprecipes")


def network_for(cfg: RecipeConfig, agent: Any, env: Any) -> tuple[Any, dict[str, Any]]:
    """The recipe's network with the sizes the environment decides, and every argument it was built with."""
    decided = agent.network_args(env.observation_space, env.action_space)
    params = MODELS.signature(cfg.model.name).parameters
    args = {**{k: v for k, v in decided.items() if k in params}, **cfg.model.args}
    for k, v in decided.items():
        if k in cfg.model.args and cfg.model.args[k] != v:
            raise ConfigError(f"model.{k} is {cfg.model.args[k]!r} but environment '{cfg.env.id}' needs {v!r}")
    return create_model(cfg.model.name, **args), args


def build_env_parts(cfg: RecipeConfig, run_dir: Path | None, mach: RunMachine, progress: bool | None) -> RunParts:
    """Seeds, environment source, agent, network and engine of a reinforcement-learning run."""
    seed_everything(cfg.train.seed)
    agent = AGENTS.create(cfg.agent.name, **cfg.agent.args)
    check_vector_agent(agent, cfg.env)
    n = cfg.env.num_envs
    source = EnvSource(cfg.env, cfg.train.seed) if n == 1 else VectorEnvSource(cfg.env, cfg.train.seed, n)
    model, args = network_for(cfg, agent, source)
    model.to(mach.device)
    if cfg.train.compile:
        model.compile()
    engine = make_engine(
        model,
        plan=cfg.optimizer_plan(),
        max_steps=cfg.train.max_steps,
        model_name=f"model '{cfg.model.name}'",
        grad_clip=cfg.train.grad_clip,
        precision=mach.precision,
    )
    agent.bind(model, engine, source.observation_space, source.action_space, cfg.train.seed)
    parts = RunParts(
        cfg=cfg,
        run_dir=run_dir,
        machine=mach,
        strategy=engine.strategy,
        data=None,
        model=model,
        train=None,  # type: ignore[arg-type]  # no training split: the environment is the source
        eval_sets={},
        sample=(),
        engine=engine,
        clock=WallClock(),
        progress=progress,
    )
    parts.env, parts.agent, parts.network_args = source, agent, args
    return parts


def env_record(parts: RunParts) -> dict[str, Any]:
    """``model.json`` of a reinforcement-learning run: the network's resolved arguments and the spaces."""
    cfg, source = parts.cfg, parts.env
    bound = MODELS.signature(cfg.model.name).bind_partial(**parts.network_args)
    bound.apply_defaults()
    space = source.observation_space
    spec = {"shape": list(space.shape or ()), "dtype": str(space.dtype), "env": cfg.env.id}
    return {"name": cfg.model.name, "args": dict(bound.arguments), "input": spec, "data": {}}


#: the ``[train]`` settings a reinforcement-learning run uses; the others (epochs, batch_size, eval_on, ...) belong to
#: training on a dataset, and setting one is refused rather than ignored
ENV_TRAIN_KEYS = frozenset(
    "max_steps seed device threads precision compile flush_denormal log_every checkpoint_every grad_clip".split()
)


def check_train_keys(cfg: RecipeConfig) -> None:
    """One line for a ``[train]`` setting changed from its default that a reinforcement-learning run would ignore."""
    unused = [k for k in changed_settings(cfg.train) if k not in ENV_TRAIN_KEYS]
    if unused:
        raise ConfigError(
            f"train.{unused[0]} = {getattr(cfg.train, unused[0])!r}: a reinforcement-learning run does not use it "
            f"(it trains for train.max_steps environment steps, with the agent's own batch size and evaluation in "
            f"[agent] and [env]); it uses train.{', train.'.join(sorted(ENV_TRAIN_KEYS))}"
        )


@register_phase("rl", order=20)
class EnvironmentPhase(Phase):
    """Train the agent for ``train.max_steps`` environment steps, then evaluate it and record a GIF; resumes from
    the latest checkpoint (taken between episodes) exactly."""

    @classmethod
    def applies(cls, cfg: RecipeConfig) -> bool:
        return bool(cfg.env.id)

    def check(self, cfg: RecipeConfig, model: Any) -> None:
        check_env_id(cfg.env.id)
        check_train_keys(cfg)
        if not cfg.train.max_steps and not cfg.env.episodes:
            raise ConfigError("a recipe with [env] sets train.max_steps (environment steps) or env.episodes")
        if cfg.env.num_envs > 1:
            check_vector_agent(AGENTS.create(cfg.agent.name, **cfg.agent.args), cfg.env)

    def run(self, parts: RunParts, *, resume: bool) -> dict[str, Any]:
        cfg, agent = parts.cfg, parts.agent
        loop = (EnvironmentLoop if cfg.env.num_envs == 1 else VectorEnvironmentLoop)(
            agent,
            parts.env,
            parts.engine,
            max_steps=cfg.train.max_steps,
            run_dir=parts.run_dir,
            checkpoint_every=cfg.train.checkpoint_every,
            clock=parts.clock,
            progress=parts.progress,
            episodic_life=cfg.env.wrappers == "atari",
            log_every=cfg.train.log_every,
            # periodic evaluations are seeded apart from the final one, which then measures the weights they chose
            evaluate=lambda: evaluate_agent(agent, cfg.env, cfg.train.seed + 1, cfg.env.eval_during),
            eval_every=cfg.env.eval_every,
            max_episodes=cfg.env.episodes,
        )
        if cfg.target.metric == "eval_return_mean" and cfg.target.value is not None:
            loop.target = cfg.target.value
        restored = loop.restore() if resume else None
        if restored is not None:
            parts.resumed_from = {
                "checkpoint": f"checkpoints/{restored.name}",
                "step": parts.env.steps,
                "passed_over": None,
            }
            log.info(
                "resuming %s at episode %d (environment step %d)", parts.run_dir, parts.env.episodes, parts.env.steps
            )
        else:
            agent.prepare(make_env(cfg.env))
        history = loop.run()
        parts.env.close()
        if cfg.env.use_best and loop.evals["best"] is not None and parts.run_dir is not None:
            parts.model.load_state_dict(load_checkpoint(parts.run_dir / "checkpoints", "best")[0])
        gif = None if parts.run_dir is None or not cfg.env.gif else parts.run_dir / "figures" / "episode.gif"
        metrics = evaluate_agent(agent, cfg.env, cfg.train.seed, cfg.env.eval_episodes, gif=gif)
        returns = [h["return"] for h in history]
        metrics.update(
            env_steps=parts.env.steps,
            episodes=parts.env.episodes,
            train_return_last100=float(np.mean(returns[-100:])) if returns else float("nan"),
            train_length_last100=float(np.mean([h["length"] for h in history][-100:])) if history else float("nan"),
        )
        ev = loop.evals
        if ev["best"] is not None:
            metrics.update(best_eval_return=ev["best"], best_eval_step=ev["best_step"])
        if ev["solved_step"] is not None:
            metrics.update(solved_step=ev["solved_step"], solved_wall_s=ev["solved_s"])
        results = getattr(agent, "results", None)
        return {"metrics": metrics, "history": history, "agent": results() if callable(results) else {}, "gif": gif}


def _curves(parts: RunParts, history: list[dict[str, Any]]) -> list[str]:
    if parts.run_dir is None or not history:
        return []
    return [str(draw_curves(parts.run_dir / "figures", parts.cfg.name, history))]


def draw_curves(fig_dir: Path, name: str, history: list[dict[str, Any]]) -> Path:
    """``fig_dir/returns.png``: the episodes' return and length, raw and as the mean of the last 100 episodes,
    against the episode (``history``: the episode records of ``metrics.jsonl``; a value that is not a number is
    drawn as a gap)."""
    records: list[dict[str, float]] = [{"episode": i} for i in range(len(history))]
    for key in ("return", "length"):  # one panel each: raw, and the mean of the last 100 episodes
        raw = np.array([as_number(h.get(key)) for h in history], float)
        mean100 = np.convolve(raw, np.ones(100), "full")[: len(raw)] / np.minimum(np.arange(1, len(raw) + 1), 100)
        for rec, r, m in zip(records, raw, mean100):
            rec[key], rec[f"mean100_{key}"] = float(r), float(m)
    return save_curves(records, fig_dir / "returns.png", f"{name}: episode return and length", x="episode")


def write_env_summary(parts: RunParts, applied: Any) -> dict[str, Any]:
    """``summary.json`` of a reinforcement-learning run: evaluation, training curves' ends, target, machine."""
    cfg, result = parts.cfg, parts.results["rl"]
    final = dict(result["metrics"])
    figures = _curves(parts, result["history"])
    if result["gif"] is not None:
        figures.append(str(result["gif"]))
    summary = {
        "recipe": cfg.name,
        "status": "complete",
        "metrics": final,
        "target": report.target(cfg, final),
        "agent": result["agent"],
        "phases": list(parts.results),
        "resumed_from": parts.resumed_from,
        "env": {
            "id": cfg.env.id,
            "wrappers": cfg.env.wrappers,
            "steps": parts.env.steps,
            "episodes": parts.env.episodes,
        },
        "steps": parts.env.steps,  # what train.max_steps counts here: environment steps, not gradient updates
        "seed": cfg.train.seed,
        "wall_time_s": round(parts.clock.elapsed(), 2),
        "device": device_info(parts.device, applied),
        "precision": parts.machine.summary(),
        "optimizers": {k: describe_optimizer(o) for k, o in parts.engine.optimizers.items()},
        "versions": versions(),
        "figures": figures,
        "config": cfg.to_dict(),
    }
    summary, missing = report.strict_json(summary)
    if missing:
        summary["not_finite"] = {"keys": missing, "why": "NaN or infinite values, written as null (strict JSON)"}
    atomic_write_text(parts.run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False))
    return summary


def write_record(parts: RunParts) -> None:
    atomic_write_text(parts.run_dir / MODEL_FILE, json.dumps(env_record(parts), indent=1))


def play(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    gif: str | Path | None = None,
    which: str = "best",
    seed: int | None = None,
) -> dict[str, float]:
    """Evaluate a saved agent (rebuilt by :func:`deeprecipes.load_run`, no training) over ``episodes`` episodes;
    mean and std of return and length. With ``gif``, the first episode is also saved there. ``which="best"`` is
    the checkpoint the run's periodic evaluations chose (the latest when it made none)."""
    run_dir = run_path(run_dir)
    cfg = read_config(run_dir)
    if not cfg.env.id:
        raise ConfigError(f"{run_dir} is not a reinforcement-learning run (its recipe has no [env])")
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    with on_machine(cfg, None) as (mach, _):
        loaded = load_run(run_dir, which=which, device=str(mach.device))
        env = make_env(cfg.env)
        agent = AGENTS.create(cfg.agent.name, **cfg.agent.args)
        engine = make_engine(loaded.model, plan=cfg.optimizer_plan(), model_name=f"model '{cfg.model.name}'")
        agent.bind(
            loaded.model, engine, env.observation_space, env.action_space, cfg.train.seed if seed is None else seed
        )
        env.close()
        out = None if gif is None else run_path(gif, "gif")
        s = cfg.train.seed if seed is None else seed
        return evaluate_agent(agent, cfg.env, s, episodes, gif=out)
