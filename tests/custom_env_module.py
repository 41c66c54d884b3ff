"""A user's own environment, as it would sit in their project: importing it registers it.

Used by tests through ``env.id=custom_env_module:Reach-v0`` from another working directory.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Reach(gym.Env):
    """Walk a point on a line to the origin: actions left / stay / right by ``step_size``."""

    metadata = {"render_modes": []}

    def __init__(self, step_size: float = 0.1) -> None:
        self.step_size = step_size
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-1.0, 1.0))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + (int(action) - 1) * self.step_size, -2.0, 2.0))
        done = abs(self.x) < self.step_size / 2
        return np.array([self.x], np.float32), 1.0 if done else -0.1, done, False, {}


if "Reach-v0" not in gym.registry:
    gym.register("Reach-v0", entry_point=Reach, max_episode_steps=50, reward_threshold=0.5)


class ScaleReward(gym.RewardWrapper):
    """A user's own wrapper, configured through env.wrappers."""

    def __init__(self, env: gym.Env, factor: float = 1.0) -> None:
        super().__init__(env)
        self.factor = factor

    def reward(self, reward: float) -> float:
        return reward * self.factor


class Broken(Reach):
    """A user's env with a bug in the phase ``fail`` names (tests/test_env_errors.py)."""

    def __init__(self, fail: str = "init") -> None:
        super().__init__()
        self.fail = fail
        if fail == "init":
            self.buffer = np.zeros(5, 5)  # the bug: np.zeros((5, 5)) was meant

    def reset(self, *, seed=None, options=None):
        if self.fail == "reset":
            raise ValueError("reset bug")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.fail == "step":
            raise RuntimeError("step bug")
        return super().step(action)


class Crowd:
    """A multi-agent env in PettingZoo's style, registered by mistake."""

    possible_agents = ["a", "b"]

    def __init__(self) -> None:
        self.agents = list(self.possible_agents)


if "Broken-v0" not in gym.registry:
    gym.register("Broken-v0", entry_point=Broken, max_episode_steps=50)
    gym.register("Crowd-v0", entry_point=Crowd)
