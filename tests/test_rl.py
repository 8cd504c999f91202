"""Reinforcement learning: the frame-once replay buffer, the seeded environment source, bad input, short runs of the
agents end to end, exact resume after a crash and after kill -9, and the ``envs`` and ``play`` commands."""

import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")

import deeprecipes  # noqa: E402
from deeprecipes.config import EnvConfig  # noqa: E402
from deeprecipes.errors import ConfigError  # noqa: E402
from deeprecipes.rl.buffer import ReplayBuffer  # noqa: E402
from deeprecipes.rl.dqn import DQN  # noqa: E402
from deeprecipes.rl.envs import EnvSource, check_env_id, env_ids  # noqa: E402
from deeprecipes.training.checkpoint import decode, encode, load_checkpoint  # noqa: E402

# a DQN that learns within a few hundred steps and checkpoints often
DQN_SMALL = {
    "train.max_steps": 400,
    "train.checkpoint_every": 80,
    "agent.learning_starts": 100,
    "agent.train_freq": 8,
    "agent.gradient_steps": 2,
    "agent.batch_size": 32,
    "agent.buffer_size": 300,  # smaller than the run: the ring wraps
    "agent.eps_steps": 300,
    "model.hidden": [32, 32],
    "env.eval_episodes": 2,
    "env.gif": False,
}


def stacked_cartpole():
    import gymnasium as gym

    return gym.wrappers.FrameStackObservation(gym.make("CartPole-v1"), 4)


def test_buffer_stores_each_frame_once_and_rebuilds_the_stacks_the_wrapper_made():
    env = stacked_cartpole()
    buf = ReplayBuffer(50, (4,), np.float32, stack=4)
    seen = []  # (obs, action, reward, next_obs, terminal) as the wrapper gave them
    rng = np.random.default_rng(0)
    for episode in range(6):
        obs, _ = env.reset(seed=episode)
        buf.start(obs)
        done = False
        while not done:
            a = int(rng.integers(2))
            nxt, r, term, trunc, _ = env.step(a)
            buf.add(a, r, nxt, term)
            seen.append((obs, a, r, nxt, term))
            obs, done = nxt, term or trunc
    assert buf.frames.shape == (50, 4)  # one frame per step, not two stacks of four
    recent = {(tuple(o.ravel()), a): (n, t) for o, a, r, n, t in seen[-50:]}  # at most 50 frames held
    obs, actions, rewards, next_obs, terminals = buf.sample(200, np.random.default_rng(1))
    matched = 0
    for o, a, n, t in zip(obs, actions, next_obs, terminals):
        key = (tuple(o.ravel()), int(a))
        if key in recent:
            np.testing.assert_array_equal(recent[key][0], n)
            assert recent[key][1] == t
            matched += 1
    assert matched == 200  # every sample is a real transition, stacks padded as the wrapper pads after a reset


def test_buffer_state_round_trips_through_a_checkpoint_encoding():
    buf = ReplayBuffer(20, (3, 3), np.uint8, stack=2)
    for k in range(30):
        if k % 7 == 0:
            buf.start(np.full((2, 3, 3), k, np.uint8))
        buf.add(k % 3, float(k), np.full((2, 3, 3), k + 1, np.uint8), k % 7 == 6)
    tensors: dict = {}
    state = decode(encode(buf.state_dict(), tensors, "b"), tensors)
    copy = ReplayBuffer(20, (3, 3), np.uint8, stack=2)
    copy.load_state_dict(state)
    a, b = buf.sample(16, np.random.default_rng(3)), copy.sample(16, np.random.default_rng(3))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert copy.transitions == 30 and len(copy) == len(buf)


def test_book_sized_atari_buffer_takes_a_quarter_of_the_naive_size():
    per_frame = 84 * 84 + 8 + 4 + 3  # frame, action, reward, three flags
    assert ReplayBuffer(1000, (84, 84), np.uint8, stack=4).nbytes() == 1000 * per_frame
    assert 500_000 * per_frame < 3.6e9 < 12.8e9  # the book's naive 4x80x80 per transition: 12.8 GB


