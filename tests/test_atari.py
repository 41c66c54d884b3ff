"""Pixels: the Nature CNN trunk, and Atari with the standard wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.config import NetworkConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.run.session import train


def test_nature_cnn_shapes_and_both_heads_reach_it():
    net = ActorCritic((4, 84, 84), gym.spaces.Discrete(6), NetworkConfig(type="nature_cnn"))
    frames = torch.randint(0, 256, (5, 4, 84, 84)).float()
    logits, values = net(frames)
    assert logits.shape == (5, 6) and values.shape == (5,)
    first_conv = net.convs[0][0]
    for out in (logits.square().sum(), values.square().sum()):
        net.zero_grad()
        out.backward(retain_graph=True)
        assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_nature_cnn_refuses_flat_observations():
    from sharedppo.config import ConfigError

    with pytest.raises(ConfigError, match="image observations"):
        ActorCritic(4, 2, NetworkConfig(type="nature_cnn"))


def test_atari_wrappers_end_learner_episodes_per_life_and_log_real_games(cfg_factory):
    pytest.importorskip("ale_py", reason="the atari extra is not installed")
    pytest.importorskip("cv2", reason="the atari extra is not installed")
    from omegaconf import OmegaConf

    from sharedppo.envs.build import make_envs

    env_cfg = OmegaConf.to_object(cfg_factory("env=atari", "env.num_envs=1")).env
    envs, obs, _ = make_envs(env_cfg, seed=0)
    assert obs.shape == (1, 4, 84, 84) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    life_ends = game_ends = 0
    raw_total = clipped_total = 0.0
    for _ in range(5000):
        obs, reward, terminated, truncated, info = envs.step(rng.integers(0, 4, 1))
        clipped_total += float(reward[0])
        raw_total += float(info.get("env_reward", [0.0])[0])
        life_ends += int(terminated[0] or truncated[0])
        if info.get("game_over", [False])[0]:
            game_ends += 1
            break
    envs.close()
    assert game_ends == 1
    assert life_ends == 5  # Breakout: five lives, each loss ends a learner episode
    assert raw_total >= clipped_total  # logged scores are not clipped


def test_breakout_preset_runs(cfg_factory, tmp_path):
    pytest.importorskip("ale_py", reason="the atari extra is not installed")
    pytest.importorskip("cv2", reason="the atari extra is not installed")
    cfg = cfg_factory(
        "experiment=breakout", "env.num_envs=2", "ppo.num_steps=32", "total_steps=128"
    )
    result = train(cfg, tmp_path)
    assert result.global_step >= 128
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_evaluation_and_video_envs_match_the_training_env(cfg_factory, tmp_path):
    """One builder: evaluation (and video) see the observations training saw, wrappers included."""
    pytest.importorskip("ale_py", reason="the atari extra is not installed")
    pytest.importorskip("cv2", reason="the atari extra is not installed")
    from omegaconf import OmegaConf

    from sharedppo.envs.build import make_envs

    env_cfg = OmegaConf.to_object(cfg_factory("env=atari", "env.num_envs=2")).env
    train_envs, train_obs, _ = make_envs(env_cfg, seed=0)
    eval_envs, eval_obs, _ = make_envs(env_cfg, seed=1, num_envs=1)
    assert eval_envs.single_observation_space == train_envs.single_observation_space
    assert eval_obs.shape[1:] == train_obs.shape[1:] == (4, 84, 84)
    for envs in (train_envs, eval_envs):
        envs.close()
    try:
        video_envs, _, _ = make_envs(env_cfg, seed=2, video_dir=tmp_path / "videos")
    except Exception as err:  # the video extra may be absent; the spaces must still agree
        pytest.skip(f"video recording unavailable: {err}")
    assert video_envs.single_observation_space == train_envs.single_observation_space
    video_envs.close()
