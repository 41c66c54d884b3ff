"""The hand-derived PPO gradient (gradient.Fused) against autograd on the same loss."""

from __future__ import annotations

import itertools

import gymnasium as gym
import pytest
import torch

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.gradient import Fused, fused_unsupported
from sharedppo.algo.loss import Scored, ppo_loss
from sharedppo.config import NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.run.session import train

SPACES = {
    "discrete": gym.spaces.Discrete(3),
    "box": gym.spaces.Box(-1.0, 1.0, (2,)),
}


def _moved_batch(agent: PPOAgent, n: int = 64) -> Batch:
    """A batch acted by the network, whose parameters are then moved so that ratios spread
    well past the clip range on both sides (clipped and unclipped rows, both signs of A)."""
    obs = torch.randn(n, 5)
    with torch.no_grad():
        actions, logprobs, values, masks = agent.act(obs)
        for p in agent.net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    returns = values + 0.5 * torch.randn(n)
    return Batch(obs, actions, logprobs, values, torch.randn(n), returns, masks)


def _autograd_gradient(agent: PPOAgent, mb: Batch, clip: float) -> torch.Tensor:
    out, values = agent.net(mb.obs, mb.masks)
    logratio = agent.net.dist.log_prob(out, mb.actions) - mb.logprobs
    fwd = Scored(out, values, logratio, logratio.exp())
    entropy = agent.net.dist.entropy(out)
    loss = ppo_loss(fwd, entropy, mb, mb.advantages, agent.cfg, clip).total
    agent.optimizer.zero_grad()
    loss.backward()
    return agent.optimizer.flat_grad.clone(), fwd.ratio.detach()


CASES = list(
    itertools.product(
        [True, False],  # shared trunk
        ["tanh", "relu"],
        list(SPACES),
        [0.0, 0.3],  # dropout
        [None, 0.2],  # value clipping range
        [0.0, 0.05],  # entropy coefficient
        [1, 2],  # depth
    )
)


@pytest.mark.parametrize("shared,activation,space,dropout,clip_vloss,ent_coef,depth", CASES)
def test_fused_gradient_matches_autograd(
    shared, activation, space, dropout, clip_vloss, ent_coef, depth
):
    case = (shared, activation, space, dropout, clip_vloss, ent_coef, depth)
    torch.manual_seed(CASES.index(case))
    net_cfg = NetworkConfig(
        shared=shared, activation=activation, dropout=dropout, depth=depth, width=16
    )
    net = ActorCritic(5, SPACES[space], net_cfg)
    cfg = PPOConfig(clip_vloss=clip_vloss, ent_coef=ent_coef, vf_coef=0.7)
    agent = PPOAgent(net, cfg)
    assert isinstance(agent.gradient, Fused)
    mb = _moved_batch(agent)
    expected, ratio = _autograd_gradient(agent, mb, clip=0.2)
    # The batch must exercise both sides of the clip, or the test proves little.
    clipped = ((ratio - 1).abs() > 0.2).float().mean()
    assert 0.05 < clipped < 0.95

    agent.optimizer.flat_grad.normal_()  # every parameter's gradient must be overwritten
    fwd = agent.gradient.forward(mb)
    assert torch.allclose(fwd.ratio, ratio, rtol=1e-5)
    assert agent.gradient.backward(fwd, mb, mb.advantages, 0.2) is None
    got = agent.optimizer.flat_grad
    assert expected.abs().sum() > 0
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6 * expected.abs().max())


@pytest.mark.parametrize("minibatches", [1, 4])
def test_fused_and_autograd_updates_agree(minibatches):
    """A whole update (20 epochs, annealed clip, KL stop armed) ends at the same weights."""
    nets = []
    for fused in (True, False):
        torch.manual_seed(3)
        net = ActorCritic(5, SPACES["discrete"], NetworkConfig(dropout=0.1))
        cfg = PPOConfig(fused=fused, num_minibatches=minibatches, target_kl=0.05, ent_coef=0.01)
        agent = PPOAgent(net, cfg)
        assert isinstance(agent.gradient, Fused) == fused
        torch.manual_seed(4)
        obs = torch.randn(128, 5)
        with torch.no_grad():
            actions, logprobs, values, masks = agent.act(obs)
        batch = Batch(obs, actions, logprobs, values, torch.randn(128), values + 1, masks)
        stats = agent.update(batch)
        nets.append((net, stats))
    (fused_net, fused_stats), (ref_net, ref_stats) = nets
    assert fused_stats["update_steps"] == ref_stats["update_steps"] > 0
    for a, b in zip(fused_net.parameters(), ref_net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "grad_norm"):
        assert fused_stats[key] == pytest.approx(ref_stats[key], rel=1e-3, abs=1e-6), key


@pytest.mark.parametrize(
    "net_cfg,space",
    [
        (NetworkConfig(activation="gelu"), SPACES["discrete"]),
        (NetworkConfig(), gym.spaces.MultiDiscrete([2, 3])),
    ],
    ids=["gelu", "multidiscrete"],
)
def test_other_networks_use_autograd(net_cfg, space):
    net = ActorCritic(5, space, net_cfg)
    assert fused_unsupported(net) is not None
    agent = PPOAgent(net, PPOConfig())
    assert not isinstance(agent.gradient, Fused)
    obs = torch.randn(32, 5)
    with torch.no_grad():
        actions, logprobs, values, masks = agent.act(obs)
    before = agent.optimizer.flat.clone()
    agent.update(Batch(obs, actions, logprobs, values, torch.randn(32), values, masks))
    assert not torch.equal(before, agent.optimizer.flat)


def test_fused_off_still_learns(cfg_factory, tmp_path):
    cfg = cfg_factory("ppo.fused=false", "total_steps=512")
    agent = train(cfg, tmp_path).agent
    assert not isinstance(agent.gradient, Fused)
