"""The PPO loss of every run's minibatch at once, and its gradient at the heads' outputs.

``algo.loss.ppo_loss`` and ``ppo_loss_grads`` per run, over [runs, rows] tensors: each run
has its own coefficients ([runs, 1] tensors, :class:`Coefficients`) and its own number of
rows, so means are weighted sums (``weight``: 1 on a run's rows, 0 on the padding that
evens the runs' minibatches out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..algo.loss import LossTerms
from ..nn.grad import no_grad


@dataclass
class Coefficients:
    """Each run's PPO scalars as [runs, 1] tensors (``clip_vloss`` inf: no value clipping).
    ``clips_values`` / ``has_entropy``: whether any run clips its value loss / has an entropy
    bonus; where none does, the gradient leaves that term out (each run's own would be 0),
    as a single run's does."""

    clip: Tensor
    clip_vloss: Tensor
    vf_coef: Tensor
    ent_coef: Tensor
    clips_values: bool = True
    has_entropy: bool = True

    @classmethod
    def of(cls, clips: list[float], ppos: list, device: torch.device) -> Coefficients:
        def column(values: list[float]) -> Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)

        vloss = [math.inf if p.clip_vloss is None else p.clip_vloss for p in ppos]
        return cls(
            column(clips),
            column(vloss),
            column([p.vf_coef for p in ppos]),
            column([p.ent_coef for p in ppos]),
            clips_values=any(math.isfinite(v) for v in vloss),
            has_entropy=any(p.ent_coef != 0 for p in ppos),
        )


@dataclass
class Minibatch:
    """Every run's minibatch, padded to one length: [runs, rows, ...] per field."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    returns: Tensor
    advantages: Tensor  # standardised where the run asks for it
    masks: Tensor | None
    weight: Tensor  # 1 on a run's rows, 0 on padding
    rows: Tensor  # [runs, 1]: each run's number of rows
    _share: Tensor | None = None

    @property
    def share(self) -> Tensor:
        """Each row's share of its run's mean [runs, rows] (0 on padding); kept, as a whole
        batch serves every epoch."""
        if self._share is None:
            self._share = self.weight / self.rows
        return self._share


def mean(x: Tensor, mb: Minibatch) -> Tensor:
    """Each run's mean over its own rows [runs]."""
    return (x * mb.weight).sum(1) / mb.rows.squeeze(1)


def ppo_loss(
    ratio: Tensor, values: Tensor, entropy: Tensor, mb: Minibatch, c: Coefficients
) -> LossTerms:
    """Clipped surrogate + vf_coef x value loss - ent_coef x entropy, per run [runs];
    ``total`` is their sum (each run's gradient is its own loss's)."""
    adv = mb.advantages
    surrogate = torch.min(adv * ratio, adv * ratio.clamp(1 - c.clip, 1 + c.clip))
    policy = -mean(surrogate, mb)
    error = (values - mb.returns).square()
    moved = (values - mb.values).clamp(-c.clip_vloss, c.clip_vloss)
    clipped = torch.max(error, (mb.values + moved - mb.returns).square())
    error = torch.where(c.clip_vloss.isinf(), error, clipped)  # unclipped runs: as they are
    value = 0.5 * mean(error, mb)
    ent = mean(entropy, mb)
    per_run = policy + c.vf_coef.squeeze(1) * value - c.ent_coef.squeeze(1) * ent
    return LossTerms(per_run.sum(), policy, value, ent)


@no_grad
def ppo_loss_grads(
    ratio: Tensor, values: Tensor, mb: Minibatch, c: Coefficients
) -> tuple[Tensor, Tensor]:
    """d(total)/d(each row's action log-prob) and d(total)/d(each row's value), [runs, rows]
    (``algo.loss.ppo_loss_grads`` per run; 0 on padding)."""
    adv, share = mb.advantages, mb.share
    bound = torch.where(adv > 0, ratio > 1 + c.clip, ratio < 1 - c.clip)
    dlogp = (adv * ratio).masked_fill_(bound, 0.0).mul_(share).neg_()
    dv = values - mb.returns
    if c.clips_values:
        delta = values - mb.values
        clipped = mb.values + delta.clamp(-c.clip_vloss, c.clip_vloss) - mb.returns
        dv = torch.where((clipped.square() > dv.square()) & (delta.abs() > c.clip_vloss), 0.0, dv)
    return dlogp, dv.mul_(c.vf_coef * share)
