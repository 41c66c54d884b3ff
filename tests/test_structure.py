"""The foundations: gradient selection by allow-list, optimizer binding, checkpoint layout,
the episode tracker's window, and config checks beside their defaults."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.gradient import Autograd, Fused, fused_unsupported
from sharedppo.compose import compose_checked
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.run.checkpoint import LAYOUT_VERSION, CheckpointError, read, save_atomic
from sharedppo.run.episodes import EpisodeTracker
from sharedppo.run.evaluate import evaluate, load_policy
from sharedppo.run.session import train

V1_CHECKPOINT = Path(__file__).parent / "data" / "v1_cartpole_step2048.pt"


@dataclass
class LayerNormNetworkConfig(NetworkConfig):
    """A network option the fused gradient has never heard of."""

    layer_norm: bool = False


def _update(agent: PPOAgent, n: int = 32) -> None:
    obs = torch.randn(n, 5, dtype=agent.optimizer.flat.dtype)
    with torch.no_grad():
        actions, logprobs, values, masks = agent.act(obs)
    agent.update(Batch(obs, actions, logprobs, values, torch.randn(n).to(obs), values, masks))


def test_an_unknown_network_option_falls_back_to_autograd():
    net = ActorCritic(5, gym.spaces.Discrete(3), LayerNormNetworkConfig())
    assert "layer_norm" in fused_unsupported(net)
    agent = PPOAgent(net, PPOConfig())
    assert type(agent.gradient) is Autograd and not isinstance(agent.gradient, Fused)
    known = PPOAgent(ActorCritic(5, gym.spaces.Discrete(3), NetworkConfig()), PPOConfig())
    assert isinstance(known.gradient, Fused)


@pytest.mark.parametrize("fused", [True, False])
def test_moving_the_network_after_building_the_agent_rebinds_the_optimizer(fused):
    torch.manual_seed(0)
    net = ActorCritic(5, gym.spaces.Discrete(3), NetworkConfig())
    agent = PPOAgent(net, PPOConfig(fused=fused))
    net.to(torch.float64)  # a move the flat buffer must follow (a device move works alike)
    flat = agent.optimizer.flat
    assert flat.dtype == torch.float64
    assert net.policy_head.weight.data_ptr() >= flat.data_ptr()
    before = [p.detach().clone() for p in net.parameters()]
    _update(agent)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert torch.equal(torch.cat([p.detach().flatten() for p in net.parameters()]), flat)


def test_parameters_replaced_behind_the_optimizer_fail_loudly():
    net = ActorCritic(5, gym.spaces.Discrete(3), NetworkConfig())
    agent = PPOAgent(net, PPOConfig())
    net.policy_head.weight.data = net.policy_head.weight.data.clone()
    with pytest.raises(RuntimeError, match="moved or replaced"):
        _update(agent)


def test_episode_tracker_window_target_best_and_auc():
    tracker = EpisodeTracker(2, window=2, target=10.0)
    tracker.record(100, np.array([4.0]))  # mean 4, window not full
    tracker.record(200, np.array([8.0, 12.0]))  # window [8, 12]: mean 10, target reached
    tracker.record(400, np.array([2.0]))  # window [12, 2]: mean 7
    assert tracker.episodes == 4 and tracker.mean_return == 7.0
    assert tracker.target_step == 200 and tracker.best_mean == 10.0
    # Trapezoids of the window mean: (4 + 10) / 2 * 100 + (10 + 7) / 2 * 200 over 300 steps.
    assert tracker.auc_return == pytest.approx((700 + 1700) / 300)
    copy = EpisodeTracker(2, window=2, target=10.0)
    copy.load_state_dict(tracker.state_dict())
    for key in ("recent", "episodes", "target_step", "best_mean", "area", "last_point"):
        assert copy.state_dict()[key] == tracker.state_dict()[key]
    assert copy.auc_return == tracker.auc_return
    empty = EpisodeTracker(1)
    assert math.isnan(empty.mean_return) and math.isnan(empty.auc_return)


def test_a_checkpoint_from_the_previous_layout_resumes(cfg_factory, tmp_path):
    """Written by the code of 2026-11-24 before this layout (CartPole, width 16, 2048 steps,
    ppo.clip_vloss=true when it was a flag)."""
    job = tmp_path / "job"
    (job / "checkpoints").mkdir(parents=True)
    shutil.copy(V1_CHECKPOINT, job / "checkpoints" / "last.pt")
    state = read(job / "checkpoints" / "last.pt")
    assert state["version"] == LAYOUT_VERSION and state["progress"]["global_step"] == 2048
    assert state["config"]["ppo"]["clip_vloss"] == 0.2
    overrides = ("network.width=16", "ppo.clip_vloss=0.2", "total_steps=4096")
    result = train(cfg_factory(*overrides, f"resume={job}"), job)
    assert result.global_step == 4096 and result.updates == 16
    assert result.episodes > 67  # the 67 episodes before the upgrade are counted on
    net, _, _, obs_norm = load_policy(V1_CHECKPOINT, torch.device("cpu"))
    returns, _ = evaluate(net, _cartpole(cfg_factory), 2, True, 0, torch.device("cpu"))
    assert len(returns) == 2


def _cartpole(cfg_factory):
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg_factory()).env


def test_a_newer_layout_is_refused_in_one_line(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"version": LAYOUT_VERSION + 1, "model": {}}, path)
    with pytest.raises(CheckpointError, match="layout version") as err:
        read(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ppo.clip_vloss=true", "ppo.clip_vloss"),
        ("ppo.clip_vloss=-0.1", "must be null or > 0"),
        ("env.num_envs=0", "must be in [1, 65536]"),
        ("checkpoint.every_steps=0", "must be null or >= 1"),
        ("device=gpu", "choose one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_each_key_is_checked_where_it_is_declared(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        compose_checked([override])
    assert "\n" not in str(err.value)


def test_value_clipping_has_its_own_range(cfg_factory):
    assert cfg_factory().ppo.clip_vloss is None
    assert cfg_factory("experiment=breakout").ppo.clip_vloss == 0.1
    assert cfg_factory("ppo.clip_vloss=5.0").ppo.clip_vloss == 5.0
