"""CartPole that misbehaves at a chosen step, for tests/test_sweep_continue.py.

``env.id=tests.faulty_env:Faulty-v0``. While the file named by ``$SHAREDPPO_TEST_FLAG`` exists
(it is removed as the env acts, so each happens once):
``env.kwargs.crash_at=N``: the N-th step of a copy ends its process with exit code 3, as a
segfault or an ``os._exit`` in an env would; ``env.kwargs.stop_at=N``: the N-th step sends
SIGINT to the process group of the session's leader (the sweep's command, which the test
starts in a session of its own), as a Ctrl-C typed in its terminal would. 0: never.
"""

from __future__ import annotations

import os
import signal

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


def _flag_taken() -> bool:
    flag = os.environ.get("SHAREDPPO_TEST_FLAG", "")
    try:
        os.unlink(flag)
    except OSError:
        return False
    return True


class Faulty(CartPoleEnv):
    def __init__(self, crash_at: int = 0, stop_at: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crash_at, self.stop_at = crash_at, stop_at
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.crash_at and _flag_taken():
            os._exit(3)
        if self.steps == self.stop_at and _flag_taken():
            os.killpg(os.getsid(0), signal.SIGINT)
        return super().step(action)


if "Faulty-v0" not in gym.registry:
    gym.register("Faulty-v0", entry_point=Faulty, max_episode_steps=500)
