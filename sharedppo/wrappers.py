"""Gymnasium wrappers for ``env.wrappers``, shipped for the tasks sharedppo documents."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np


class KeepObservation(gym.ObservationWrapper):
    """Keep only the observation entries at ``indices`` of a flat Box observation.

    ``KeepObservation(gym.make("CartPole-v1"), [0, 2])`` hides both velocities (cart
    position and pole angle remain), a task a feed-forward policy cannot solve from one
    observation and a recurrent one (``network.recurrent``) can.
    """

    def __init__(self, env: gym.Env, indices: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"KeepObservation needs a flat Box observation space, not {space}")
        self.indices = np.asarray(list(indices), dtype=np.int64)
        if len(self.indices) == 0 or not all(0 <= i < space.shape[0] for i in self.indices):
            raise ValueError(
                f"indices={list(indices)} must be a non-empty list of positions in "
                f"0..{space.shape[0] - 1}"
            )
        self.observation_space = gym.spaces.Box(
            space.low[self.indices], space.high[self.indices], dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.indices]
