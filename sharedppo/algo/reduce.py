"""Reductions across the processes of one data-parallel run, through a *reducer*.

A reducer sums a tensor in place over every process of the run; the update's global
quantities (the advantages' mean and std, the KL estimate, the minibatch gradient, the logged
means) are built from such sums, so that N processes each holding a part of the batch take
the same steps as one process holding all of it. The algorithm knows no process group: one
process uses :data:`LOCAL` (and the agent then runs its original single-process code, bit for
bit); ``run/distributed.py`` supplies the all-reduce one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class Reducer(Protocol):
    world_size: int

    def sum_(self, x: Tensor) -> Tensor:
        """Sum ``x`` over every process, in place; returns it."""
        ...


class Local:
    """One process: every sum is the process's own."""

    world_size = 1

    def sum_(self, x: Tensor) -> Tensor:
        return x


LOCAL = Local()


@dataclass
class MinibatchSums:
    """A minibatch's global quantities over every process's part of it."""

    rows: Tensor  # every process's rows (float64, 0-d)
    mean: Tensor  # the advantages' mean and (unbiased) std, float64
    std: Tensor
    kl: float | None  # the k3 estimate's mean; None when not asked for

    def standardise(self, x: Tensor) -> Tensor:
        """``agent.standardise`` with the global mean and std."""
        return (x - self.mean.to(x.dtype)) / (self.std.to(x.dtype) + 1e-8)


def minibatch_sums(advantages: Tensor, k3: Tensor | None, reducer: Reducer) -> MinibatchSums:
    """Rows, the advantages' sum and sum of squares, and the k3 terms' sum, over every
    process: one all-reduce of four float64 numbers per minibatch."""
    a = advantages.double()
    kl = a.new_zeros(()) if k3 is None else k3.sum(dtype=torch.float64)
    sums = reducer.sum_(torch.stack([a.new_tensor(float(len(a))), a.sum(), (a * a).sum(), kl]))
    rows, mean = sums[0], sums[1] / sums[0]
    # One pass in float64; a single row has no spread (std 0), as agent.standardise says.
    var = (sums[2] - rows * mean * mean).clamp(min=0) / (rows - 1).clamp(min=1)
    kl_mean = None if k3 is None else (sums[3] / rows).item()
    return MinibatchSums(rows, mean, var.sqrt(), kl_mean)


def standardise_across(x: Tensor, reducer: Reducer) -> Tensor:
    """``agent.standardise`` over the union of every process's ``x``: the global mean and the
    global (unbiased) std, in two passes."""
    sums = torch.stack([x.new_tensor(len(x), dtype=torch.float64), x.sum(dtype=torch.float64)])
    reducer.sum_(sums)
    count, mean = sums[0], sums[1] / sums[0]
    squares = reducer.sum_(((x.double() - mean) ** 2).sum().reshape(1))[0]
    std = (squares / (count - 1)).sqrt() if count > 1 else torch.zeros_like(count)
    return (x - mean.to(x.dtype)) / (std.to(x.dtype) + 1e-8)


def share_gradient(flat_grad: Tensor, rows: int, total: Tensor, reducer: Reducer) -> None:
    """Replace each process's minibatch gradient (a mean over its ``rows`` rows) by the mean
    over every process's rows (``total``): weighted by rows, as the processes' minibatches
    may differ in size (reset steps and a recurrent network's padding are not rows). One flat
    all-reduce."""
    flat_grad.mul_((rows / total).to(flat_grad.dtype))
    reducer.sum_(flat_grad)


def average_across(x: Tensor, reducer: Reducer) -> Tensor:
    """The plain mean over processes of ``x`` (the update's logged means)."""
    return reducer.sum_(x).div_(reducer.world_size)
