"""The PPO loss of one minibatch, and its gradient at the heads' outputs.

``ppo_loss`` is the definition: the autograd path differentiates it, the diagnostics are read
from it. ``ppo_loss_grads`` is its derivative with respect to each row's action log-prob and
value, which the hand-derived path (``gradient.Fused``) feeds to the policy head and the
trunk; ``tests/test_fused.py`` checks the two against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import PPOConfig
from ..nn.grad import no_grad
from .batch import Batch


@dataclass
class Scored:
    """A minibatch through the current network: what the loss and its gradient read."""

    out: Tensor  # policy head output: logits, or the Gaussian mean
    values: Tensor
    logratio: Tensor  # log pi_new(a) - log pi_old(a)
    ratio: Tensor


@dataclass
class LossTerms:
    total: Tensor
    policy: Tensor
    value: Tensor
    entropy: Tensor


def ppo_loss(
    fwd: Scored, entropy: Tensor, mb: Batch, advantages: Tensor, cfg: PPOConfig, clip: float
) -> LossTerms:
    """Clipped surrogate + vf_coef x value loss - ent_coef x entropy (``entropy`` per row)."""
    ratio = fwd.ratio
    # Clipped surrogate: the pessimistic one of the two estimates.
    policy_loss = -torch.min(advantages * ratio, advantages * ratio.clamp(1 - clip, 1 + clip))
    policy_loss = policy_loss.mean()

    value_loss = (fwd.values - mb.returns).square()
    if cfg.clip_vloss is not None:
        # The value may move at most clip_vloss from the rollout's estimate (SB3, CleanRL).
        moved = (fwd.values - mb.values).clamp(-cfg.clip_vloss, cfg.clip_vloss)
        value_loss = torch.max(value_loss, (mb.values + moved - mb.returns).square())
    value_loss = 0.5 * value_loss.mean()

    entropy = entropy.mean()
    total = policy_loss + cfg.vf_coef * value_loss
    if cfg.ent_coef > 0:  # else it stays out of the backward pass
        # Entropy is a bonus: subtracting it rewards a policy that stays stochastic.
        total = total - cfg.ent_coef * entropy
    return LossTerms(total, policy_loss, value_loss, entropy)


@no_grad
def ppo_loss_grads(
    fwd: Scored, mb: Batch, advantages: Tensor, cfg: PPOConfig, clip: float
) -> tuple[Tensor, Tensor]:
    """d(total)/d(log-prob of each row's action) and d(total)/d(each row's value).

    The entropy term's gradient depends on the head, which adds it (``grad_out``).
    """
    ratio, n = fwd.ratio, fwd.ratio.shape[0]
    # No gradient where the clipped branch is the smaller one and the clip is active: ratio
    # above 1 + clip with A > 0, or below 1 - clip with A < 0. d ratio / d logp = ratio.
    bound = torch.where(advantages > 0, ratio > 1 + clip, ratio < 1 - clip)
    dlogp = torch.where(bound, 0.0, advantages * ratio).mul_(-1.0 / n)

    dv = fwd.values - mb.returns
    if cfg.clip_vloss is not None:
        # The larger of the two errors counts; the clipped one has no gradient where the
        # clip is active.
        delta = fwd.values - mb.values
        clipped = mb.values + delta.clamp(-cfg.clip_vloss, cfg.clip_vloss) - mb.returns
        dv = torch.where((clipped.square() > dv.square()) & (delta.abs() > cfg.clip_vloss), 0.0, dv)
    return dlogp, dv.mul_(cfg.vf_coef / n)
