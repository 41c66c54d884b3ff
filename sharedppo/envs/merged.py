"""Several runs' numpy-vectorised CartPole envs stepped as one (a pack's runs, ``pack.collect``).

gymnasium's ``CartPoleVectorEnv`` steps all its envs with one set of numpy array operations:
8 envs cost about the same call overhead as 64 (74k against 580k env steps/s on this machine,
``../shared/anchors.md``). A pack of R runs of 8 envs each would pay R such calls per step;
:class:`MergedCartPole` pays one. Each run keeps its own env object, whose state this class
gathers before the step and hands back after it, so a run's checkpoint (``envs.state``) and
everything it reads are its own; and an env that starts a new episode draws its start from
its own run's generator, as it would alone. So every run steps exactly as it would alone
(``tests/test_merged_envs.py``); the physics is gymnasium's own ``step``, on the gathered
arrays.

Only plain ``CartPoleVectorEnv`` objects of identical settings are merged
(:func:`mergeable`); any other env steps alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

# What a CartPoleVectorEnv's step reads besides its state; equal across merged envs.
SETTINGS = (
    "gravity", "masscart", "masspole", "total_mass", "length", "polemass_length", "force_mag",
    "tau", "kinematics_integrator", "theta_threshold_radians", "x_threshold", "low", "high",
    "max_episode_steps", "_sutton_barto_reward", "num_envs",
)  # fmt: skip
# What it changes: gathered before a step, handed back after it.
STATE = ("state", "steps", "prev_done")


def _settings(env: Any) -> tuple | None:
    try:
        return tuple(getattr(env, name) for name in SETTINGS)
    except AttributeError:  # another gymnasium's CartPole: each steps alone
        return None


def mergeable(envs: list[Any]) -> bool:
    """Whether these envs can step as one: gymnasium's CartPoleVectorEnv, the same settings,
    started (reset) already."""
    if len(envs) < 2 or any(type(e) is not CartPoleVectorEnv for e in envs):
        return False
    first = _settings(envs[0])
    return first is not None and all(
        _settings(e) == first and getattr(e, "state", None) is not None for e in envs
    )


class _TwoActions:
    """The merged env's action space as gymnasium's ``step`` asserts it: each of ``n``
    actions 0 or 1, checked in two numpy ops (``MultiDiscrete.contains`` took about a tenth
    of a merged step of 64 envs)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def contains(self, actions: np.ndarray) -> bool:
        return actions.shape == (self.n,) and bool(((actions == 0) | (actions == 1)).all())


class MergedCartPole:
    def __init__(self, envs: list[CartPoleVectorEnv]) -> None:
        first = envs[0]
        self.per_env = first.num_envs
        self.whole = CartPoleVectorEnv(
            num_envs=first.num_envs * len(envs),
            max_episode_steps=first.max_episode_steps,
            sutton_barto_reward=first._sutton_barto_reward,
        )
        for name in SETTINGS[:-1]:
            setattr(self.whole, name, getattr(first, name))
        self._resize(first.num_envs * len(envs))

    def _resize(self, total: int) -> None:
        self.whole.num_envs = total
        self.whole.action_space = _TwoActions(total)

    def step(
        self, envs: list[CartPoleVectorEnv], actions: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]]:
        """Step ``envs`` (any of the envs this was built for, in any number) with their
        actions; returns each env's (obs, reward, terminated, truncated, info)."""
        self.gather(envs)
        obs, reward, terminated, truncated = self.step_gathered(envs, np.concatenate(actions))
        self.hand_back(envs)
        n = self.per_env
        parts = [slice(r * n, (r + 1) * n) for r in range(len(envs))]
        return [(obs[p], reward[p], terminated[p], truncated[p], {}) for p in parts]

    def gather(self, envs: list[CartPoleVectorEnv]) -> None:
        """The whole env takes over ``envs``' arrays (state, step counts, done flags)."""
        whole, total = self.whole, self.per_env * len(envs)
        if total != whole.num_envs:  # some runs rest: the gathered arrays are shorter
            self._resize(total)
        whole.state = np.concatenate([e.state for e in envs], axis=1)
        whole.steps = np.concatenate([e.steps for e in envs])
        whole.prev_done = np.concatenate([e.prev_done for e in envs])

    def step_gathered(
        self, envs: list[CartPoleVectorEnv], actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One step of the gathered envs (``gather``) with their actions side by side;
        returns the whole (obs, reward, terminated, truncated). ``envs`` stay as they were
        until :meth:`hand_back`."""
        whole, n = self.whole, self.per_env
        starting = whole.prev_done  # the step replaces this array; it never writes into it
        obs, reward, terminated, truncated, _ = whole.step(actions)
        if starting.any():  # these envs start an episode: each from its own run's generator
            for r in np.unique(np.flatnonzero(starting) // n):
                env = envs[r]
                cols = np.flatnonzero(starting[r * n : (r + 1) * n]) + r * n
                fresh = env.np_random.uniform(low=env.low, high=env.high, size=(4, len(cols)))
                whole.state[:, cols] = fresh
                obs[cols] = fresh.T.astype(np.float32)
        return obs, reward, terminated, truncated

    def hand_back(self, envs: list[CartPoleVectorEnv]) -> None:
        """Each of ``envs`` holds its part of the whole env's arrays again."""
        whole, n = self.whole, self.per_env
        for r, env in enumerate(envs):
            part = slice(r * n, (r + 1) * n)
            env.state = whole.state[:, part]
            env.steps = whole.steps[part]
            env.prev_done = whole.prev_done[part]