def test_atari_training_clips_rewards_and_evaluation_keeps_the_score():
    pytest.importorskip("ale_py")
    from deeprecipes.config import EnvConfig
    from deeprecipes.rl.envs import make_env

    cfg = EnvConfig(id="MsPacmanNoFrameskip-v4", wrappers="atari", max_episode_steps=2000)
    rewards = {}
    for clip in (True, False):
        env = make_env(cfg, clip_rewards=clip)
        env.reset(seed=3)
        rewards[clip] = [env.step(k // 20 % 5)[1] for k in range(300)]
        env.close()
    assert max(rewards[False]) >= 10  # a dot is worth 10 points
    assert rewards[True] == [float(np.sign(r)) for r in rewards[False]]


def test_environment_source_replays_the_same_episodes_from_its_state():
    cfg = EnvConfig(id="CartPole-v1")
    a, b = EnvSource(cfg, seed=5), EnvSource(cfg, seed=5)
    for _ in range(3):
        a.reset()
        done = False
        while not done:
            *_, term, trunc, _ = a.step(0)
            done = term or trunc
    b.load_state_dict(a.state_dict())
    oa, _ = a.reset()
    ob, _ = b.reset()
    np.testing.assert_array_equal(oa, ob)  # episode 3 is seeded the same
    assert b.episodes == 3 and b.returns == a.returns
    with pytest.raises(RuntimeError):
        a.state_dict()  # not in the middle of an episode


def test_unknown_environment_is_one_line_with_close_matches():
    with pytest.raises(ConfigError) as e:
        check_env_id("CartPole-v9")
    assert "CartPole-v1" in str(e.value) and "\n" not in str(e.value)
    assert "CartPole-v1" in env_ids("cartpole")


def test_agent_refuses_an_action_space_it_cannot_handle(tmp_path):
    with pytest.raises(ConfigError, match="discrete action space"):
        deeprecipes.run("dqn-cartpole", overrides={"env.id": "Pendulum-v1", **DQN_SMALL}, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()  # a start that failed leaves nothing behind


def test_dqn_run_and_an_interrupted_one_resumed_end_with_identical_weights(tmp_path, monkeypatch, crash_agent_at):
    whole = deeprecipes.run("dqn-cartpole", overrides=DQN_SMALL, out=tmp_path / "whole", progress=False)
    assert {"eval_return_mean", "eval_return_std", "episodes", "env_steps"} <= set(whole.metrics)
    assert whole.metrics["env_steps"] >= 400 and whole.summary["phases"] == ["rl"]
    assert whole.summary["steps"] == whole.summary["env"]["steps"] == whole.metrics["env_steps"]
    records = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in records] == list(range(1, len(records) + 1))
    assert any(p.name.startswith("events") for p in (tmp_path / "whole" / "tb").iterdir())

    with monkeypatch.context() as m:
        crash_agent_at(m, DQN, 250)
        with pytest.raises(KeyboardInterrupt):
            deeprecipes.run("dqn-cartpole", overrides=DQN_SMALL, out=tmp_path / "cut", progress=False)
    resumed = deeprecipes.resume(tmp_path / "cut", progress=False)
    assert resumed.summary["resumed_from"]["step"] < 250
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoints")[0], load_checkpoint(tmp_path / "cut" / "checkpoints")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics == pytest.approx(whole.metrics)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(records)  # no episode logged twice


@pytest.mark.slow  # about 20 s (two CLI processes); the in-process crash test above checks the same weights
def test_kill_9_then_resume_of_a_dqn_run_from_the_command_line(tmp_path, whole_and_killed_run):
    # killed inside a later episode, or in the middle of writing a checkpoint
    whole_and_killed_run("dqn-cartpole", {**DQN_SMALL, "train.max_steps": 700}, tmp_path, settle=0.2)
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoints")[0], load_checkpoint(tmp_path / "cut" / "checkpoints")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_envs_and_play_commands(tmp_path, capsys):
    from deeprecipes.cli import main

    deeprecipes.run("dqn-cartpole", overrides={**DQN_SMALL, "train.max_steps": 200}, out=tmp_path / "r", progress=False)
    assert main(["-q", "envs", "cartpole"]) == 0
    assert "CartPole-v1" in capsys.readouterr().out.split()
    assert main(["-q", "envs", "CartPol-v1"]) == 2
    assert "no environment matches 'CartPol-v1'; close matches: CartPole-v1" in capsys.readouterr().err
    gif = tmp_path / "play.gif"
    assert main(["-q", "play", str(tmp_path / "r"), "--episodes", "3", "--gif", str(gif)]) == 0
    assert json.loads(capsys.readouterr().out)["eval_episodes"] == 3 and gif.read_bytes()[:3] == b"GIF"
    assert main(["-q", "run", "dqn-cartpole", "--set", "env.id=CartPol-v1", "--check"]) == 2
    err = capsys.readouterr().err
    assert "close matches: CartPole-v1" in err and err.count("\n") == 1
    assert main(["-q", "play", str(tmp_path / "r"), "--episodes", "0"]) == 2
    assert main(["-q", "eval", str(tmp_path / "r")]) == 2
    assert "use 'deeprecipes play" in capsys.readouterr().err
    # figures redraws the episode curves from metrics.jsonl; a damaged line is left out with a warning
    (tmp_path / "r" / "figures" / "returns.png").unlink()
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"episode": "x"}\n{"episode": 99, "return": "garbage", "length": null}\n')
    assert main(["-q", "figures", str(tmp_path / "r"), "--out", str(tmp_path / "redrawn")]) == 0
    assert (tmp_path / "redrawn" / "returns.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "r" / "figures" / "returns.png").exists()
    (tmp_path / "r" / "metrics.jsonl").write_text("")
    assert main(["-q", "figures", str(tmp_path / "r")]) == 2
    assert "no finished episode in metrics.jsonl" in capsys.readouterr().err


def test_karpathy_pong_preprocessing_and_returns_that_restart_at_each_point():
    from deeprecipes.rl.base import discounted
    from deeprecipes.rl.reinforce import pong_frame

    frame = np.full((210, 160, 3), 144, np.uint8)  # background
    frame[101, 80] = (236, 236, 236)  # the ball, on a row and column the [::2, ::2] downsampling keeps
    x = pong_frame(frame)
    assert x.shape == (80, 80) and x.sum() == 1 and x[(101 - 35) // 2, 40] == 1
    np.testing.assert_allclose(discounted([0, 0, 1, 0, -1], 0.5), [0.25 - 0.0625, 0.5 - 0.125, 1 - 0.25, -0.5, -1])
    resets = [r != 0 for r in [0, 0, 1, 0, -1]]
    np.testing.assert_allclose(discounted([0, 0, 1, 0, -1], 0.5, resets), [0.25, 0.5, 1, -0.5, -1])


def test_book_q_learning_fits_its_scaler_on_uniform_noise_and_the_fix_on_states(tmp_path):
    short = {"env.episodes": 3, "env.eval_episodes": 1, "env.gif": False}
    book = deeprecipes.run("q-learning-cartpole", overrides=short, out=tmp_path / "book", progress=False)
    fixed = deeprecipes.run("q-learning-cartpole-fixed", overrides=short, out=tmp_path / "fixed", progress=False)
    assert book.metrics["episodes"] == 3 and book.summary["config"]["env"]["id"] == "CartPole-v0"
    assert torch.allclose(book.model.scaler_mean, torch.full((4,), 0.5, dtype=torch.float32), atol=0.01)
    assert abs(float(fixed.model.scaler_mean[2])) < 0.05  # pole angles of random play centre on 0
    assert book.model.rbf_weights.shape == (4, 4, 500)
    eps = [json.loads(line)["epsilon"] for line in (tmp_path / "book" / "metrics.jsonl").read_text().splitlines()]
    assert eps == pytest.approx([1 / np.sqrt(2), 1 / np.sqrt(3), 1 / np.sqrt(4)])  # eps = 1/sqrt(n+1), after episode n


ATARI_TINY = {
    "gym-random-agent": {"env.max_episode_steps": 200},
    "random-search-pacman": {
        "agent.candidates": 2,
        "agent.episodes_per_candidate": 1,
        "env.max_episode_steps": 100,
        "env.eval_episodes": 1,
    },
    "dqn-atari": {
        "env.episodes": 0,
        "train.max_steps": 80,
        "agent.learning_starts": 40,
        "agent.buffer_size": 200,
        "agent.train_freq": 10,
        "env.max_episode_steps": 200,
        "env.eval_episodes": 1,
    },
    "policy-gradient-pong": {"env.episodes": 1, "env.max_episode_steps": 100, "env.eval_episodes": 1},
}


ATARI_TINY["dqn-atari-fast"] = {**ATARI_TINY["dqn-atari"], "train.checkpoint_every": 40}
ATARI_TINY["dqn-minatar-breakout"] = {"train.max_steps": 300, "agent.learning_starts": 100, "env.eval_episodes": 2}


@pytest.mark.parametrize("recipe", ATARI_TINY)
def test_atari_recipes_run_end_to_end_on_tiny_budgets(recipe, tmp_path):
    pytest.importorskip("minatar" if "minatar" in recipe else "ale_py")
    result = deeprecipes.run(recipe, overrides=ATARI_TINY[recipe], out=tmp_path, progress=False)
    assert (tmp_path / "figures" / "episode.gif").read_bytes()[:3] == b"GIF"
    assert (tmp_path / "figures" / "returns.png").read_bytes()[:4] == b"\x89PNG"  # return and length curves
    assert result.metrics["eval_length_mean"] > 0 and result.metrics["episodes"] >= 1
    if recipe == "random-search-pacman":
        assert len(result.summary["agent"]["candidate_mean_lengths"]) == 2
    if recipe.startswith("dqn-atari"):
        assert result.model.conv[0].in_channels == 4  # a stack of 4 frames of 84x84
    if recipe == "dqn-minatar-breakout":  # 10x10 object planes, channels last, not a frame stack
        assert result.model.conv[0].in_channels == 4 and result.model.head[-1].out_features == 3


@pytest.mark.parametrize("recipe", ["policy-gradient-cartpole", "a2c-cartpole"])
def test_policy_gradient_agents_resume_to_identical_weights(recipe, tmp_path, monkeypatch, crash_agent_at):
    from deeprecipes.rl.a2c import A2C
    from deeprecipes.rl.reinforce import Reinforce

    agent = Reinforce if recipe.startswith("policy") else A2C
    short = {"train.max_steps": 600, "train.checkpoint_every": 100, "env.eval_every": 250, "env.eval_episodes": 2}
    short["env.gif"] = False
    deeprecipes.run(recipe, overrides=short, out=tmp_path / "whole", progress=False)
    with monkeypatch.context() as m:
        crash_agent_at(m, agent, 420)
        with pytest.raises(KeyboardInterrupt):
            deeprecipes.run(recipe, overrides=short, out=tmp_path / "cut", progress=False)
    deeprecipes.resume(tmp_path / "cut", progress=False)
    for which in ("latest", "best"):  # the periodic evaluations chose the same weights too
        a = load_checkpoint(tmp_path / "whole" / "checkpoints", which)[0]
        b = load_checkpoint(tmp_path / "cut" / "checkpoints", which)[0]
        assert all(torch.equal(a[k], b[k]) for k in a), which


def test_train_compile_compiles_the_agents_network(tmp_path):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    over = {**DQN_SMALL, "train.compile": True, "train.max_steps": 120, "env.eval_episodes": 1, "env.gif": False}
    deeprecipes.run("dqn-cartpole", out=tmp_path, overrides=over, progress=False)
    assert torch._dynamo.utils.counters["frames"]["ok"] >= 1


@pytest.mark.parametrize("key, value", [("train.epochs", 3), ("train.batch_size", 7), ("train.eval_on", ["val"])])
def test_train_settings_a_reinforcement_learning_run_would_ignore_are_refused(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} = .*does not use it.*train\.max_steps"):
        deeprecipes.run("dqn-cartpole", out=tmp_path / "run", overrides={key: value}, progress=False)
    assert not (tmp_path / "run").exists()
