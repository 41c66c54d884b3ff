"""gymnasium's sync vector env with a leaner step: the same transitions, only the info sharedppo
reads.

Per env step gymnasium's ``SyncVectorEnv.step`` also batches every key of every env's info
(HalfCheetah's four floats: eight small arrays a step), iterates the actions through the
space's dispatcher and deep-copies the observations. On a one-env MuJoCo rollout that work,
and the caches it takes from the torch calls between steps, cost about an eighth of the
time: one HalfCheetah step 62 -> 46 us alone (docs/benchmarks.md, "Where a one-env MuJoCo
step went").
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import concatenate

# The info keys anything in sharedppo reads from a vector env (the rollout, evaluation, the
# action masks); EnvPool's envs (envs.envpool) give the same.
INFO_KEYS = ("action_mask", "env_reward", "game_over")

_STATE = (
    "_env_obs",
    "_observations",
    "_rewards",
    "_terminations",
    "_truncations",
    "_autoreset_envs",
)


class LeanSyncVectorEnv(SyncVectorEnv):
    """Steps like gymnasium's ``SyncVectorEnv`` with next-step autoreset (tests/test_vector.py
    compares the two), keeping only ``INFO_KEYS`` of the envs' infos. It holds no state of its
    own: :func:`make_lean` turns a built ``SyncVectorEnv`` into one."""

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.autoreset_mode != AutoresetMode.NEXT_STEP:
            return super().step(actions)
        env_obs, rewards = self._env_obs, self._rewards
        terminations, truncations = self._terminations, self._truncations
        autoreset = self._autoreset_envs
        # A Box's batch is one array: each env's row is written as it comes (np.stack's
        # checks cost more than the row), other spaces go through gymnasium's concatenate.
        rows = self._observations if isinstance(self.single_observation_space, Box) else None
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            if autoreset[i]:
                env_obs[i], info = env.reset()
                rewards[i], terminations[i], truncations[i] = 0.0, False, False
            else:
                env_obs[i], rewards[i], terminations[i], truncations[i], info = env.step(actions[i])
            if rows is not None:
                if np.shape(env_obs[i]) != rows.shape[1:]:  # as np.stack would refuse it
                    raise ValueError(
                        f"env {i} returned an observation of shape {np.shape(env_obs[i])}; "
                        f"its space {self.single_observation_space} has {rows.shape[1:]}"
                    )
                rows[i] = env_obs[i]
            if info:
                kept = {k: info[k] for k in INFO_KEYS if k in info}
                if kept:
                    infos = self._add_info(infos, kept, i)
        self._autoreset_envs = np.logical_or(terminations, truncations)
        if rows is None:
            self._observations = concatenate(
                self.single_observation_space, env_obs, self._observations
            )
        obs = self._observations
        if self.copy:
            obs = obs.copy() if isinstance(obs, np.ndarray) else deepcopy(obs)
        return obs, rewards.copy(), terminations.copy(), truncations.copy(), infos


def make_lean(envs: VectorEnv) -> VectorEnv:
    """``envs`` as a :class:`LeanSyncVectorEnv` if it is exactly gymnasium's ``SyncVectorEnv``
    with the state this step uses (a gymnasium that lays it out otherwise keeps its own)."""
    if type(envs) is SyncVectorEnv and all(hasattr(envs, name) for name in _STATE):
        envs.__class__ = LeanSyncVectorEnv
    return envs
