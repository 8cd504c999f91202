"""Time to solve CartPole-v1: our ``dqn-cartpole`` against Stable-Baselines3's DQN and PPO (rl-zoo hyperparameters),
side by side in one process on the same CPU, one torch thread each.

"Solved" is measured the same way for all three: every 2,500 environment steps, 10 greedy episodes; the run is
solved at the first evaluation whose mean return is at least 475 (CartPole-v1's threshold). The time is the wall time
from building the agent to that evaluation, evaluations included. SB3 runs stop there
(``StopTrainingOnRewardThreshold``); ours runs its recipe (50,000 steps) and reads ``solved_wall_s`` from its
summary. Needs ``pip install -e ".[bench]"``.

    python benchmarks/rl_sb3.py                  # seeds 0 1 2
    python benchmarks/rl_sb3.py --seeds 0 --budget 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch

import deeprecipes

THRESHOLD, EVAL_EVERY, EVAL_EPISODES = 475.0, 2500, 10

# rl-baselines3-zoo hyperparams/dqn.yml and ppo.yml, CartPole-v1
ZOO_DQN = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
ZOO_DQN_STEPS = 50_000
ZOO_PPO_STEPS, ZOO_PPO_ENVS = 100_000, 8


def ppo_settings() -> dict[str, Any]:
    return dict(
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=lambda progress: 0.001 * progress,  # lin_0.001
        clip_range=lambda progress: 0.2 * progress,  # lin_0.2
    )


def ours(seed: int, out: str) -> tuple[float | None, int | None]:
    overrides = {"env.eval_every": EVAL_EVERY, "env.eval_during": EVAL_EPISODES, "env.eval_episodes": 10}
    overrides["env.gif"] = False
    result = deeprecipes.run("dqn-cartpole", seed=seed, overrides=overrides, out=out, progress=False)
    return result.metrics.get("solved_wall_s"), result.metrics.get("solved_step")


def sb3(algo: str, seed: int, budget: int) -> tuple[float | None, int | None]:
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.perf_counter()
    n_envs = ZOO_PPO_ENVS if algo == "ppo" else 1
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    if algo == "ppo":
        model: Any = PPO("MlpPolicy", env, seed=seed, device="cpu", **ppo_settings())
    else:
        model = DQN("MlpPolicy", env, seed=seed, device="cpu", **ZOO_DQN)
    stop = StopTrainingOnRewardThreshold(reward_threshold=THRESHOLD)
    ev = EvalCallback(
        make_vec_env("CartPole-v1", n_envs=1, seed=seed + 1000),
        callback_on_new_best=stop,
        n_eval_episodes=EVAL_EPISODES,
        eval_freq=max(EVAL_EVERY // n_envs, 1),
        deterministic=True,
        verbose=0,
    )
    model.learn(total_timesteps=budget, callback=ev)
    if ev.best_mean_reward >= THRESHOLD:
        return time.perf_counter() - t0, int(model.num_timesteps)
    return None, None


def _fmt(times: list[float | None]) -> str:
    got = [t for t in times if t is not None]
    if not got:
        return "not solved"
    return f"{statistics.median(got):7.1f} s median  ({', '.join('-' if t is None else f'{t:.1f}' for t in times)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=0, help="SB3 step budget (default: rl-zoo's n_timesteps)")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[tuple[float | None, int | None]]] = {"ours dqn-cartpole": [], "SB3 DQN": [], "SB3 PPO": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows["ours dqn-cartpole"].append(ours(seed, f"{tmp}/s{seed}"))
            rows["SB3 DQN"].append(sb3("dqn", seed, args.budget or ZOO_DQN_STEPS))
            rows["SB3 PPO"].append(sb3("ppo", seed, args.budget or ZOO_PPO_STEPS))
            print(f"seed {seed}: " + "  ".join(f"{k} {v[-1]}" for k, v in rows.items()), flush=True)
    print(f"\ntime to solve CartPole-v1 (10 greedy episodes >= {THRESHOLD} every {EVAL_EVERY} steps), 1 thread")
    for name, runs in rows.items():
        steps = [s for _, s in runs if s is not None]
        print(f"  {name:<18} {_fmt([t for t, _ in runs])}   steps {steps}")


if __name__ == "__main__":
    main()
