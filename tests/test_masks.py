"""Action masking: invalid actions get zero probability when acting and when learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.gradient import Autograd, Fused
from sharedppo.algo.loss import ppo_loss
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.run.session import train

MASKED_ID = "SharedPPOTest/Masked-v0"
BAD_MASK_ID = "SharedPPOTest/BadMask-v0"


class MaskedBandit(gym.Env):
    """Pick the target shown one-hot in the observation (+1). Each step only the target and
    one other action are valid; an invalid action costs -100 and ends the episode."""

    observation_space = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(4)
    invalid_taken = 0

    def __init__(self, mask_shape: tuple[int, ...] = (4,)) -> None:
        self.mask_shape = mask_shape

    def _draw(self) -> tuple[np.ndarray, dict]:
        self.target = int(self.np_random.integers(4))
        other = int((self.target + self.np_random.integers(1, 4)) % 4)
        self.mask = np.zeros(4, np.int8)
        self.mask[[self.target, other]] = 1
        obs = np.zeros(4, np.float32)
        obs[self.target] = 1.0
        return obs, {"action_mask": self.mask.reshape(self.mask_shape)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._draw()

    def step(self, action):
        if not self.mask[int(action)]:
            MaskedBandit.invalid_taken += 1
            obs, info = self._draw()
            return obs, -100.0, True, False, info
        reward = 1.0 if int(action) == self.target else 0.0
        self.t += 1
        obs, info = self._draw()
        return obs, reward, False, self.t >= 10, info


for env_id, kwargs in ((MASKED_ID, {}), (BAD_MASK_ID, {"mask_shape": (2, 2)})):
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=MaskedBandit, kwargs=kwargs)


@pytest.mark.parametrize("fused", [True, False])
def test_masked_agent_never_takes_an_invalid_action_and_learns(
    cfg_factory, tmp_path, fused, first_ratios
):
    MaskedBandit.invalid_taken = 0
    cfg = cfg_factory(
        f"env.id={MASKED_ID}",
        "env.vectorization_mode=sync",
        f"ppo.fused={str(fused).lower()}",
        "ppo.ent_coef=0.01",
        "ppo.gamma=0.5",  # a contextual bandit: little credit to assign across steps
        "network.dropout=0.1",
        "total_steps=16384",
        "checkpoint.every_steps=null",
    )
    result = train(cfg, tmp_path)
    assert MaskedBandit.invalid_taken == 0
    assert isinstance(result.agent.gradient, Fused) == fused
    assert (torch.cat(first_ratios) - 1).abs().max().item() < 1e-6
    # Random valid actions score 5 of 10; learning picks the target.
    assert result.mean_return >= 9.0, result.mean_return


def test_fused_gradient_matches_autograd_with_masks():
    torch.manual_seed(0)
    net = ActorCritic(5, gym.spaces.Discrete(4), NetworkConfig(width=16))
    cfg = PPOConfig(ent_coef=0.05)
    agent = PPOAgent(net, cfg)
    obs = torch.randn(64, 5)
    valid = torch.rand(64, 4) < 0.6
    valid[torch.arange(64), torch.randint(0, 4, (64,))] = True
    with torch.no_grad():
        actions, logprobs, values, masks = agent.act(obs, valid)
        assert valid[torch.arange(64), actions].all()
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    mb = Batch(obs, actions, logprobs, values, torch.randn(64), values + 1, masks, valid)
    grads = []
    for gradient in (Autograd(net, agent.optimizer, cfg), Fused(net, agent.optimizer, cfg)):
        agent.optimizer.flat_grad.normal_()
        fwd = gradient.forward(mb)
        terms = gradient.backward(fwd, mb, mb.advantages, 0.2)
        grads.append(agent.optimizer.flat_grad.clone())
        if terms is None:
            entropy = net.dist.entropy(fwd.out)
            terms = ppo_loss(fwd, entropy, mb, mb.advantages, cfg, 0.2)
        assert torch.isfinite(terms.entropy)
        # Entropy over the valid actions only: at most log(number valid).
        assert terms.entropy <= torch.log(valid.sum(-1).float()).mean() + 1e-5
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_a_mask_of_the_wrong_shape_is_one_line_before_training(cfg_factory, tmp_path):
    cfg = cfg_factory(f"env.id={BAD_MASK_ID}", "env.vectorization_mode=sync")
    with pytest.raises(ConfigError, match=r"action_mask'\] has shape \(8, 2, 2\)") as err:
        train(cfg, tmp_path)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("events.*"))
