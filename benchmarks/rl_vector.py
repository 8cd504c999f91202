"""Does stepping N CartPole-v1 environments together (``env.num_envs``) pay for A2C? ``a2c-cartpole`` on one
environment (the reference) against N, in one process on the same CPU, one torch thread.

Two measurements for each N:

- throughput: environment steps per second of wall time over a fixed number of steps, no evaluation (the run's
  whole ``wall_time_s``, the setup included);
- time to solve, as ``benchmarks/rl_sb3.py`` measures it: every 2,500 environment steps, 10 greedy episodes; solved
  at the first evaluation whose mean return is at least 475 (CartPole-v1's threshold). The time is the run's
  ``solved_wall_s`` (from building the agent, evaluations included), the steps its ``solved_step``; the median
  counts a run that did not solve within ``--budget`` steps as the slowest.

The ratios are the reference's over N's (above 1: N is faster). Seeds run one after another, N=1 first.

    python benchmarks/rl_vector.py                                # N = 1 and 8, seeds 0 1 2
    python benchmarks/rl_vector.py --envs 1 4 8 --n-steps 5 --seeds 0
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from typing import Any

import torch

import deeprecipes
from deeprecipes.machine import cpu_info

THRESHOLD, EVAL_EVERY, EVAL_EPISODES = 475.0, 2500, 10


def a2c(n: int, n_steps: int, seed: int, steps: int, out: str, evaluate: bool) -> dict[str, Any]:
    """One ``a2c-cartpole`` run on ``n`` environments (``n_steps`` per update and environment when ``n > 1``)."""
    overrides: dict[str, Any] = {"env.num_envs": n, "train.max_steps": steps, "env.gif": False}
    if n > 1:
        overrides["agent.n_steps"] = n_steps
    if evaluate:
        overrides.update({"env.eval_every": EVAL_EVERY, "env.eval_during": EVAL_EPISODES, "env.eval_episodes": 10})
    else:
        overrides.update({"env.eval_every": 0, "env.eval_episodes": 0})
    result = deeprecipes.run("a2c-cartpole", seed=seed, overrides=overrides, out=out, progress=False, threads=1)
    return {**result.metrics, "wall_time_s": result.summary["wall_time_s"]}


def _median(xs: list[float | None]) -> float | None:
    """The median, a run that did not solve counting as slower than every other (None when that is the median)."""
    m = statistics.median([math.inf if x is None else x for x in xs])
    return None if math.isinf(m) else m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, nargs="+", default=[1, 8], help="numbers of environments (the first: reference)")
    p.add_argument("--n-steps", type=int, default=8, help="A2C's steps per update and environment when N > 1")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--throughput-steps", type=int, default=20_000)
    p.add_argument("--budget", type=int, default=60_000, help="environment steps a run may take (the recipe's)")
    args = p.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['capability']}), {cpu['cores']} cores, load average {load:.2f}; 1 thread")
    rate: dict[int, float] = {}
    solved: dict[int, list[tuple[float | None, int | None]]] = {n: [] for n in args.envs}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.envs:
            m = a2c(n, args.n_steps, 0, args.throughput_steps, f"{tmp}/t{n}", evaluate=False)
            rate[n] = m["env_steps"] / m["wall_time_s"]
            print(
                f"throughput N={n}: {m['env_steps']} steps in {m['wall_time_s']:.1f} s, {rate[n]:.0f} steps/s",
                flush=True,
            )
        for seed in args.seeds:
            for n in args.envs:
                m = a2c(n, args.n_steps, seed, args.budget, f"{tmp}/s{seed}n{n}", evaluate=True)
                solved[n].append((m.get("solved_wall_s"), m.get("solved_step")))
                print(f"seed {seed} N={n}: solved at {solved[n][-1]} (wall s, step)", flush=True)
    ref = args.envs[0]
    ref_time = _median([t for t, _ in solved[ref]])
    print(f"\nA2C on CartPole-v1 (n_steps {args.n_steps} for N > 1, the recipe's for N = 1), 1 thread")
    for n in args.envs:
        times, steps = [t for t, _ in solved[n]], [s for _, s in solved[n]]
        med = _median(times)
        ratio = f"{ref_time / med:.2f}x" if med and ref_time else "-"
        got = sum(t is not None for t in times)
        print(
            f"  N={n:<3} {rate[n]:6.0f} steps/s ({rate[n] / rate[ref]:.2f}x)   solved {got}/{len(times)}, "
            f"time to solve {'-' if med is None else f'{med:.1f} s'} median ({ratio}); per seed {times}, steps {steps}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "")


if __name__ == "__main__":
    main()
