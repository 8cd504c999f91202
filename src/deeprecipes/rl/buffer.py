"""Experience replay that stores every frame once, and whose whole contents go into a checkpoint (safetensors).

A naive buffer keeps each transition's state and next state: with a stack of 4 frames, every frame is stored 8
times (the book's 500,000 transitions of 4x80x80 uint8 take 12.8 GB that way, counting each state once).
:class:`ReplayBuffer` keeps a ring of single frames instead (a flat observation counts as one "frame"), with per
frame the action taken from it, the reward, whether that step ended the episode, whether a next frame follows, and
whether the frame starts an episode. A sample rebuilds the stacks from the ring; before an episode's first frame
the stack repeats that frame, exactly as ``gymnasium.wrappers.FrameStackObservation`` pads after a reset. 500,000
Atari transitions (84x84 grey) take 500,000 x 7,056 bytes = 3.5 GB.

Usage, from the agent's side::

    buf.start(obs)                                         # after reset
    buf.add(action, reward, next_obs, terminal)            # after every step
    obs, actions, rewards, next_obs, terminals = buf.sample(32, rng)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """A ring of ``capacity`` frames of ``frame_shape`` (``dtype``); observations are stacks of ``stack`` frames
    (``stack = 1``: the observation is the frame)."""

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], dtype: Any = np.float32, stack: int = 1) -> None:
        self.capacity, self.stack = int(capacity), int(stack)
        self.frames = np.zeros((self.capacity, *frame_shape), dtype=dtype)
        self.actions = np.zeros(self.capacity, np.int64)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.terminals = np.zeros(self.capacity, np.bool_)
        self.has_next = np.zeros(self.capacity, np.bool_)
        self.first = np.zeros(self.capacity, np.bool_)
        self.cursor = 0  # where the next frame goes
        self.size = 0  # frames held
        self.transitions = 0  # transitions added in all (a step counter for the agent)

    def nbytes(self) -> int:
        arrays = (self.frames, self.actions, self.rewards, self.terminals, self.has_next, self.first)
        return sum(a.nbytes for a in arrays)

    def _frame(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs)
        return obs[-1] if self.stack > 1 else obs

    def _write(self, obs: Any, first: bool) -> None:
        c = self.cursor
        self.frames[c] = self._frame(obs)
        self.first[c], self.has_next[c], self.terminals[c] = first, False, False
        self.cursor = (c + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def start(self, obs: Any) -> None:
        """The first observation of an episode."""
        self._write(obs, True)

    def add(self, action: int, reward: float, next_obs: Any, terminal: bool) -> None:
        """The step from the last frame written: its action, reward, the next observation, and whether the step
        ended in a terminal state (no bootstrapping from ``next_obs``)."""
        p = (self.cursor - 1) % self.capacity
        self.actions[p], self.rewards[p], self.terminals[p], self.has_next[p] = action, reward, terminal, True
        self._write(next_obs, False)
        self.transitions += 1

    def __len__(self) -> int:
        return int(self.has_next[: self.size].sum())

    def _stacks(self, idx: np.ndarray) -> np.ndarray:
        if self.stack == 1:
            return self.frames[idx]
        cols = [idx]
        for _ in range(self.stack - 1):
            prev = cols[0]
            cols.insert(0, np.where(self.first[prev], prev, (prev - 1) % self.capacity))
        return self.frames[np.stack(cols, 1)]

    def _usable(self, idx: np.ndarray) -> np.ndarray:
        ok = self.has_next[idx]
        if self.size == self.capacity:  # the oldest frames' histories may have been written over
            ok &= (idx - self.cursor) % self.capacity >= self.stack - 1
        return ok

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """``n`` transitions drawn uniformly with ``rng``: (obs, actions, rewards, next_obs, terminals)."""
        picked: list[np.ndarray] = []
        count = 0
        while count < n:
            idx = rng.integers(0, self.size, size=2 * n)
            idx = idx[self._usable(idx)]
            picked.append(idx)
            count += len(idx)
        idx = np.concatenate(picked)[:n]
        nxt = (idx + 1) % self.capacity
        return self._stacks(idx), self.actions[idx], self.rewards[idx], self._stacks(nxt), self.terminals[idx]

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "frames": self.frames[:n],
            "actions": self.actions[:n],
            "rewards": self.rewards[:n],
            "terminals": self.terminals[:n],
            "has_next": self.has_next[:n],
            "first": self.first[:n],
            "cursor": self.cursor,
            "size": n,
            "transitions": self.transitions,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["size"])
        if n > self.capacity or tuple(np.shape(state["frames"])[1:]) != self.frames.shape[1:]:
            raise ValueError(f"a saved buffer of {n} frames {np.shape(state['frames'])[1:]} does not fit this one")
        for name in ("frames", "actions", "rewards", "terminals", "has_next", "first"):
            getattr(self, name)[:n] = np.asarray(state[name])
        self.cursor, self.size, self.transitions = int(state["cursor"]), n, int(state["transitions"])
