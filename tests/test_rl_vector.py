"""Vectorised environments (``env.num_envs > 1``): the seeded vector source and its replay of episodes in progress,
step and episode counting in the logs, reproducibility, the refusal of agents that act on one environment, and exact
resume of an A2C run on 4 environments after a crash and after kill -9."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")

import deeprecipes  # noqa: E402
from deeprecipes.config import EnvConfig  # noqa: E402
from deeprecipes.errors import ConfigError  # noqa: E402
from deeprecipes.rl.a2c import A2C  # noqa: E402
from deeprecipes.rl.envs import episode_seed, make_env  # noqa: E402
from deeprecipes.rl.vector import VectorEnvSource  # noqa: E402
from deeprecipes.training.checkpoint import load_checkpoint  # noqa: E402

CARTPOLE = EnvConfig(id="CartPole-v1")
# an A2C run on 4 environments, updating every 4 x 8 = 32 environment steps, checkpointing often
A2C_VEC = {
    "env.num_envs": 4,
    "agent.n_steps": 8,
    "train.max_steps": 1000,
    "train.checkpoint_every": 100,
    "env.eval_every": 300,
    "env.eval_during": 2,
    "env.eval_episodes": 2,
    "env.gif": False,
}


def _play(source: VectorEnvSource, steps: int, rng: np.random.Generator) -> list:
    """``steps`` vector steps of random actions; each step's (observations to act on next, rewards, ends, finished)."""
    out = []
    for _ in range(steps):
        obs, step = source.step(rng.integers(0, 2, source.num_envs))
        out.append((obs.copy(), step.rewards, step.ended, step.finished))
    return out


def test_vector_source_seeds_each_sub_environment_episode_and_counts_every_step():
    source = VectorEnvSource(CARTPOLE, seed=3, num_envs=4)
    single = make_env(CARTPOLE)
    obs = source.start()
    for i in range(4):  # sub-environment i's first episode: seed (3, i)
        np.testing.assert_array_equal(obs[i], single.reset(seed=episode_seed(3, i))[0])
    rng = np.random.default_rng(0)
    seen = 0
    while source.counts[1] < 2:  # until sub-environment 1 has ended two episodes
        obs, step = source.step(rng.integers(0, 2, 4))
        seen += 1
        assert step.finished == list(range(source.episodes - len(step.finished) + 1, source.episodes + 1))
        if step.ended[1]:  # reset with its next episode's seed: (3, 1 + 4 * count)
            seed = episode_seed(3, 1 + 4 * source.counts[1])
            np.testing.assert_array_equal(obs[1], single.reset(seed=seed)[0])
    assert source.steps == 4 * seen
    in_progress = sum(len(p) for p in source.played)
    assert sum(source.lengths) + in_progress == source.steps  # every step is in an ended episode or in one in progress
    assert len(source.returns) == source.episodes == sum(source.counts)


def test_vector_source_replays_its_episodes_in_progress_from_its_state():
    a, b = VectorEnvSource(CARTPOLE, seed=5, num_envs=3), VectorEnvSource(CARTPOLE, seed=5, num_envs=3)
    a.start()
    before = _play(a, 37, np.random.default_rng(1))  # episodes ended and episodes half played
    assert any(a.played) and a.episodes > 0
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.start(), before[-1][0])  # each sub-environment where a's stands
    assert b.episodes == a.episodes and b.returns == a.returns and b.counts == a.counts
    rest_a, rest_b = _play(a, 60, np.random.default_rng(2)), _play(b, 60, np.random.default_rng(2))
    for x, y in zip(rest_a, rest_b):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
        assert x[3] == y[3]
    assert a.returns == b.returns and a.lengths == b.lengths and a.episodes == b.episodes


def test_agents_that_act_on_one_environment_refuse_several_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        deeprecipes.run("dqn-cartpole", overrides={"env.num_envs": 4, "train.max_steps": 100}, out=tmp_path / "r")
    assert str(e.value).startswith("agent 'dqn' does not support env.num_envs = 4") and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="env.num_envs"):
        deeprecipes.run("policy-gradient-cartpole", overrides={"env.num_envs": 2}, check=True)


def test_vector_a2c_logs_every_episode_counts_environment_steps_and_is_reproducible(tmp_path):
    runs = [deeprecipes.run("a2c-cartpole", overrides=A2C_VEC, out=tmp_path / n, progress=False) for n in "ab"]
    a, b = runs
    steps = a.metrics["env_steps"]
    assert 1000 <= steps < 1000 + 4 * 8 and steps % 32 == 0  # stops at the first update after max_steps
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in records] == list(range(1, a.metrics["episodes"] + 1))
    assert all(r["step"] % 4 == 0 for r in records) and sum(r["length"] for r in records) <= steps
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    wa, wb = (load_checkpoint(tmp_path / n / "checkpoints")[0] for n in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics == b.metrics and a.config.env.num_envs == 4


def _same_weights(a, b) -> None:
    for which in ("latest", "best"):
        wa, wb = load_checkpoint(a / "checkpoints", which)[0], load_checkpoint(b / "checkpoints", which)[0]
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), which


def test_vector_a2c_interrupted_mid_episodes_resumes_to_identical_weights(tmp_path, monkeypatch, crash_agent_at):
    deeprecipes.run("a2c-cartpole", overrides=A2C_VEC, out=tmp_path / "whole", progress=False)
    with monkeypatch.context() as m:
        crash_agent_at(m, A2C, 700, "observe_batch")  # inside a rollout (700 is a multiple of 4, not of 32)
        with pytest.raises(KeyboardInterrupt):
            deeprecipes.run("a2c-cartpole", overrides=A2C_VEC, out=tmp_path / "cut", progress=False)
    state = load_checkpoint(tmp_path / "cut" / "checkpoints")[1]
    assert any(state["source"]["played"])  # the checkpoint holds episodes in progress, replayed on resume
    resumed = deeprecipes.resume(tmp_path / "cut", progress=False)
    assert resumed.summary["resumed_from"]["step"] < 700
    _same_weights(tmp_path / "whole", tmp_path / "cut")
    whole = (tmp_path / "whole" / "metrics.jsonl").read_text()
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == whole  # no episode lost or logged twice


@pytest.mark.slow  # about 20 s (two CLI processes); the in-process crash test above checks the same weights
def test_kill_9_then_resume_of_a_vector_a2c_run_from_the_command_line(tmp_path, whole_and_killed_run):
    whole_and_killed_run("a2c-cartpole", {**A2C_VEC, "train.max_steps": 3000}, tmp_path, settle=0.3)
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["resumed_from"]["step"] < 3000
    _same_weights(tmp_path / "whole", tmp_path / "cut")
