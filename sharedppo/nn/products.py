"""Forms of the network's small matrix products that MKL computes sooner on this project's CPU
(the same sums, in another order at most); measured in docs/benchmarks.md."""

from __future__ import annotations

import torch
from torch import Tensor


def value_head(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """The value head [B]: MKL's matrix-vector product takes about half the time of its [B, 1]
    matrix product (2.2 against 3.3 us at 8 rows, 3.2 against 8.0 at 256), the same sums.
    A graph being traced (export, compile) keeps the linear map, which ONNX exports for any
    batch size."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return torch.nn.functional.linear(x, weight, bias).squeeze(-1)
    return torch.addmv(bias, x, weight[0])


def weight_grad(dpre: Tensor, x: Tensor, out: Tensor) -> None:
    """dpre^T x into ``out``; for few inputs as (x^T dpre)^T, the same sums in another order,
    which MKL computes 3x sooner ([64, 4] at 256 rows: 9 against 28 us; 64x64: equal)."""
    if x.shape[1] < dpre.shape[1]:
        out.copy_(torch.mm(x.t(), dpre).t())
    else:
        torch.mm(dpre.t(), x, out=out)
