"""Mixed precision: the ``precision`` key checked against the device, autocast around the
network's forward passes, and the fp16 loss scale.

Parameters, the optimizer's flat buffer, Adam and the loss stay fp32: only the network's
matrix products and convolutions run in bf16 or fp16 under autocast (the two heads excepted:
``ActorCritic._heads``), and what comes out of
the network is cast back to fp32 before sampling, scoring and the loss read it. The
hand-derived (fused) gradient is fp32 maths, so any other precision uses autograd
(``gradient.fused_unsupported``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from ..config import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_supports_bf16() -> bool:
    """Whether oneDNN runs bf16 kernels on this CPU (AVX512 or AMX on x86, BF16 on Arm);
    elsewhere bf16 is emulated and slower than fp32."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def check_precision(name: str, device: torch.device) -> None:
    """Refuse in one line a precision this device cannot run usefully."""
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"precision=fp16 is not allowed on device={device.type}: fp16 needs device=cuda "
            "(use precision=bf16 on CPU)"
        )
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"precision=bf16 is not allowed on {device}: this GPU has no bf16 support (it "
            "needs compute capability 8.0 or newer); use precision=fp16"
        )
    if name == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        raise ConfigError(
            "precision=bf16 is not allowed here: this CPU has no bf16 support in oneDNN "
            "(AVX512 or AMX on x86, BF16 on Arm), where it would be slower than fp32; use "
            "precision=fp32"
        )


def fp32_region(device_type: str) -> AbstractContextManager:
    """Autocast switched off inside, where a mixed precision is on: for hand-derived maths
    (the recurrent core's cells and backward through time) that mixes dtypes otherwise."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return nullcontext()


class LossScaler:
    """Dynamic loss scaling for fp16: the loss is multiplied by ``scale`` before backward so
    small gradients do not flush to zero; the gradient is divided back before clipping. An
    overflow skips the step and halves the scale; ``growth_interval`` clean steps double it.
    """

    def __init__(self, scale: float = 2.0**16, growth_interval: int = 2000) -> None:
        self.scale = scale
        self.growth_interval = growth_interval
        self.clean_steps = 0

    def unscale(self, flat_grad: Tensor) -> bool:
        """Divide the gradient by the scale; False (skip the step) where it overflowed."""
        flat_grad.mul_(1.0 / self.scale)
        if not bool(torch.isfinite(flat_grad).all()):
            self.scale /= 2.0
            self.clean_steps = 0
            return False
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            self.scale *= 2.0
            self.clean_steps = 0
        return True


class Precision:
    """How the network's forward passes run: fp32 as written, or under autocast."""

    def __init__(self, name: str = "fp32", device_type: str = "cpu") -> None:
        if name != "fp32" and name not in DTYPES:
            raise ConfigError(f"precision={name!r} is not allowed: choose one of fp32, bf16, fp16")
        self.name = name
        self.dtype = DTYPES.get(name)
        self.device_type = device_type
        self.scaler = LossScaler() if name == "fp16" else None

    def run(self, forward: Callable[..., tuple[Tensor, ...]], *args: object) -> tuple:
        """``forward(*args)``: at fp32 as it is; else under autocast, its outputs in fp32."""
        if self.dtype is None:
            return forward(*args)
        with torch.autocast(self.device_type, dtype=self.dtype):
            outputs = forward(*args)
        return tuple(x.float() for x in outputs)
