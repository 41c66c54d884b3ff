"""The lean sync vector env steps like gymnasium's, keeping only the info sharedppo reads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from sharedppo.config import EnvConfig
from sharedppo.envs.build import make_envs
from sharedppo.envs.vector import INFO_KEYS, LeanSyncVectorEnv, make_lean


class _Infos(gym.Wrapper):
    """Adds the keys sharedppo reads, on some steps only, and one it does not read."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.t = 0

    def _info(self, info: dict) -> dict:
        self.t += 1
        info = dict(info, other=self.t, action_mask=np.array([1, self.t % 2], dtype=np.int8))
        if self.t % 3 == 0:
            info["env_reward"] = float(self.t)
        return info

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._info(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._info(info)


def _pair(env_id: str, num_envs: int, **kwargs) -> tuple[SyncVectorEnv, SyncVectorEnv]:
    def make() -> SyncVectorEnv:
        return gym.make_vec(
            env_id, num_envs, vectorization_mode="sync", wrappers=[_Infos], **kwargs
        )

    return make(), make_lean(make())


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("CartPole-v1", {}),  # terminations
        ("CartPole-v1", {"max_episode_steps": 7}),  # truncations
        ("Pendulum-v1", {"max_episode_steps": 9}),  # Box actions
        ("FrozenLake-v1", {}),  # a Discrete observation: gymnasium's concatenate
    ],
)
def test_steps_like_gymnasium_with_only_the_read_info(env_id, kwargs):
    ref, lean = _pair(env_id, 3, **kwargs)
    assert type(lean) is LeanSyncVectorEnv and type(ref) is SyncVectorEnv
    for envs in (ref, lean):
        envs.reset(seed=5)
        envs.action_space.seed(5)
    ends = 0
    for _ in range(200):
        actions = ref.action_space.sample()
        assert np.array_equal(lean.action_space.sample(), actions)
        want, got = ref.step(actions), lean.step(actions)
        for a, b in zip(want[:4], got[:4], strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        ends += int((want[2] | want[3]).sum())
        expected = {
            k: v for k, v in want[4].items() if k in INFO_KEYS or k.lstrip("_") in INFO_KEYS
        }
        assert expected.keys() == got[4].keys()
        assert "other" in want[4]
        for key, value in expected.items():
            assert np.array_equal(value, got[4][key]), key
    assert ends > 3  # episodes ended, and the autoreset steps matched too
    ref.close()
    lean.close()


def test_returned_arrays_are_copies():
    _, lean = _pair("CartPole-v1", 2)
    obs, _ = lean.reset(seed=0)
    first = lean.step(np.array([0, 1]))
    kept = [x.copy() for x in first[:4]]
    lean.step(np.array([1, 0]))
    for before, now in zip(kept, first[:4], strict=True):
        assert np.array_equal(before, now)
    lean.close()


def test_only_gymnasiums_sync_env_is_made_lean():
    vec = gym.make_vec("CartPole-v1", 2, vectorization_mode="vector_entry_point")
    assert make_lean(vec) is vec and type(vec) is not LeanSyncVectorEnv
    vec.close()
    fns = [lambda: gym.make("CartPole-v1")] * 2
    async_envs = AsyncVectorEnv(fns, shared_memory=False)
    assert type(make_lean(async_envs)) is AsyncVectorEnv
    async_envs.close()


def test_training_envs_are_lean_in_sync_mode():
    envs, _, _ = make_envs(EnvConfig(id="Pendulum-v1", num_envs=2), seed=0)
    assert type(envs) is LeanSyncVectorEnv
    envs.close()


class _Longer(gym.Wrapper):
    """Declares CartPole's space but steps to [1, 4] observations, as a buggy env might (a
    row assignment would broadcast them silently)."""

    def step(self, action):
        obs, *rest = self.env.step(action)
        return (obs[None], *rest)


def test_an_observation_of_the_wrong_shape_is_refused_like_gymnasium():
    for make in (lambda envs: envs, make_lean):
        envs = make(gym.make_vec("CartPole-v1", 2, vectorization_mode="sync", wrappers=[_Longer]))
        envs.reset(seed=0)
        with pytest.raises(ValueError):
            envs.step(np.array([0, 1]))
        envs.close()
