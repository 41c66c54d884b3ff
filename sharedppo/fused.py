"""The PPO minibatch gradient with hand-derived backward passes, for MLP actor-critics.

Same losses as ``PPOAgent.losses`` (clipped surrogate, optional clipped value loss, entropy
bonus); the gradient is written straight into the optimizer's flat buffer instead of going
through autograd. At PPO's usual sizes (a few hundred rows, 64-unit layers) an update step
is mostly per-op overhead: with autograd a step (forward, backward, clipping, Adam) dispatches
about 120 ops and builds and walks a graph; this way it takes about 65 ops and no graph.
``tests/test_fused.py`` checks every gradient against autograd for each supported network;
anything else (conv trunks, MultiDiscrete heads, other activations) uses autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import PPOConfig
from .memory import Batch
from .network import ActorCritic
from .policy import Categorical, Gaussian, MultiCategorical

_tanh_backward = torch.ops.aten.tanh_backward
_threshold_backward = torch.ops.aten.threshold_backward


def unsupported(net: ActorCritic) -> str | None:
    """Why the fused gradient cannot handle this network, or None when it can."""
    if net.convs is not None:
        return "convolutional trunk"
    if net.activation not in (torch.tanh, F.relu):
        return "activation other than tanh or relu"
    if isinstance(net.dist, MultiCategorical) or not isinstance(net.dist, Categorical | Gaussian):
        return f"{type(net.dist).__name__} action head"
    return None


@dataclass
class Forward:
    """What the backward pass needs from the forward pass of one minibatch."""

    inputs: list[list[Tensor]]  # per trunk: the input of each layer
    outputs: list[list[Tensor]]  # per trunk: each layer's activation, before its dropout mask
    hidden: list[Tensor]  # per trunk: what the heads read
    out: Tensor  # policy head output: logits, or the Gaussian mean
    values: Tensor
    log_probs: Tensor | None  # Categorical: normalised log-probs of every action
    z: Tensor | None  # Gaussian: (action - mean) / std
    logratio: Tensor
    ratio: Tensor


class FusedGradient:
    def __init__(self, net: ActorCritic) -> None:
        reason = unsupported(net)
        if reason is not None:
            raise ValueError(f"fused gradient does not support this network: {reason}")
        self.net = net
        self.tanh = net.activation is torch.tanh
        self.gaussian = isinstance(net.dist, Gaussian)

    @torch.no_grad()
    def forward(self, mb: Batch) -> Forward:
        net, obs, masks = self.net, mb.obs, mb.masks
        x0 = obs.flatten(1) if obs.dim() > 2 else obs
        inputs: list[list[Tensor]] = []
        outputs: list[list[Tensor]] = []
        hidden: list[Tensor] = []
        for index, trunk in enumerate(net.layers):
            x, ins, outs = x0, [], []
            for j, (weight, bias) in enumerate(trunk):
                ins.append(x)
                y = net.activation(torch.addmm(bias, x, weight.t()))
                outs.append(y)
                x = y if masks is None else y * masks[:, index * net.depth + j]
            inputs.append(ins)
            outputs.append(outs)
            hidden.append(x)
        (head_w, head_b), (value_w, value_b) = net.heads
        out = torch.addmm(head_b, hidden[0], head_w.t())
        values = torch.addmm(value_b, hidden[-1], value_w.t()).squeeze(-1)
        # The head's own scoring, so the ratio is exactly 1 before the first step.
        scores, logp = net.dist.scored(out, mb.actions)
        log_probs, z = (None, scores) if self.gaussian else (scores, None)
        logratio = logp - mb.logprobs
        return Forward(inputs, outputs, hidden, out, values, log_probs, z, logratio, logratio.exp())

    @torch.no_grad()
    def backward(
        self, fwd: Forward, mb: Batch, advantages: Tensor, clip: float, cfg: PPOConfig
    ) -> None:
        """Write d(loss)/d(parameter) into every parameter's ``.grad`` (overwriting it)."""
        net, ratio, masks = self.net, fwd.ratio, mb.masks
        ent_coef = cfg.ent_coef
        n = ratio.shape[0]
        # Clipped surrogate: no gradient where the clipped branch is the smaller one and the
        # clip is active, that is ratio above 1 + clip with A > 0 or below 1 - clip with A < 0.
        bound = torch.where(advantages > 0, ratio > 1 + clip, ratio < 1 - clip)
        dlogp = torch.where(bound, 0.0, advantages * ratio).mul_(-1.0 / n)

        if self.gaussian:
            log_std = net.dist.log_std
            z = fwd.z
            # d logp / d mean = z / std; d logp / d log_std = z^2 - 1.
            dz = dlogp.unsqueeze(-1) * z
            dout = dz * (-log_std).exp()
            # The entropy of a Gaussian is sum(log_std) + const, whatever the state.
            log_std.grad.copy_((dz * z - dlogp.unsqueeze(-1)).sum(0)).sub_(ent_coef)
        else:
            probs = fwd.log_probs.exp()
            # d logp(a) / d logits = onehot(a) - probs.
            dout = probs * (-dlogp).unsqueeze(-1)
            dout.scatter_add_(-1, mb.actions.unsqueeze(-1), dlogp.unsqueeze(-1))
            if ent_coef > 0:
                # d(-c mean H) / d logits = c / n * probs * (log_probs + H).
                entropy = -(probs * fwd.log_probs).sum(-1, keepdim=True)
                dout.add_(probs * (fwd.log_probs + entropy), alpha=ent_coef / n)

        # 0.5 * vf_coef * mean((v - R)^2); clipped: the larger of that and the clipped
        # prediction's error, whose gradient is zero where the clip is active.
        dv = fwd.values - mb.returns
        if cfg.clip_vloss:
            delta = fwd.values - mb.values
            clipped = mb.values + delta.clamp(-clip, clip) - mb.returns
            dv = torch.where((clipped.square() > dv.square()) & (delta.abs() > clip), 0.0, dv)
        dv = dv * (cfg.vf_coef / n)

        (head_w, head_b), (value_w, value_b) = net.heads
        torch.mm(dout.t(), fwd.hidden[0], out=head_w.grad)
        torch.sum(dout, 0, out=head_b.grad)
        torch.mm(dv.unsqueeze(0), fwd.hidden[-1], out=value_w.grad)
        torch.sum(dv, 0, keepdim=True, out=value_b.grad)
        dhidden = [dout @ head_w]
        if len(net.layers) == 1:
            dhidden[0].addr_(dv, value_w[0])
        else:
            dhidden.append(torch.outer(dv, value_w[0]))

        for index, trunk in enumerate(net.layers):
            d = dhidden[index]
            for j in range(len(trunk) - 1, -1, -1):
                weight, bias = trunk[j]
                if masks is not None:
                    d = d * masks[:, index * net.depth + j]
                y = fwd.outputs[index][j]
                dpre = _tanh_backward(d, y) if self.tanh else _threshold_backward(d, y, 0)
                torch.mm(dpre.t(), fwd.inputs[index][j], out=weight.grad)
                torch.sum(dpre, 0, out=bias.grad)
                if j > 0:
                    d = dpre @ weight
