"""The training loop's parts keep to their own: the trainer's build fails on one path, the
memory stores without knowing GAE, the agent snapshots its weights, the logger names tags."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from sharedppo.algo.agent import PPOAgent
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.run import trainer as trainer_module
from sharedppo.run.memory import RolloutMemory
from sharedppo.run.trainer import Trainer
from sharedppo.tb.logger import stat_tag


@pytest.mark.parametrize("error", [ConfigError, RuntimeError])
def test_a_failure_while_building_the_trainer_closes_its_envs(
    cfg_factory, tmp_path, monkeypatch, error
):
    closed = []

    def make_envs(*args, **kwargs):
        envs, obs, info = real_make_envs(*args, **kwargs)
        close = envs.close
        # CartPole's own vector env keeps no ``closed`` flag: count the calls instead.
        monkeypatch.setattr(envs, "close", lambda: closed.append(close()))
        return envs, obs, info

    def build_model(*args, **kwargs):
        raise error("refused")

    real_make_envs = trainer_module.make_envs
    monkeypatch.setattr(trainer_module, "make_envs", make_envs)
    monkeypatch.setattr(trainer_module, "build_model", build_model)
    cfg = OmegaConf.to_object(cfg_factory("env.num_envs=2"))
    with pytest.raises(error, match="refused"):
        Trainer(cfg, {}, tmp_path, torch.device("cpu"))
    assert len(closed) == 1


def test_the_memory_takes_its_shape_by_name_and_no_gae_parameters():
    with pytest.raises(TypeError):
        RolloutMemory(4, 2, (3,), torch.device("cpu"))
    with pytest.raises(TypeError):
        RolloutMemory(num_steps=4, num_envs=2, obs_shape=(3,), device="cpu", gamma=0.9)


def test_a_snapshot_restores_the_weights_it_copied():
    torch.manual_seed(0)
    agent = PPOAgent(ActorCritic(3, 2, NetworkConfig()), PPOConfig())
    before = [p.detach().clone() for p in agent.net.parameters()]
    snapshot = agent.snapshot()
    assert agent.snapshot(into=snapshot) is snapshot  # reused, not reallocated
    with torch.no_grad():
        next(agent.net.parameters()).fill_(float("nan"))
    assert not agent.weights_finite()
    agent.restore(snapshot)
    assert agent.weights_finite()
    for p, q in zip(agent.net.parameters(), before, strict=True):
        assert torch.equal(p, q)


def test_the_logger_tags_the_update_stats_by_name():
    assert stat_tag("policy_loss") == "losses/policy_loss"
    assert stat_tag("explained_variance") == "losses/explained_variance"
    assert stat_tag("grad_norm") == "charts/grad_norm"
    assert stat_tag("SPS") == "charts/SPS"
