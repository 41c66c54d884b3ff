"""End-to-end behaviour of train(): time limits, determinism, learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.run.session import train

CONSTANT_ID = "SharedPPOTest/Constant-v0"


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, never terminates; only a time limit ends an episode."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


if CONSTANT_ID not in gym.registry:
    gym.register(CONSTANT_ID, entry_point=ConstantRewardEnv, max_episode_steps=20)


def test_time_limit_bootstraps_value(cfg_factory, tmp_path):
    gamma = 0.9
    cfg = cfg_factory(
        f"env.id={CONSTANT_ID}",
        "env.vectorization_mode=sync",
        "env.num_envs=4",
        f"ppo.gamma={gamma}",
        "ppo.lam=0.95",
        "ppo.num_steps=32",
        "ppo.update_epochs=10",
        "ppo.num_minibatches=2",
        "total_steps=12000",
    )
    agent = train(cfg, tmp_path).agent
    value = agent.value(torch.zeros(1, 2)).item()
    # Treating the cut as a termination would pull V towards the mean of
    # (1 - gamma^k) / (1 - gamma) over k = 1..20, about 6.05.
    assert value == pytest.approx(1 / (1 - gamma), abs=1.0)


def test_same_seed_same_run(cfg_factory, tmp_path):
    cfg = cfg_factory("total_steps=3000", "seed=7", "network.dropout=0.1")
    a = train(cfg, tmp_path / "a")
    b = train(cfg, tmp_path / "b")
    c = train(cfg_factory("total_steps=3000", "seed=8", "network.dropout=0.1"), tmp_path / "c")
    params = [dict(r.agent.net.named_parameters()) for r in (a, b, c)]
    assert a.episodes == b.episodes and a.mean_return == b.mean_return
    assert all(torch.equal(params[0][k], params[1][k]) for k in params[0])
    assert not all(torch.equal(params[0][k], params[2][k]) for k in params[0])


@pytest.mark.parametrize("preset", [[], ["experiment=cartpole_fast"]], ids=["default", "fast"])
def test_cartpole_is_solved_on_its_own_reward(cfg_factory, tmp_path, preset):
    result = train(cfg_factory(*preset, "seed=0", "stop_on_target=true"), tmp_path)
    assert result.target_step is not None, result
    assert result.mean_return >= 475
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "summary.json").is_file()
