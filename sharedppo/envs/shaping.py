"""Reward shaping at the vector env: the original blog's CartPole reward
(``env.reach_reward_steps``, ``experiment=seed_cartpole``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper


class ReachStepsReward(VectorWrapper):
    """The original blog's CartPole shaping: 1 on the step an episode reaches ``steps``, else 0.

    The environment's own reward is kept in ``info["env_reward"]`` so episode returns are
    still logged on the environment's scale.
    """

    def __init__(self, env: VectorEnv, steps: int) -> None:
        super().__init__(env)
        self.target = steps
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.prev_done = np.zeros(self.num_envs, dtype=bool)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.lengths[:] = 0
        self.prev_done[:] = False
        return self.env.reset(**kwargs)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.lengths = np.where(self.prev_done, 0, self.lengths + 1)
        self.prev_done = terminated | truncated
        info = dict(info, env_reward=reward)
        return obs, (self.lengths == self.target).astype(np.float32), terminated, truncated, info
