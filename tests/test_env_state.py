"""Env state capture copes with any numpy dtype and any attribute: what it cannot store is
listed (resume inexact), never a crash; what it cannot set back is one line."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.envs.state import EnvStateError, capture_state, restore_state


def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4", "Blackjack-v1"])
def test_toy_text_state_round_trips_exactly(env_id):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    envs.reset(seed=0)
    skipped: list[str] = []
    state = _round_trip(capture_state(envs, skipped))
    assert skipped == []
    actions = np.array([1, 0])
    first = envs.step(actions)
    restore_state(envs, state)
    again = envs.step(actions)
    assert str(first[:3]) == str(again[:3])


class Odd(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.names = np.array(["a", "bc"])  # unicode
        self.record = np.zeros(2, dtype=[("x", "<i4"), ("tag", "S3")])  # structured
        self.stamp = np.datetime64("2026-01-01")
        self.objects = np.array([object()], dtype=object)
        self.engine = object()  # a C object, say: cannot be stored
        self.f64 = {"gain": np.float64(0.5)}


def test_odd_dtypes_are_stored_and_what_cannot_be_is_named():
    env = Odd()
    env.record["x"] = [3, 4]
    env.record["tag"] = [b"ab", b"c"]
    skipped: list[str] = []
    state = _round_trip(capture_state(env, skipped))
    assert sorted(skipped) == ["env.engine (object)", "env.objects (numpy array of Python objects)"]
    fresh = Odd()
    restore_state(fresh, state)
    assert fresh.names.tolist() == ["a", "bc"] and fresh.record["tag"].tolist() == [b"ab", b"c"]
    assert fresh.record["x"].tolist() == [3, 4] and fresh.stamp == env.stamp
    assert fresh.f64 == {"gain": 0.5}


def test_what_cannot_be_set_back_is_one_line():
    class Frozen:
        __slots__ = ()

    with pytest.raises(EnvStateError, match=r"env\.x could not be restored") as err:
        restore_state(Frozen(), {"x": ("value", 1)})
    assert "\n" not in str(err.value)
