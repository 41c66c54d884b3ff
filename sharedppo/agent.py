"""The PPO agent: acting from the shared network, and the clipped-surrogate update."""

from __future__ import annotations

import torch
from torch import Tensor

from .config import PPOConfig
from .memory import Batch
from .network import ActorCritic, categorical_logp_entropy, sample_categorical
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

    def act(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Sample actions; returns (actions, log-probs, values, dropout masks or None).

        Call it under ``torch.inference_mode()`` (the rollout loop holds one for all steps).
        """
        masks = self.net.sample_masks(obs.shape[0], obs.device)
        logits, values = self.net(obs, masks)
        actions, logprobs = sample_categorical(logits)
        return actions, logprobs, values, masks

    @torch.no_grad()
    def value(self, obs: Tensor) -> Tensor:
        # The bootstrap value uses the mean network: no action is taken from it.
        return self.net(obs)[1]

    @torch.no_grad()
    def greedy(self, obs: Tensor) -> Tensor:
        return self.net(obs)[0].argmax(-1)

    def set_progress(self, fraction_left: float) -> None:
        """Linear annealing: fraction_left goes from 1 at the first update towards 0."""
        if self.cfg.anneal_lr:
            self.optimizer.lr = fraction_left * self.cfg.lr
        if self.cfg.anneal_clip:
            self.clip_ratio = fraction_left * self.cfg.clip_ratio

    @property
    def learning_rate(self) -> float:
        return self.optimizer.lr

    def update(self, batch: Batch) -> dict[str, float]:
        """Epochs of shuffled minibatches; returns losses averaged over the steps taken."""
        cfg, clip = self.cfg, self.clip_ratio
        device = batch.actions.device
        totals = torch.zeros(len(STAT_KEYS), device=device)
        steps = 0
        stop = False
        for _epoch in range(cfg.update_epochs):
            if cfg.num_minibatches == 1:
                # One minibatch is the whole batch: its order changes nothing.
                minibatches = [batch]
            else:
                order = torch.randperm(len(batch), device=device)
                minibatches = [batch[i] for i in order.tensor_split(cfg.num_minibatches)]
            for mb in minibatches:
                logits, values = self.net(mb.obs, mb.masks)
                logprobs, entropy = categorical_logp_entropy(logits, mb.actions)
                logratio = logprobs - mb.logprobs
                ratio = logratio.exp()
                if steps == 0:
                    # Kept for inspection: before any step the ratio must be exactly 1.
                    self.first_ratio = ratio.detach()

                advantages = mb.advantages
                if cfg.norm_adv and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                policy_loss = torch.max(
                    -advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)
                ).mean()

                value_loss = (values - mb.returns).square()
                if cfg.clip_vloss:
                    clipped = mb.values + (values - mb.values).clamp(-clip, clip)
                    value_loss = torch.max(value_loss, (clipped - mb.returns).square())
                value_loss = 0.5 * value_loss.mean()

                entropy = entropy.mean()
                # Entropy is a bonus: subtracting it rewards keeping the policy stochastic.
                loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss

                with torch.no_grad():
                    # k1 and k3 estimators of KL(old || new); k3 is unbiased and never < 0.
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfrac = ((ratio - 1).abs() > clip).float().mean()
                if cfg.target_kl is not None and approx_kl.item() > 1.5 * cfg.target_kl:
                    stop = True
                    break

                self.optimizer.zero_grad()
                loss.backward()
                grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                self.optimizer.step()

                parts = (policy_loss, value_loss, entropy, old_approx_kl, approx_kl, clipfrac)
                totals += torch.stack([*(p.detach() for p in parts), grad_norm])
                steps += 1
            if stop:
                break

        stats = dict(zip(STAT_KEYS, (totals / max(steps, 1)).tolist(), strict=True))
        stats["explained_variance"] = explained_variance(batch.values, batch.returns)
        stats["update_steps"] = float(steps)
        stats["clip_ratio"] = clip
        return stats


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]; nan when the target does not vary."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)
