"""The population's network maths: every run's MLP actor-critic at once, as batched matrix
products over a leading run axis ([runs, rows, features]), forward (recorded for the
hand-derived backward, or differentiable for autograd), backward, and acting.

The same operations as ``ActorCritic.forward``/``forward_recorded``/``backward`` and the heads'
``sample``/``grad_out`` (``nn``), with ``baddbmm``/``bmm`` in place of ``addmm``/``mm``; each
run's slice is what its own network computes, up to float rounding (``tests/test_pack.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..nn.activations import activate_, is_tanh
from ..nn.actor_critic import ActorCritic
from ..nn.grad import no_grad
from ..nn.heads import (
    INVERSE_CDF_MIN_ROWS,
    Categorical,
    Gaussian,
    categorical_entropy,
    categorical_scores,
)

_tanh_backward_out = torch.ops.aten.tanh_backward.grad_input
_threshold_backward = torch.ops.aten.threshold_backward
_LOG_2PI = math.log(2 * math.pi)


@dataclass
class Shape:
    """What the population's maths needs to know of the runs' (identical) architecture."""

    trunks: int
    depth: int
    activation: Callable[[Tensor], Tensor]
    gaussian: bool

    @classmethod
    def of(cls, net: ActorCritic) -> Shape:
        return cls(len(net.layers), net.depth, net.activation, isinstance(net.dist, Gaussian))

    @property
    def tanh(self) -> bool:
        return is_tanh(self.activation)


def packable_net(net: ActorCritic) -> str | None:
    """Why a population cannot hold this network, or None when it can."""
    if net.encoders is not None or net.convs is not None:
        return (
            "its observations are encoded before the trunk (Dict, Tuple, Discrete or image "
            "observations: per-part encoders or convolutions)"
        )
    if net.cores is not None:
        return "a recurrent core"
    if type(net.dist) not in (Categorical, Gaussian):
        return f"its {type(net.dist).__name__} action head"
    return None


@dataclass
class PackRecord:
    inputs: list[list[Tensor]]
    outputs: list[list[Tensor]]
    hidden: list[Tensor]
    masks: Tensor | None
    out: Tensor  # [runs, rows, outputs]
    values: Tensor  # [runs, rows]
    heads_w: Tensor | None = None  # both heads' weights [runs, outputs + 1, width], one trunk


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def forward(
    shape: Shape, p: dict[str, Tensor], obs: Tensor, masks: Tensor | None, record: bool = False
) -> PackRecord:
    """Policy head output [runs, rows, outputs] and values [runs, rows] from observations
    [runs, rows, ...]; ``masks`` [runs, rows, trunks x depth, width] or None; ``p`` the
    parameters' [runs, ...] views (``Stacked.views``)."""
    x0 = obs.flatten(2) if obs.dim() > 3 else obs
    inputs: list[list[Tensor]] = []
    outputs: list[list[Tensor]] = []
    hidden = []
    for index in range(shape.trunks):
        x = x0
        ins, outs = [], []
        for j in range(shape.depth):
            pre = _linear(x, p[f"trunks.{index}.{j}.weight"], p[f"trunks.{index}.{j}.bias"])
            y = activate_(shape.activation, pre)
            if record:
                ins.append(x)
                outs.append(y)
            x = y if masks is None else y * masks[:, :, index * shape.depth + j]
        inputs.append(ins)
        outputs.append(outs)
        hidden.append(x)
    if shape.trunks == 1:
        # One trunk feeds both heads: one product for both ([runs, rows, outputs + 1]; for
        # 8 runs x 249 rows 48 us against 93 for the two).
        heads_w = torch.cat((p["policy_head.weight"], p["value_head.weight"]), 1)
        heads_b = torch.cat((p["policy_head.bias"], p["value_head.bias"]), 1)
        both = _linear(hidden[0], heads_w, heads_b)
        out, values = both[..., :-1], both[..., -1]
        return PackRecord(inputs, outputs, hidden, masks, out, values, heads_w)
    out = _linear(hidden[0], p["policy_head.weight"], p["policy_head.bias"])
    values = _linear(hidden[-1], p["value_head.weight"], p["value_head.bias"]).squeeze(-1)
    return PackRecord(inputs, outputs, hidden, masks, out, values)


