"""DQN (Mnih et al. 2013/2015; cookbook 9.4): epsilon-greedy acting, experience replay, a target network.

Every ``train_freq`` environment steps (after ``learning_starts``) it takes ``gradient_steps`` minibatch steps on
``(r + gamma * (1 - terminal) * max_a' Q_target(s', a') - Q(s, a))`` (the network's loss: Huber or squared), and
every ``target_update`` environment steps it copies the online weights into the target network. Epsilon falls
linearly from ``eps_start`` to ``eps_end`` over ``eps_steps`` environment steps. The defaults are rl-zoo's tuned
DQN for CartPole-v1 (Stable-Baselines3): batch 64, buffer 100,000, learning starts 1,000, 128 gradient steps every
256 environment steps, target update every 10 steps, epsilon to 0.04 over 8,000 steps (0.16 of 50,000).

The replay buffer stores each frame once (:class:`deeprecipes.rl.buffer.ReplayBuffer`); its contents, the target
network and the agent's random generator are in ``state_dict``, so a resumed run samples the same minibatches.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..params import NonNegativeInt, PositiveInt, Probability
from .base import Agent, discrete_actions, obs_size, register_agent, to_tensor
from .buffer import ReplayBuffer

__all__ = ["DQN"]


@register_agent("dqn")
class DQN(Agent):
    name = "dqn"

    def __init__(
        self,
        gamma: Probability = 0.99,
        buffer_size: PositiveInt = 100_000,
        learning_starts: NonNegativeInt = 1_000,
        batch_size: PositiveInt = 64,
        train_freq: PositiveInt = 256,
        gradient_steps: PositiveInt = 128,
        target_update: PositiveInt = 10,
        eps_start: Probability = 1.0,
        eps_end: Probability = 0.04,
        eps_steps: PositiveInt = 8_000,
        double: bool = False,
    ) -> None:
        self.gamma, self.buffer_size, self.learning_starts = gamma, buffer_size, learning_starts
        self.batch_size, self.train_freq, self.gradient_steps = batch_size, train_freq, gradient_steps
        self.target_update, self.double = target_update, double
        self.eps_start, self.eps_end, self.eps_steps = eps_start, eps_end, eps_steps

    def network_args(self, observation_space: Any, action_space: Any) -> dict[str, Any]:
        shape = tuple(observation_space.shape or ())
        out: dict[str, Any] = {"n_actions": discrete_actions(action_space, self.name)}
        out["n_inputs"] = obs_size(observation_space, self.name, flat=False)
        if len(shape) == 3:  # Atari frame stacks (C, H, W); MinAtar's channels come last (H, W, C)
            out.update(frames=shape[0], size=shape[1], channels=shape[-1])
        return out

    def bind(self, network: Any, engine: Any, observation_space: Any, action_space: Any, seed: int) -> None:
        super().bind(network, engine, observation_space, action_space, seed)
        shape = tuple(observation_space.shape)
        uint8 = observation_space.dtype == np.uint8
        stack = shape[0] if len(shape) == 3 and uint8 else 1  # Atari's frame stacks are stored a frame at a time
        frame = shape[1:] if stack > 1 else shape
        dtype = np.uint8 if uint8 else np.float32
        self.buffer = ReplayBuffer(self.buffer_size, frame, dtype, stack)
        self.target = copy.deepcopy(network).eval()
        self.target.requires_grad_(False)
        self.last_loss = float("nan")

    @property
    def epsilon(self) -> float:
        frac = min(self.steps / self.eps_steps, 1.0)
        return self.eps_start + frac * (self.eps_end - self.eps_start)

    def begin_episode(self, obs: Any) -> None:
        super().begin_episode(obs)
        self.buffer.start(obs)

    def act(self, obs: Any) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.n_actions))
        return self.greedy(obs)

    def observe(self, action: int, reward: float, next_obs: Any, terminal: bool, end: bool) -> dict[str, float]:
        self.buffer.add(action, reward, next_obs, terminal)
        self.steps += 1
        logs: dict[str, float] = {}
        if self.steps > self.learning_starts and self.steps % self.train_freq == 0:
            losses = [self.learn() for _ in range(self.gradient_steps)]
            self.last_loss = float(np.mean(losses))
            logs["loss"] = self.last_loss
        if self.steps % self.target_update == 0:
            self.target.load_state_dict(self.net.state_dict())
        return logs

    def learn(self) -> float:
        obs, actions, rewards, next_obs, terminals = self.buffer.sample(self.batch_size, self.rng)
        d = self.device
        next_obs_t = to_tensor(next_obs, d)
        with torch.no_grad():
            q_next = self.target(next_obs_t)
            if self.double:
                best = self.net(next_obs_t).argmax(1, keepdim=True)
                q_max = q_next.gather(1, best).squeeze(1)
            else:
                q_max = q_next.max(1).values
            alive = 1.0 - to_tensor(terminals, d).float()
            targets = to_tensor(rewards, d).float() + self.gamma * alive * q_max
        loss, _ = self.net.compute_loss((to_tensor(obs, d), to_tensor(actions, d), targets))
        self.engine.step(loss)
        return float(loss.detach())

    def scalars(self) -> dict[str, float]:
        return {"epsilon": self.epsilon}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
        self.target.load_state_dict(state["target"])
