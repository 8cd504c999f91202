"""Reinforcement learning that learns within the test budget: DQN on MinAtar Breakout (10x10) beats a random policy.

The recipe's own run (100,000 steps, 11 minutes) is in the README; this is the same network and agent with a shorter
schedule: 8,000 steps, epsilon to 0.01 over the first 4,000, an update every step from step 500, Adam 1e-3. A random
policy scores about 0.5 a game; seeds 0 and 1 of this schedule scored 3.6 and 3.7 over 10 greedy games
(AMD EPYC, 1 thread).
"""

import pytest

import deeprecipes

FAST = {
    "train.max_steps": 8000,
    "agent.learning_starts": 500,
    "agent.eps_steps": 4000,
    "agent.target_update": 250,
    "optimizer.lr": 0.001,
    "env.gif": False,
    "env.eval_episodes": 10,
}


def test_dqn_learns_minatar_breakout_in_8000_steps(tmp_path):
    pytest.importorskip("minatar", reason="MinAtar is not installed (pip install minatar)")
    result = deeprecipes.run("dqn-minatar-breakout", overrides=FAST, seed=0, out=tmp_path, progress=False)
    history = result.summary["env"]
    assert history["steps"] >= 8000
    assert result.metrics["eval_return_mean"] > 2.0, result.metrics  # random play: about 0.5
