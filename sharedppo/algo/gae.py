"""Generalised advantage estimation: a pure function of a rollout's [T, N] tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over [T, N] float tensors.

    ``next_values[t]`` is V of the observation step t reached (the final observation where an
    episode ended). Termination removes the bootstrap; truncation keeps it, because the state
    was cut by a clock rather than ended. Either one stops the advantage from flowing back
    across the episode boundary.

    Returns (advantages, returns) with returns = advantages + values.
    """
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    carry = gamma * lam * (1.0 - dones)
    advantages = torch.empty_like(deltas)
    # On the CPU the backward loop runs on numpy views of the same memory: per step it is two
    # ops on a row of a few envs, where numpy's call overhead is a fraction of torch's.
    cpu = deltas.device.type == "cpu"
    d, c, a = (x.numpy() if cpu else x for x in (deltas, carry, advantages))
    last = 0.0 * d[0]
    for t in range(len(d) - 1, -1, -1):
        last = d[t] + c[t] * last
        a[t] = last
    return advantages, advantages + values