@no_grad
def backward(
    shape: Shape,
    p: dict[str, Tensor],
    g: dict[str, Tensor],
    rec: PackRecord,
    dout: Tensor,
    dvalues: Tensor,
) -> None:
    """Write every run's d(loss)/d(parameter) into ``g`` (views of the gradient rows) from
    the loss's gradients at the heads' outputs, as ``ActorCritic.backward`` does for one."""
    if rec.heads_w is not None:  # the heads as one product (forward): so is their gradient
        dboth = torch.cat((dout, dvalues.unsqueeze(-1)), -1)  # [runs, rows, outputs + 1]
        weight, bias = torch.bmm(dboth.transpose(1, 2), rec.hidden[0]), dboth.sum(1)
        g["policy_head.weight"].copy_(weight[:, :-1])
        g["value_head.weight"].copy_(weight[:, -1:])
        g["policy_head.bias"].copy_(bias[:, :-1])
        g["value_head.bias"].copy_(bias[:, -1:])
        dhidden = [torch.bmm(dboth, rec.heads_w)]
    else:
        g["policy_head.weight"].copy_(torch.bmm(dout.transpose(1, 2), rec.hidden[0]))
        g["policy_head.bias"].copy_(dout.sum(1))
        g["value_head.weight"].copy_(torch.bmm(dvalues.unsqueeze(1), rec.hidden[-1]))
        g["value_head.bias"].copy_(dvalues.sum(1, keepdim=True))
        value_w = p["value_head.weight"]  # [runs, 1, width]
        dhidden = [torch.bmm(dout, p["policy_head.weight"])]
        dhidden.append(torch.bmm(dvalues.unsqueeze(-1), value_w))
    masks = rec.masks
    for index in range(shape.trunks):
        d = dhidden[index]
        for j in range(shape.depth - 1, -1, -1):
            name = f"trunks.{index}.{j}"
            if masks is not None:
                d = d * masks[:, :, index * shape.depth + j]
            y = rec.outputs[index][j]
            if shape.tanh:  # over d, which nothing reads again
                dpre = _tanh_backward_out(d, y, grad_input=d)
            else:
                dpre = _threshold_backward(d, y, 0)
            # (x^T dpre)^T: a first layer's few inputs make dpre^T x an [out, few] product,
            # which MKL computes 6x slower than the same numbers as [few, out] (130 against
            # 20 us for 8 runs x 249 rows, 64 units and 4 inputs).
            x = rec.inputs[index][j]
            g[f"{name}.weight"].copy_(torch.bmm(x.transpose(1, 2), dpre).transpose(1, 2))
            g[f"{name}.bias"].copy_(dpre.sum(1))
            if j > 0:
                d = torch.bmm(dpre, p[f"{name}.weight"])


def gaussian_scores(out: Tensor, actions: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor]:
    """(z = (action - mean) / std, log-prob of the actions) for [runs, rows, d] means and
    per-run log-stds [runs, d] (``Gaussian.scored``)."""
    ls = log_std.unsqueeze(1)
    z = (actions - out) * (-ls).exp()
    return z, -(0.5 * z.square() + ls + 0.5 * _LOG_2PI).sum(-1)


def scores(gaussian: bool, out: Tensor, actions: Tensor, log_std: Tensor | None) -> tuple:
    """(the head's scores, log-prob of the actions taken) for [runs, rows] minibatches."""
    if gaussian:
        return gaussian_scores(out, actions, log_std)
    return categorical_scores(out, actions)


def entropy(gaussian: bool, head_scores: Tensor, log_std: Tensor | None) -> Tensor:
    """Each row's entropy [runs, rows]."""
    if gaussian:
        per_run = (0.5 + 0.5 * _LOG_2PI + log_std).sum(-1)
        return per_run.unsqueeze(1).expand(head_scores.shape[:2])
    return categorical_entropy(head_scores)


@no_grad
def grad_out(
    gaussian: bool,
    head_scores: Tensor,
    actions: Tensor,
    dlogp: Tensor,
    ent_weight: Tensor | None,
    ent_coef: Tensor,
    log_std: Tensor | None,
    log_std_grad: Tensor | None,
) -> Tensor:
    """d(loss)/d(head output) [runs, rows, outputs] (``Categorical``/``Gaussian.grad_out``
    per run). ``ent_weight`` [runs, rows]: each row's share of the entropy bonus (ent_coef /
    rows, 0 on padding; None: no run has one); a Gaussian's log-std gradient goes into
    ``log_std_grad`` [runs, d]."""
    if gaussian:
        dz = dlogp.unsqueeze(-1) * head_scores
        log_std_grad.copy_((dz * head_scores - dlogp.unsqueeze(-1)).sum(1)).sub_(ent_coef)
        return dz * (-log_std).exp().unsqueeze(1)
    probs = head_scores.exp()
    dout = probs * (-dlogp).unsqueeze(-1)
    dout.scatter_add_(-1, actions.unsqueeze(-1), dlogp.unsqueeze(-1))
    if ent_weight is not None:
        ent = -(probs * head_scores).sum(-1, keepdim=True)
        dout.add_(probs * (head_scores + ent) * ent_weight.unsqueeze(-1))
    return dout


def sample(
    gaussian: bool,
    out: Tensor,
    generators: list[torch.Generator],
    log_std: Tensor | None,
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Actions and log-probs [runs, envs] (Gaussian: [runs, envs, d]), each run's random
    numbers from its own generator, drawn as its own network's head draws them, or taken
    from ``noise``, the step's part of its rollout's draws (a Gaussian's normals, a
    categorical head's exponentials)."""
    if gaussian:
        actions = torch.addcmul(out, noise, log_std.exp().unsqueeze(1))
        logp = -(0.5 * noise.square() + log_std.unsqueeze(1) + 0.5 * _LOG_2PI).sum(-1)
        return actions, logp
    log_probs = torch.log_softmax(out, dim=-1)
    probs = log_probs.exp()
    if out.shape[1] < INVERSE_CDF_MIN_ROWS:
        draws = noise
        if draws is None:
            draws = torch.empty_like(probs)
            for r, gen in enumerate(generators):
                draws[r].exponential_(generator=gen)
        actions = (probs / draws).argmax(dim=-1)
    else:
        u = torch.empty((*probs.shape[:-1], 1), dtype=probs.dtype, device=probs.device)
        for r, gen in enumerate(generators):
            u[r].uniform_(generator=gen)
        actions = (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)
    return actions, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
