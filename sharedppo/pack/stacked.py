"""The population's parameters: every run's flat buffer a row of one [runs, P] tensor.

Each run keeps its own ``ActorCritic`` and flat ``Adam`` (``algo.optim``), built as an
unpacked run builds them; :class:`Stacked` then moves their buffers into rows of shared
tensors (parameters, gradients, Adam's two moments), so a run's network and optimizer read
and write its row: its checkpoint, evaluation and export are those of a run of its own, and
the batched maths reads every row at once through strided views (:meth:`Stacked.views`).

Adam and gradient clipping are the maths of ``algo.optim.Adam`` per row, with each run's
learning rate, epsilon, step count and clip norm; a run that does not step (its KL stop, an
fp16 skip is not supported here, a finished or failed run) keeps its row untouched.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..algo.optim import Adam, fused_adam
from ..nn.actor_critic import ActorCritic
from ..nn.grad import no_grad


class Stacked:
    def __init__(self, nets: list[ActorCritic], optimizers: list[Adam]) -> None:
        first = optimizers[0]
        self.runs = len(optimizers)
        self.size = first.flat.numel()
        # (name, shape, offset) of each parameter in a row, in the optimizer's order.
        self.layout: dict[str, tuple[tuple[int, ...], int]] = {}
        names = {id(p): n for n, p in nets[0].named_parameters()}
        offset = 0
        for p in first.params:
            self.layout[names[id(p)]] = (tuple(p.shape), offset)
            offset += p.numel()
        shape, like = (self.runs, self.size), first.flat
        self.flat = torch.stack([opt.flat for opt in optimizers])
        self.grad = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self.exp_avg = torch.stack([opt.exp_avg for opt in optimizers])
        self.exp_avg_sq = torch.stack([opt.exp_avg_sq for opt in optimizers])
        for r, (net, opt) in enumerate(zip(nets, optimizers, strict=True)):
            self._bind(r, net, opt)
        self.optimizers = optimizers
        self.betas = first.betas
        self._grad_views: dict[str, Tensor] | None = None
        # Each run's step count as the fused Adam kernel reads it (set from its optimizer's
        # count as it steps: a fill per row, no host-to-device copy on CUDA), and each
        # buffer's rows as views made once (making 40 row views per step cost more than the
        # kernel).
        self.steps = torch.zeros(self.runs, dtype=torch.float32, device=like.device)
        # On the CPU the counts are written through numpy: no torch call per stepping row.
        self._host_steps = self.steps.numpy() if like.device.type == "cpu" else None
        buffers = (self.flat, self.grad, self.exp_avg, self.exp_avg_sq, self.steps)
        self._rows = [list(x.unbind(0)) for x in buffers]
        self._gather, self._buffer, self._weights = self._weight_copies()

    def _weight_copies(self) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(index, buffer, views): ``flat.view(-1)[index]`` lays every parameter out as one
        contiguous [runs, *shape] block, one after the other, in ``buffer``; ``views`` are
        those blocks."""
        device = self.flat.device
        starts = torch.arange(self.runs, device=device).unsqueeze(1) * self.size
        parts, views, at = [], {}, 0
        buffer = torch.empty(self.runs * self.size, dtype=self.flat.dtype, device=device)
        for name, (shape, offset) in self.layout.items():
            n = math.prod(shape)
            parts.append((starts + offset + torch.arange(n, device=device)).flatten())
            views[name] = buffer[at : at + self.runs * n].view(self.runs, *shape)
            at += self.runs * n
        return torch.cat(parts), buffer, views

    def _bind(self, r: int, net: ActorCritic, opt: Adam) -> None:
        """Run ``r``'s parameters, gradients and moments become views of row ``r``."""
        row, grad = self.flat[r], self.grad[r]
        offset = 0
        for p in opt.params:
            n = p.numel()
            p.data = row[offset : offset + n].view(p.shape)
            p.grad = grad[offset : offset + n].view(p.shape)
            offset += n
        opt.flat, opt.flat_grad = row, grad
        opt.exp_avg, opt.exp_avg_sq = self.exp_avg[r], self.exp_avg_sq[r]
        net._cache_parameters()  # its (weight, bias) lists hold the same Parameter objects

    def views(self, flat: Tensor | None = None) -> dict[str, Tensor]:
        """Each parameter as a [runs, *shape] view of ``flat`` (default: the gradients'
        rows, which the backward pass writes; made once)."""
        if flat is None:
            if self._grad_views is None:
                self._grad_views = self.views(self.grad)
            return self._grad_views
        return {
            name: flat[:, offset : offset + math.prod(shape)].view(self.runs, *shape)
            for name, (shape, offset) in self.layout.items()
        }

    def weights(self, flat: Tensor | None = None) -> dict[str, Tensor]:
        """Each parameter as a contiguous [runs, *shape] copy of ``flat`` (default: the
        parameters, copied by one gather into a buffer made once, valid until the next call;
        a differentiable copy of a leaf for autograd). A batched product reads a row-strided
        view 2-5x slower than a contiguous copy of it (a [8, 249, 2] x [8, 2, 64] bmm: 74 us
        strided, 16 us contiguous); the gather replaces 24 torch calls per update step (a
        slice, view and copy per parameter) by one."""
        if flat is None:
            torch.index_select(self.flat.view(-1), 0, self._gather, out=self._buffer)
            return dict(self._weights)
        return {
            name: flat[:, offset : offset + math.prod(shape)].view(self.runs, *shape).contiguous()
            for name, (shape, offset) in self.layout.items()
        }

    @no_grad
    def clip_grad_norm(self, max_norm: Tensor) -> Tensor:
        """Scale each run's gradient to an L2 norm of at most ``max_norm`` [runs]; returns
        the norms before clipping [runs]."""
        norm = torch.linalg.vector_norm(self.grad, dim=1)
        self.grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0).unsqueeze(1))
        return norm

    @no_grad
    def step(self, stepping: list[bool]) -> None:
        """One Adam step of the runs marked in ``stepping``, each with its optimizer's lr and
        eps; the other rows stay as they are (parameters and moments).

        The fused kernel steps the runs that share an (lr, eps) in one call, each at its own
        step count: a pack of 8 CartPole runs at two learning rates 28 against 71 us for the
        six ops on the stacked rows (medians, one process)."""
        rows = [r for r, s in enumerate(stepping) if s]
        if not rows:
            return
        groups: dict[tuple[float, float], list[int]] = {}
        for r in rows:
            opt = self.optimizers[r]
            opt.step_count += 1
            if self._host_steps is None:
                self._rows[-1][r].fill_(opt.step_count)
            else:
                self._host_steps[r] = opt.step_count
            groups.setdefault((opt.lr, opt.eps), []).append(r)
        for (lr, eps), members in groups.items():
            parts = [[x[r] for r in members] for x in self._rows]
            if not fused_adam(*parts, lr, self.betas, eps):  # none here: the same on every call
                self._unfused(rows)
                return

    def _unfused(self, rows: list[int]) -> None:
        """``step`` as six ops on the stacked rows, where this torch has no fused Adam."""
        opts = [self.optimizers[r] for r in rows]
        beta1, beta2 = self.betas
        device, dtype = self.flat.device, self.flat.dtype
        counts = [opt.step_count for opt in opts]
        step_size = torch.tensor(
            [[-opt.lr / (1 - beta1**n)] for opt, n in zip(opts, counts, strict=True)],
            dtype=dtype,
            device=device,
        )
        root_bias2 = torch.tensor(
            [[math.sqrt(1 - beta2**n)] for n in counts], dtype=dtype, device=device
        )
        eps = torch.tensor([[opt.eps] for opt in opts], dtype=dtype, device=device)
        if len(rows) == self.runs:  # the usual case: every row in place
            flat, grad, m, v = self.flat, self.grad, self.exp_avg, self.exp_avg_sq
            _adam(flat, grad, m, v, step_size, root_bias2, eps, self.betas)
            return
        index = torch.tensor(rows, device=device)
        parts = [x.index_select(0, index) for x in (self.flat, self.grad, self.exp_avg)]
        flat, grad, m = parts
        v = self.exp_avg_sq.index_select(0, index)
        _adam(flat, grad, m, v, step_size, root_bias2, eps, self.betas)
        for whole, part in ((self.flat, flat), (self.exp_avg, m), (self.exp_avg_sq, v)):
            whole.index_copy_(0, index, part)


def _adam(
    flat: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
    step_size: Tensor,
    root_bias2: Tensor,
    eps: Tensor,
    betas: tuple[float, float],
) -> None:
    """``algo.optim.Adam.step`` on rows, with per-row [rows, 1] step size, sqrt(bias2), eps."""
    beta1, beta2 = betas
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (v.sqrt() / root_bias2).add_(eps)
    flat.addcdiv_(m * step_size, denom)
