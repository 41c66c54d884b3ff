"""The update's maths: ratio, entropy bonus, shared-trunk gradients, sampler."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.config import NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.heads import Categorical as CategoricalHead
from sharedppo.nn.heads import sample_categorical
from sharedppo.run.session import train


def categorical_logp_entropy(logits, actions):
    head = CategoricalHead(logits.shape[-1])
    return head.log_prob(logits, actions), head.entropy(logits)


@pytest.mark.parametrize("env", ["cartpole", "pendulum"])  # pendulum: GaussianDraws
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_ratio_is_one_at_first_minibatch(cfg_factory, tmp_path, dropout, env, first_ratios):
    cfg = cfg_factory(
        f"env={env}", f"network.dropout={dropout}", "total_steps=256", "ppo.num_minibatches=4"
    )
    train(cfg, tmp_path)
    assert first_ratios and all(len(ratio) > 0 for ratio in first_ratios)
    assert (torch.cat(first_ratios) - 1).abs().max().item() < 1e-6


def test_dropout_masks_change_the_output():
    net = ActorCritic(4, 2, NetworkConfig(dropout=0.5))
    obs = torch.randn(64, 4)
    masks = net.sample_masks(64, obs.device)
    assert masks is not None and masks.shape == (64, 2, 64)
    assert not torch.allclose(net(obs, masks)[1], net(obs)[1])
    assert (
        NetworkConfig().dropout == 0
        and ActorCritic(4, 2, NetworkConfig()).sample_masks(3, obs.device) is None
    )


def _batch(net: ActorCritic, n: int = 256) -> Batch:
    obs = torch.randn(n, 4)
    with torch.no_grad():
        logits, values = net(obs)
    actions, logprobs = sample_categorical(logits)
    zeros = torch.zeros(n)
    return Batch(obs, actions, logprobs, values, zeros, values.clone(), None)


def test_entropy_bonus_raises_entropy():
    torch.manual_seed(0)
    net = ActorCritic(4, 3, NetworkConfig(init="xavier"))
    batch = _batch(net)
    cfg = PPOConfig(ent_coef=1.0, vf_coef=0.0, update_epochs=5, lr=1e-3, anneal_lr=False)
    before = categorical_logp_entropy(net(batch.obs)[0], batch.actions)[1].mean()
    stats = PPOAgent(net, cfg).update(batch)
    after = categorical_logp_entropy(net(batch.obs)[0], batch.actions)[1].mean()
    assert after > before + 1e-3
    assert stats["entropy"] > 0


@pytest.mark.parametrize("head", ["policy", "value"])
def test_each_head_sends_gradient_into_the_shared_trunk(head):
    net = ActorCritic(4, 2, NetworkConfig())
    logits, values = net(torch.randn(16, 4))
    (logits.square().sum() if head == "policy" else values.square().sum()).backward()
    for layer in net.trunks[0]:
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    other = net.value_head if head == "policy" else net.policy_head
    assert other.weight.grad is None
    assert len(net.trunks) == 1


def test_separate_trunks_do_not_share():
    net = ActorCritic(4, 2, NetworkConfig(shared=False))
    _, values = net(torch.randn(8, 4))
    values.sum().backward()
    assert all(layer.weight.grad is None for layer in net.trunks[0])
    assert all(layer.weight.grad is not None for layer in net.trunks[1])


@pytest.mark.parametrize("rows", [100, 200_000], ids=["gumbel-max", "inverse-cdf"])
def test_fast_sampler_matches_torch_categorical(rows):
    torch.manual_seed(0)
    logits = torch.tensor([[0.3, -1.2, 2.0, 0.0]]).repeat(rows, 1)
    draws = [sample_categorical(logits) for _ in range(200_000 // rows)]
    actions = torch.cat([a for a, _ in draws])
    logprobs = torch.cat([lp for _, lp in draws])
    probs = torch.softmax(logits[0], -1)
    counts = torch.bincount(actions, minlength=4).double()
    expected = probs.double() * len(actions)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001

    ref_logits = logits[:1].expand(1000, -1)
    dist = Categorical(logits=ref_logits)
    ref_logp = dist.log_prob(actions[:1000])
    assert torch.allclose(logprobs[:1000], ref_logp, atol=1e-6)
    logp, entropy = categorical_logp_entropy(ref_logits, actions[:1000])
    assert torch.allclose(logp, ref_logp, atol=1e-6)
    assert torch.allclose(entropy, dist.entropy(), atol=1e-6)


def test_sampler_matches_on_random_logits():
    torch.manual_seed(1)
    logits = torch.randn(50, 6) * 3
    actions = torch.randint(0, 6, (50,))
    dist = Categorical(logits=logits)
    logp, entropy = categorical_logp_entropy(logits, actions)
    assert torch.allclose(logp, dist.log_prob(actions), atol=1e-5)
    assert torch.allclose(entropy, dist.entropy(), atol=1e-5)


def test_forward_follows_loaded_weights():
    """The forward pass reads cached parameter lists: loading weights must reach them."""
    torch.manual_seed(0)
    net, other = ActorCritic(4, 2, NetworkConfig()), ActorCritic(4, 2, NetworkConfig())
    obs = torch.randn(8, 4)
    net.load_state_dict(other.state_dict())
    for mine, theirs in zip(net(obs), other(obs), strict=True):
        assert torch.equal(mine, theirs)
    PPOAgent(net, PPOConfig())  # moves the parameters into the optimizer's flat buffer
    third = ActorCritic(4, 2, NetworkConfig())
    net.load_state_dict(third.state_dict())
    assert torch.equal(net(obs)[0], third(obs)[0])
    assert not torch.equal(net(obs)[0], other(obs)[0])
