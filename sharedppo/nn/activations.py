"""tanh at the speed of the machine's memory: numpy's SIMD tanh on a CPU tensor's own memory.

torch 2.13.0's CPU ``torch.tanh`` costs 4-5 ns per float32 element on this project's AMD EPYC
(AVX-512) machine, against 0.3-0.5 ns for ``numpy.tanh`` on the same memory and 0.2 ns for a
``x * x`` (docs/benchmarks.md, "The slow tanh"): at a minibatch of 256 the two 64-wide tanh
layers of the default trunk took about 150 us of a 470 us update step. :func:`tanh` hands a
CPU float32/float64 tensor's memory to ``numpy.tanh`` (no copy in, one new array out) and
keeps ``torch.tanh`` everywhere else: small tensors (under 512 elements, where its one call
is quicker), CUDA, bf16/fp16, and graphs traced by torch.compile or torch.export (whose fake
tensors have no memory). Its error against float64 tanh is a few
float32 ulps, the bound ``tests/test_activations.py`` checks.

Under autograd, :class:`HostTanh` is the same forward with torch's own backward formula,
``grad * (1 - y^2)`` from the saved output; the fused gradient uses that formula too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_tanh_backward = torch.ops.aten.tanh_backward
_HOST_DTYPES = (torch.float32, torch.float64)
# Below this many elements torch.tanh's one dispatch beats numpy's three steps (a view, the
# ufunc, a tensor around its result): on one row of 64 (a one-env MuJoCo act) torch.tanh took
# 1.3 us and the numpy path 4.4-9 us; at 8 x 64 they tie (7.2 / 7.7 us busy, 5.0 / 1.5 quiet);
# at 16 x 64 numpy wins (17 / 13 us) and at 256 x 64 by 8x (187 / 24 us).
_MIN_HOST = 512


def _on_host(x: Tensor) -> bool:
    """Whether numpy can compute this tensor's tanh on its memory."""
    return (
        x.numel() >= _MIN_HOST
        and x.device.type == "cpu"
        and x.dtype in _HOST_DTYPES
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
    )


def _host_tanh(x: Tensor) -> Tensor:
    return torch.from_numpy(np.tanh(x.detach().numpy()))


class HostTanh(torch.autograd.Function):
    """tanh through numpy on CPU memory, differentiable once (backward: grad * (1 - y^2))."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:  # type: ignore[override]
        return _host_tanh(x)

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor], output: Tensor) -> None:  # noqa: ANN001
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]  # noqa: ANN001
        (y,) = ctx.saved_tensors
        return _tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    """``torch.tanh(x)`` to within a few float32 ulps, through numpy on CPU float tensors."""
    if not _on_host(x):
        return torch.tanh(x)
    if x.requires_grad and torch.is_grad_enabled():
        return HostTanh.apply(x)
    return _host_tanh(x)


def is_tanh(activation: Callable[[Tensor], Tensor]) -> bool:
    """Whether a trunk's activation is tanh (this module's or torch's own)."""
    return activation is tanh or activation is torch.tanh


def activate_(activation: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``activation(x)``, written over ``x`` (a layer's fresh pre-activation, which nothing
    keeps) where nothing differentiates through it or traces it; else ``activation(x)``.

    An activation written into fresh memory cost more than the activation: in a pack's
    update step on the Intel machine, ``tanh_backward`` into a new [8, 249, 64] tensor took
    231 us a call and over its input 33 us (24 us timed alone); the forward's activations
    are written over their inputs for the same reason (docs/benchmarks.md)."""
    if x.requires_grad or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return activation(x)
    if is_tanh(activation):
        if _on_host(x):
            a = x.numpy()
            np.tanh(a, out=a)
            return x
        return x.tanh_()
    if activation is torch.relu or activation is F.relu:
        return x.relu_()
    return activation(x)
