"""The PPO agent: acting from the shared network, and the clipped-surrogate update."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from .config import PPOConfig
from .fused import FusedGradient, unsupported
from .memory import Batch
from .network import ActorCritic
from .optim import Adam

STAT_KEYS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "old_approx_kl",
    "approx_kl",
    "clipfrac",
    "grad_norm",
)


class PPOAgent:
    def __init__(self, net: ActorCritic, cfg: PPOConfig) -> None:
        self.net = net
        self.cfg = cfg
        self.optimizer = Adam(net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.clip_ratio = cfg.clip_ratio
        self.first_ratio: Tensor | None = None
        # Hand-derived gradients where the network allows: the same maths, and an update step
        # at batch 256 about 2-2.4x quicker than through autograd (docs/benchmarks.md).
        self.fused = FusedGradient(net) if cfg.fused and unsupported(net) is None else None

    def act(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Sample actions; returns (actions, log-probs, values, dropout masks or None).

        Call it under ``torch.inference_mode()`` (the rollout loop holds one for all steps).
        """
        net = self.net
        masks = net.sample_masks(obs.shape[0], obs.device)
        out, values = net.forward(obs, masks)  # not net(...): module-call hooks cost ~5 us
        actions, logprobs = net.dist.sample(out)
        return actions, logprobs, values, masks

    @torch.no_grad()
    def value(self, obs: Tensor) -> Tensor:
        # The bootstrap value uses the mean network: no action is taken from it.
        return self.net(obs)[1]

    def set_progress(self, fraction_left: float) -> None:
        """Linear annealing: fraction_left goes from 1 at the first update towards 0."""
        if self.cfg.anneal_lr:
            self.optimizer.lr = fraction_left * self.cfg.lr
        if self.cfg.anneal_clip:
            self.clip_ratio = fraction_left * self.cfg.clip_ratio

    @property
    def learning_rate(self) -> float:
        return self.optimizer.lr

    def losses(
        self, out: Tensor, values: Tensor, ratio: Tensor, advantages: Tensor, mb: Batch, clip: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(total loss, policy loss, value loss, entropy) of one minibatch."""
        cfg = self.cfg
        # Clipped surrogate: the pessimistic one of the two estimates.
        policy_loss = -torch.min(
            advantages * ratio, advantages * ratio.clamp(1 - clip, 1 + clip)
        ).mean()

        value_loss = (values - mb.returns).square()
        if cfg.clip_vloss:
            clipped = mb.values + (values - mb.values).clamp(-clip, clip)
            value_loss = torch.max(value_loss, (clipped - mb.returns).square())
        value_loss = 0.5 * value_loss.mean()

        entropy = self.net.dist.entropy(out).mean()
        loss = policy_loss + cfg.vf_coef * value_loss
        if cfg.ent_coef > 0:  # else it stays out of the backward pass
            # Entropy is a bonus: subtracting it rewards a policy that stays stochastic.
            loss = loss - cfg.ent_coef * entropy
        return loss, policy_loss, value_loss, entropy

    def update(self, batch: Batch) -> dict[str, float]:
        """Epochs of shuffled minibatches of clipped-surrogate PPO.

        The losses and diagnostics returned are means over the last epoch's minibatches (or
        the minibatch that hit the KL stop): recording them on every step costs a PPO update
        on a small network about a tenth of its time.
        """
        cfg, clip, dist = self.cfg, self.clip_ratio, self.net.dist
        device = batch.actions.device
        whole = cfg.num_minibatches == 1
        if whole and cfg.norm_adv:
            # The one minibatch is the whole batch in every epoch: standardise it once.
            batch = replace(batch, advantages=standardise(batch.advantages))
        totals = torch.zeros(len(STAT_KEYS), device=device)
        steps = logged = 0
        for epoch in range(cfg.update_epochs):
            if whole:
                minibatches = [batch]  # its order changes nothing
            else:
                order = torch.randperm(len(batch), device=device)
                minibatches = [batch[i] for i in order.tensor_split(cfg.num_minibatches)]
            for mb in minibatches:
                advantages = mb.advantages
                if cfg.norm_adv and not whole:
                    advantages = standardise(advantages)
                if self.fused is not None:
                    fwd = self.fused.forward(mb)
                    out, values, logratio, ratio = fwd.out, fwd.values, fwd.logratio, fwd.ratio
                else:
                    out, values = self.net(mb.obs, mb.masks)
                    logratio = dist.log_prob(out, mb.actions) - mb.logprobs
                    ratio = logratio.exp()
                if steps == 0:
                    # Kept for inspection: before any step the ratio must be exactly 1.
                    self.first_ratio = ratio.detach()

                stop = False
                if cfg.target_kl is not None:
                    # k3 estimator of KL(old || new): unbiased and never negative.
                    with torch.no_grad():
                        stop = ((ratio - 1) - logratio).mean().item() > 1.5 * cfg.target_kl
                losses = None
                if not stop:
                    if self.fused is not None:
                        self.fused.backward(fwd, mb, advantages, clip, cfg)
                    else:
                        losses = self.losses(out, values, ratio, advantages, mb, clip)
                        self.optimizer.zero_grad()
                        losses[0].backward()
                    grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                    self.optimizer.step()
                    steps += 1
                else:
                    grad_norm = torch.zeros((), device=device)

                if stop or epoch == cfg.update_epochs - 1:
                    with torch.no_grad():
                        if losses is None:
                            losses = self.losses(out, values, ratio, advantages, mb, clip)
                        _, policy_loss, value_loss, entropy = losses
                        totals += torch.stack(
                            [
                                policy_loss.detach(),
                                value_loss.detach(),
                                entropy.detach(),
                                (-logratio).mean(),  # k1 estimator, for comparison
                                ((ratio - 1) - logratio).mean(),  # k3
                                ((ratio - 1).abs() > clip).float().mean(),
                                grad_norm,
                            ]
                        )
                    logged += 1
                if stop:
                    break
            if stop:
                break

        stats = dict(zip(STAT_KEYS, (totals / max(logged, 1)).tolist(), strict=True))
        stats["explained_variance"] = explained_variance(batch.values, batch.returns)
        stats["update_steps"] = float(steps)
        stats["clip_ratio"] = clip
        return stats


def standardise(x: Tensor) -> Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if len(x) > 1 else x - x.mean()


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]; nan when the target does not vary."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)
