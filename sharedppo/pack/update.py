"""Every run's PPO update at once: ``PPOAgent.update`` over a leading run axis.

Each run keeps its own schedule of the update: its rows (a rollout's valid transitions, a
number that differs between runs), its shuffle (drawn from its own generator, as its own
agent draws it), its advantage standardisation, its KL early stop (a run that stops takes no
further step in this update while the others go on) and its learning rate, clip and
coefficients. One optimizer step (``Stacked.step``) serves every run that steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..algo.agent import PPOAgent, explained_variance, standardise
from ..algo.batch import Batch
from ..nn.grad import no_grad
from . import forward as F
from .loss import Coefficients, Minibatch, mean, ppo_loss, ppo_loss_grads
from .stacked import Stacked

_STATS = ("policy_loss", "value_loss", "entropy", "old_approx_kl", "approx_kl", "clipfrac")


def _pad(parts: list[Tensor], length: int) -> Tensor:
    out = parts[0].new_zeros((len(parts), length, *parts[0].shape[1:]))
    for r, x in enumerate(parts):
        out[r, : len(x)] = x
    return out


class PackUpdate:
    def __init__(
        self,
        shape: F.Shape,
        stacked: Stacked,
        agents: list[PPOAgent],
        generators: list[torch.Generator],
        fused: bool,
    ) -> None:
        self.shape, self.stacked, self.agents = shape, stacked, agents
        self.generators, self.fused = generators, fused
        self.ppos = [a.cfg for a in agents]
        first = self.ppos[0]
        self.epochs, self.num_minibatches = first.update_epochs, first.num_minibatches
        self.dropout = any(a.net.dropout > 0 for a in agents)

    def _stack(self, batches: list[Batch]) -> tuple[Minibatch, list[int]]:
        """Every run's whole batch, padded to the longest ([runs, rows, ...])."""
        whole = self.num_minibatches == 1
        sizes = [len(b) for b in batches]
        n = max(sizes)
        advantages = [
            standardise(b.advantages) if whole and ppo.norm_adv else b.advantages
            for b, ppo in zip(batches, self.ppos, strict=True)
        ]
        masks = None
        if self.dropout:
            first = next(b.masks for b in batches if b.masks is not None)
            masks = torch.ones((len(batches), n, *first.shape[1:]), device=first.device)
            for r, b in enumerate(batches):
                if b.masks is not None:
                    masks[r, : len(b)] = b.masks
        weight = _pad([torch.ones(s, device=batches[0].actions.device) for s in sizes], n)
        rows = torch.tensor(sizes, dtype=weight.dtype, device=weight.device).unsqueeze(1)
        return Minibatch(
            _pad([b.obs for b in batches], n),
            _pad([b.actions for b in batches], n),
            _pad([b.logprobs for b in batches], n),
            _pad([b.values for b in batches], n),
            _pad([b.returns for b in batches], n),
            _pad(advantages, n),
            masks,
            weight,
            rows,
        ), sizes

    def _minibatches(self, full: Minibatch, sizes: list[int]) -> list[Minibatch]:
        """This epoch's minibatches: each run's rows shuffled by its own generator, then cut
        as ``Batch.chunks`` cuts them; advantages standardised per run where it asks."""
        if self.num_minibatches == 1:
            return [full]  # its order changes nothing, and no shuffle is drawn
        device = full.actions.device
        orders = [
            torch.randperm(n, generator=g, device=device).tensor_split(self.num_minibatches)
            for n, g in zip(sizes, self.generators, strict=True)
        ]
        runs = torch.arange(len(sizes), device=device).unsqueeze(1)
        out = []
        for k in range(self.num_minibatches):
            parts = [order[k] for order in orders]
            index = _pad(parts, max(len(p) for p in parts))
            weight = _pad([torch.ones(len(p), device=device) for p in parts], index.shape[1])
            rows = torch.tensor([len(p) for p in parts], device=device).unsqueeze(1).float()
            mb = Minibatch(
                *(None if x is None else x[runs, index] for x in _fields(full)),
                weight,
                rows,
            )
            mb.advantages = self._standardise(mb)
            out.append(mb)
        return out

    def _standardise(self, mb: Minibatch) -> Tensor:
        adv, n = mb.advantages, mb.rows
        centred = adv - mean(adv, mb).unsqueeze(1)
        var = (centred.square() * mb.weight).sum(1, keepdim=True) / (n - 1).clamp(min=1)
        scaled = torch.where(n > 1, centred / (var.sqrt() + 1e-8), centred)
        norm = torch.tensor([p.norm_adv for p in self.ppos], device=adv.device).unsqueeze(1)
        return torch.where(norm, scaled, adv)

    def run(self, batches: list[Batch], active: list[bool]) -> list[dict[str, float]]:
        """One update of every run marked ``active``; returns each run's stats (as
        ``PPOAgent.update`` returns them; empty for the others)."""
        with torch.set_grad_enabled(not self.fused):  # off once for the fused gradient
            return self._run(batches, active)

    def _run(self, batches: list[Batch], active: list[bool]) -> list[dict[str, float]]:
        full, sizes = self._stack(batches)
        device = full.actions.device
        coef = Coefficients.of([a.clip_ratio for a in self.agents], self.ppos, device)
        max_norm = torch.tensor([p.max_grad_norm for p in self.ppos], device=device)
        kl = [p.target_kl for p in self.ppos]
        runs = len(self.agents)
        stopped = [not on for on in active]
        steps, logged = [0] * runs, [0] * runs
        sums = torch.zeros((len(_STATS) + 1, runs), device=device)
        for epoch in range(self.epochs):
            for mb in self._minibatches(full, sizes):
                leaf, ratio, logratio, values, scores = self._forward(mb)
                approx = None
                stop_now = [False] * runs
                if any(k is not None for k in kl):
                    approx = mean((ratio.detach() - 1) - logratio.detach(), mb)
                    k3 = approx.tolist()
                    stop_now = [
                        not s and k is not None and k3[r] > 1.5 * k
                        for r, (s, k) in enumerate(zip(stopped, kl, strict=True))
                    ]
                stepping = [not s and not now for s, now in zip(stopped, stop_now, strict=True)]
                norms = torch.zeros(runs, device=device)
                if any(stepping):
                    self._gradient(leaf, mb, ratio, values, scores, coef)
                    norms = self.stacked.clip_grad_norm(max_norm)
                    self.stacked.step(stepping)
                    steps = [n + s for n, s in zip(steps, stepping, strict=True)]
                log = [
                    not s and (now or epoch == self.epochs - 1)
                    for s, now in zip(stopped, stop_now, strict=True)
                ]
                if any(log):
                    if approx is None:
                        approx = mean((ratio.detach() - 1) - logratio.detach(), mb)
                    stats = self._diagnostics(mb, ratio, logratio, values, scores, coef, approx)
                    norms = torch.where(torch.tensor(stop_now, device=device), 0.0, norms)
                    weight = torch.tensor(log, dtype=sums.dtype, device=device)
                    sums += torch.cat((stats, norms.unsqueeze(0))) * weight
                    logged = [n + g for n, g in zip(logged, log, strict=True)]
                stopped = [s or now for s, now in zip(stopped, stop_now, strict=True)]
            if all(stopped):
                break
        return self._stats(sums, logged, steps, batches, active)

    def _stats(
        self,
        sums: Tensor,
        logged: list[int],
        steps: list[int],
        batches: list[Batch],
        active: list[bool],
    ) -> list[dict[str, float]]:
        means = (sums / torch.tensor(logged, device=sums.device).clamp(min=1)).t().tolist()
        out: list[dict[str, float]] = []
        for r, agent in enumerate(self.agents):
            if not active[r]:
                out.append({})
                continue
            stats = dict(zip((*_STATS, "grad_norm"), means[r], strict=True))
            stats["explained_variance"] = explained_variance(batches[r].values, batches[r].returns)
            stats["update_steps"] = float(steps[r])
            stats["clip_ratio"] = agent.clip_ratio
            out.append(stats)
        return out

    def _log_std(self, p: dict[str, Tensor]) -> Tensor | None:
        return p["dist.log_std"] if self.shape.gaussian else None

    def _forward(self, mb: Minibatch) -> tuple:
        """(the differentiable leaf or None, ratio, log-ratio, values, head scores)."""
        leaf = None
        if self.fused:
            p = self.stacked.weights()
        else:
            leaf = self.stacked.flat.detach().requires_grad_()
            p = self.stacked.weights(leaf)
        rec = F.forward(self.shape, p, mb.obs, mb.masks, record=self.fused)
        scores, logp = F.scores(self.shape.gaussian, rec.out, mb.actions, self._log_std(p))
        logratio = logp - mb.logprobs
        self._rec, self._p = rec, p
        return leaf, logratio.exp(), logratio, rec.values, scores

    def _gradient(
        self,
        leaf: Tensor | None,
        mb: Minibatch,
        ratio: Tensor,
        values: Tensor,
        scores: Tensor,
        coef: Coefficients,
    ) -> None:
        """Every run's minibatch gradient into the stacked gradient rows."""
        stacked, gaussian = self.stacked, self.shape.gaussian
        if leaf is not None:
            entropy = F.entropy(gaussian, scores, self._log_std(self._p))
            ppo_loss(ratio, values, entropy, mb, coef).total.backward()
            stacked.grad.copy_(leaf.grad)
            return
        dlogp, dvalues = ppo_loss_grads(ratio, values, mb, coef)
        g = stacked.views()
        ent_weight = coef.ent_coef * mb.share if coef.has_entropy else None
        dout = F.grad_out(
            gaussian,
            scores,
            mb.actions,
            dlogp,
            ent_weight,
            coef.ent_coef,
            self._log_std(self._p),
            g.get("dist.log_std"),
        )
        F.backward(self.shape, self._p, g, self._rec, dout, dvalues)

    @no_grad
    def _diagnostics(
        self,
        mb: Minibatch,
        ratio: Tensor,
        logratio: Tensor,
        values: Tensor,
        scores: Tensor,
        coef: Coefficients,
        approx: Tensor,
    ) -> Tensor:
        """[stats, runs]: the loss terms and the ratio's diagnostics of this minibatch."""
        ratio, logratio, values = ratio.detach(), logratio.detach(), values.detach()
        entropy = F.entropy(self.shape.gaussian, scores.detach(), self._log_std(self._p))
        terms = ppo_loss(ratio, values, entropy.detach(), mb, coef)
        clipfrac = mean(((ratio - 1).abs() > coef.clip).float(), mb)
        parts = (terms.policy, terms.value, terms.entropy, mean(-logratio, mb), approx, clipfrac)
        return torch.stack([x.detach() for x in parts])


def _fields(mb: Minibatch) -> list[Tensor | None]:
    return [mb.obs, mb.actions, mb.logprobs, mb.values, mb.returns, mb.advantages, mb.masks]
