"""The PPO agent: acting from the shared network, and the clipped-surrogate update."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..config import PPOConfig
from ..nn.act import act, run_network
from ..nn.actor_critic import ActorCritic
from ..nn.heads import GaussianDraws
from ..nn.precision import Precision
from .batch import Batch
from .gradient import Autograd, make_gradient
from .loss import LossTerms, Scored, ppo_loss
from .optim import Adam
from .reduce import (
    LOCAL,
    Reducer,
    average_across,
    minibatch_sums,
    share_gradient,
    standardise_across,
)


class PPOAgent:
    def __init__(
        self,
        net: ActorCritic,
        cfg: PPOConfig,
        precision: Precision | None = None,
        reducer: Reducer = LOCAL,
    ) -> None:
        """``reducer``: the processes of a data-parallel run (``algo/reduce.py``); with more
        than one, every update is one PPO update on the union of their batches."""
        self.net = net
        self.reducer = reducer
        self.cfg = cfg
        # How every forward pass of the network runs, acting and learning alike.
        self.precision = precision or Precision()
        self.optimizer = Adam(net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        # The flat buffer holds the parameters: a later net.to(...) must rebind it.
        net.after_move(self.optimizer.rebind)
        self.gradient: Autograd = make_gradient(net, self.optimizer, cfg, self.precision)
        self.clip_ratio = cfg.clip_ratio

    def act(
        self,
        obs: Tensor,
        action_mask: Tensor | None = None,
        draws: GaussianDraws | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """Sample actions (only valid ones, given ``action_mask``); returns (actions,
        log-probs, values, dropout masks or None). With ``draws``, a Gaussian policy's noise
        drawn for the rollout, the actions come from it and the log-probs are None
        (``draws.log_probs()`` has the whole rollout's).

        Call it under ``torch.inference_mode()`` (the rollout loop holds one for all steps).
        """
        net = self.net
        masks = net.sample_masks(obs.shape[0], obs.device)
        actions, logprobs, values, _ = act(
            net, obs, masks, action_mask, draws=draws, run=self.precision.run
        )
        return actions, logprobs, values, masks

    def act_recurrent(
        self,
        obs: Tensor,
        action_mask: Tensor | None,
        state: Tensor,
        starts: Tensor,
        draws: GaussianDraws | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None, Tensor]:
        """:meth:`act` for a recurrent network: ``state`` is zeroed where ``starts`` is 1,
        then carried one step; returns (actions, log-probs, values, masks, new state), the
        log-probs None with ``draws`` as in :meth:`act`."""
        net = self.net
        masks = net.sample_masks(obs.shape[0], obs.device)
        actions, logprobs, values, state = act(
            net, obs, masks, action_mask, state, starts, draws=draws, run=self.precision.run
        )
        return actions, logprobs, values, masks, state

    @torch.no_grad()
    def value(
        self, obs: Tensor, state: Tensor | None = None, starts: Tensor | None = None
    ) -> Tensor:
        """V(obs) from the mean network (no dropout masks: no action is taken from it); a
        recurrent network's from ``state`` carried one step, as :meth:`act_recurrent` does."""
        return run_network(self.net, obs, None, state, starts, self.precision.run)[1]

    def set_progress(self, fraction_left: float) -> None:
        """Linear annealing: fraction_left goes from 1 at the first update towards 0."""
        if self.cfg.anneal_lr:
            self.optimizer.lr = fraction_left * self.cfg.lr
        if self.cfg.anneal_clip:
            self.clip_ratio = fraction_left * self.cfg.clip_ratio

    @property
    def learning_rate(self) -> float:
        return self.optimizer.lr

    def snapshot(self, into: Tensor | None = None) -> Tensor:
        """The network's weights as they are now, for :meth:`restore` (the rollback of an
        update that made them non-finite); ``into``, an earlier snapshot, is overwritten."""
        return self.optimizer.snapshot(into)

    def restore(self, snapshot: Tensor) -> None:
        self.optimizer.restore(snapshot)

    def weights_finite(self) -> bool:
        return self.optimizer.params_finite()

    def update(self, batch: Batch) -> dict[str, float]:
        """Epochs of shuffled minibatches of clipped-surrogate PPO: of rows, or of whole env
        sequences for a recurrent network (``batch.sequence``).

        Returns stats by name (the logger chooses their tags). The losses and diagnostics
        are means over the last epoch's minibatches (or the minibatch that hit the KL stop):
        recording them on every step costs a PPO update on a small network about a tenth of
        its time.
        """
        with torch.set_grad_enabled(self.gradient.records_graph):
            return self._update(batch)

    def _update(self, batch: Batch) -> dict[str, float]:
        cfg, clip = self.cfg, self.clip_ratio
        device = batch.actions.device
        self.optimizer.check_bound()
        whole = cfg.num_minibatches == 1
        if whole and cfg.norm_adv:
            # The one minibatch is the whole batch in every epoch: standardise it once.
            batch = replace(batch, advantages=self._standardise(batch.advantages))
        sums: dict[str, Tensor] = {}
        steps = logged = 0
        stop = False
        for epoch in range(cfg.update_epochs):
            if whole:
                minibatches = [batch]  # its order changes nothing
            elif batch.sequence is not None:
                order = torch.randperm(batch.sequence.num_envs, device=device)
                groups = order.tensor_split(cfg.num_minibatches)
                minibatches = [batch.sequence.select(envs).batch() for envs in groups]
            else:
                # Shuffled once, then cut: the same minibatches as indexing each with its part
                # of the permutation, in one gather per field instead of one per minibatch.
                order = torch.randperm(len(batch), device=device)
                minibatches = batch[order].chunks(cfg.num_minibatches)
            for mb in minibatches:
                fwd = self.gradient.forward(mb)
                advantages, k3, rows = self._minibatch(mb, fwd, whole)
                if k3 is not None:
                    stop = k3 > 1.5 * cfg.target_kl
                if stop:
                    terms, grad_norm = None, torch.zeros((), device=device)
                else:
                    terms = self.gradient.backward(fwd, mb, advantages, clip)
                    if rows is not None:  # before unscaling: one overflow verdict
                        share_gradient(self.optimizer.flat_grad, len(mb), rows, self.reducer)
                    if self.gradient.unscale():
                        grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                        self.optimizer.step()
                        steps += 1
                    else:  # an fp16 overflow: no step, and no infinite norm in the logs
                        grad_norm = torch.zeros((), device=device)
                if stop or epoch == cfg.update_epochs - 1:
                    for k, v in self._diagnostics(fwd, terms, mb, advantages, grad_norm).items():
                        sums[k] = sums[k] + v if k in sums else v
                    logged += 1
                if stop:
                    break
            if stop:
                break

        means = self._average(torch.stack(list(sums.values())) / max(logged, 1)).tolist()
        stats = dict(zip(sums, means, strict=True))
        stats["explained_variance"] = explained_variance(batch.values, batch.returns)
        stats["update_steps"] = float(steps)
        stats["clip_ratio"] = clip
        return stats

    def _standardise(self, x: Tensor) -> Tensor:
        if self.reducer.world_size == 1:
            return standardise(x)
        return standardise_across(x, self.reducer)

    def _minibatch(
        self, mb: Batch, fwd: Scored, whole: bool
    ) -> tuple[Tensor, float | None, Tensor | None]:
        """The minibatch's advantages as the loss takes them, its k3 estimate of KL(old ||
        new) (unbiased, never negative; None without ``ppo.target_kl``) and, across ranks,
        the rows of every rank's minibatch (None for one process): one all-reduce for all."""
        cfg, advantages = self.cfg, mb.advantages
        norm = cfg.norm_adv and not whole
        with torch.no_grad():
            k3 = None if cfg.target_kl is None else (fwd.ratio - 1) - fwd.logratio
        if self.reducer.world_size == 1:
            kl = None if k3 is None else k3.mean().item()
            return (standardise(advantages) if norm else advantages), kl, None
        sums = minibatch_sums(advantages, k3, self.reducer)
        return (sums.standardise(advantages) if norm else advantages), sums.kl, sums.rows

    def _average(self, x: Tensor) -> Tensor:
        return x if self.reducer.world_size == 1 else average_across(x, self.reducer)

    @torch.no_grad()
    def _diagnostics(
        self,
        fwd: Scored,
        terms: LossTerms | None,
        mb: Batch,
        advantages: Tensor,
        grad_norm: Tensor,
    ) -> dict[str, Tensor]:
        if terms is None:
            entropy = self.net.dist.entropy(fwd.out)
            terms = ppo_loss(fwd, entropy, mb, advantages, self.cfg, self.clip_ratio)
        ratio, logratio = fwd.ratio.detach(), fwd.logratio.detach()
        return {
            "policy_loss": terms.policy.detach(),
            "value_loss": terms.value.detach(),
            "entropy": terms.entropy.detach(),
            "old_approx_kl": (-logratio).mean(),  # k1 estimator, for comparison
            "approx_kl": ((ratio - 1) - logratio).mean(),  # k3
            "clipfrac": ((ratio - 1).abs() > self.clip_ratio).float().mean(),
            "grad_norm": grad_norm,
        }


def standardise(x: Tensor) -> Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if len(x) > 1 else x - x.mean()


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]; nan when the target does not vary."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)
