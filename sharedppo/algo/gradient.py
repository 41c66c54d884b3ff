"""Two ways to the same minibatch gradient, chosen once when the agent is built.

``Autograd`` differentiates ``loss.ppo_loss`` through torch's autograd and works for every
network. ``Fused`` computes the same gradient by hand-derived backward passes (the loss's
``ppo_loss_grads``, the head's ``grad_out``, the network's ``backward``), written straight
into the optimizer's flat buffer. At PPO's usual sizes (a few hundred rows, 64-unit layers) an
update step is mostly per-op overhead: with autograd a step (forward, backward, clipping,
Adam) dispatches about 120 ops and builds and walks a graph; fused it takes about 65 ops and
no graph, and a step at batch 256 is 2-2.4x quicker (docs/benchmarks.md).

Fused is used only for networks on its allow-list (each network key's ``fused=`` in the
schema): a network option it does not know (a layer norm, say) falls back to autograd instead
of getting a silently wrong gradient.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass

import torch

from ..config import ANY, PPOConfig, fused_allowed
from ..nn.actor_critic import ActorCritic, Recorded
from ..nn.grad import no_grad
from ..nn.heads import Categorical, Gaussian, mask_logits
from ..nn.precision import Precision
from .batch import Batch
from .loss import LossTerms, Scored, ppo_loss, ppo_loss_grads
from .optim import Adam

# Network key -> the values the hand-derived backward handles, or ANY for a key it is
# indifferent to (sizes, masks, starting values, layout). Any other key: autograd.
FUSED_ALLOWED = fused_allowed()
FUSED_HEADS = (Categorical, Gaussian)


def fused_unsupported(net: ActorCritic, precision: str = "fp32") -> str | None:
    """Why the fused gradient cannot serve this network at this precision, or None when it
    can."""
    if precision != "fp32":
        return f"precision={precision} (the hand-derived gradient is fp32 maths)"
    if net.encoders is not None:
        return "Dict observations (per-key encoders)"
    cfg = net.cfg
    options = asdict(cfg) if is_dataclass(cfg) else dict(vars(cfg))
    for key, value in options.items():
        allowed = FUSED_ALLOWED.get(key)
        if allowed is None:
            return f"network.{key} is not on the fused gradient's allow-list"
        if allowed is not ANY and value not in allowed:
            return f"network.{key}={value}"
    if type(net.dist) not in FUSED_HEADS:
        return f"{type(net.dist).__name__} action head"
    return None


class FusedScored(Scored):
    """Scored, plus what the hand-derived backward pass needs."""

    def __init__(self, rec: Recorded, scores: torch.Tensor, logratio: torch.Tensor) -> None:
        super().__init__(rec.out, rec.values, logratio, logratio.exp())
        self.rec = rec
        self.scores = scores


class Autograd:
    # Whether its forward records a graph: the update turns gradients off for one that does
    # not (nn.grad.no_grad then skips torch's context in every call of the step).
    records_graph = True

    def __init__(
        self, net: ActorCritic, optimizer: Adam, cfg: PPOConfig, precision: Precision | None = None
    ) -> None:
        self.net, self.optimizer, self.cfg = net, optimizer, cfg
        self.precision = precision or Precision()

    def forward(self, mb: Batch) -> Scored:
        seq, run = mb.sequence, self.precision.run
        if seq is None:
            out, values = run(self.net, mb.obs, mb.masks)
        else:  # replay the envs' whole sequences through the core, then take the valid rows
            net = self.net
            out, values = run(net.forward_sequence, seq.obs, seq.masks, seq.state0, seq.starts)
            out, values = out.flatten(0, 1)[seq.rows], values.flatten()[seq.rows]
        out = mask_logits(out, mb.action_mask)  # the entropy too is over valid actions
        logratio = self.net.dist.log_prob(out, mb.actions) - mb.logprobs
        return Scored(out, values, logratio, logratio.exp())

    def backward(
        self, fwd: Scored, mb: Batch, advantages: torch.Tensor, clip: float
    ) -> LossTerms | None:
        """Write the loss's gradient into the parameters' ``.grad``; returns the loss terms
        when it computed them anyway (else None)."""
        terms = ppo_loss(fwd, self.net.dist.entropy(fwd.out), mb, advantages, self.cfg, clip)
        self.optimizer.zero_grad()
        scaler = self.precision.scaler
        (terms.total if scaler is None else terms.total * scaler.scale).backward()
        return terms

    def unscale(self) -> bool:
        """Whether the gradient in the buffer may be stepped on: False after an fp16 overflow
        (the loss scale then shrinks and the step is skipped)."""
        scaler = self.precision.scaler
        return scaler is None or scaler.unscale(self.optimizer.flat_grad)


class Fused(Autograd):
    records_graph = False

    def __init__(
        self, net: ActorCritic, optimizer: Adam, cfg: PPOConfig, precision: Precision | None = None
    ) -> None:
        super().__init__(net, optimizer, cfg, precision)
        reason = fused_unsupported(net, self.precision.name)
        if reason is not None:
            raise ValueError(f"the fused gradient does not support this network: {reason}")

    @no_grad
    def forward(self, mb: Batch) -> FusedScored:
        rec = self.net.forward_recorded(mb.obs, mb.masks)
        # Ruled-out logits get probability 0, hence gradient 0 from grad_out.
        rec.out = mask_logits(rec.out, mb.action_mask)
        # The head's own scoring, so the ratio is exactly 1 before the first step.
        scores, logp = self.net.dist.scored(rec.out, mb.actions)
        return FusedScored(rec, scores, logp - mb.logprobs)

    @no_grad
    def backward(
        self, fwd: FusedScored, mb: Batch, advantages: torch.Tensor, clip: float
    ) -> LossTerms | None:
        dlogp, dvalues = ppo_loss_grads(fwd, mb, advantages, self.cfg, clip)
        dout = self.net.dist.grad_out(fwd.scores, mb.actions, dlogp, self.cfg.ent_coef)
        self.net.backward(fwd.rec, dout, dvalues)
        return None


def make_gradient(
    net: ActorCritic, optimizer: Adam, cfg: PPOConfig, precision: Precision | None = None
) -> Autograd:
    """Fused where ``ppo.fused`` asks for it and the network and precision are on its
    allow-list."""
    precision = precision or Precision()
    if cfg.fused and fused_unsupported(net, precision.name) is None:
        return Fused(net, optimizer, cfg, precision)
    return Autograd(net, optimizer, cfg, precision)
