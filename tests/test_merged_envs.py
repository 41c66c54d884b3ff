"""Several runs' CartPole envs stepped as one step exactly as each would alone."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sharedppo.envs.merged import MergedCartPole, mergeable


def _envs(seeds, num_envs=4, **kwargs):
    out = []
    for seed in seeds:
        env = gym.make_vec(
            "CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
        )
        env.reset(seed=seed)
        out.append(env.unwrapped if hasattr(env, "unwrapped") else env)
    return out


def test_merged_cartpoles_step_exactly_as_each_alone():
    seeds = [0, 1, 2]
    alone, merged_envs = _envs(seeds), _envs(seeds)
    assert mergeable(merged_envs)
    merged = MergedCartPole(merged_envs)
    rng = np.random.default_rng(0)
    resets = 0
    for step in range(1500):
        actions = [rng.integers(0, 2, 4) for _ in seeds]
        # Some steps one run rests (a finished run of a pack): the others step without it.
        active = [0, 2] if step % 7 == 3 else [0, 1, 2]
        results = merged.step([merged_envs[r] for r in active], [actions[r] for r in active])
        for r, got in zip(active, results, strict=True):
            want = alone[r].step(actions[r])
            for a, b in zip(got[:4], want[:4], strict=True):
                np.testing.assert_array_equal(a, b)
            resets += int(want[2].sum() + want[3].sum())
    assert resets > 50  # episodes ended and restarted from each run's own generator
    for a, b in zip(alone, merged_envs, strict=True):
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.steps, b.steps)
        assert a.np_random.bit_generator.state == b.np_random.bit_generator.state


def test_only_plain_cartpoles_of_the_same_settings_merge():
    assert not mergeable(_envs([0]))  # one run: nothing to merge
    assert not mergeable(_envs([0]) + _envs([1], num_envs=8))
    assert not mergeable(_envs([0]) + _envs([1], max_episode_steps=100))
    pendulum = gym.make_vec("Pendulum-v1", num_envs=4)
    assert not mergeable(_envs([0]) + [pendulum])
