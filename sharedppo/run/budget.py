"""What a config would take of the machine's memory, estimated before anything is allocated.

A network or rollout too large for the machine does not fail cleanly: torch may hang for
minutes in the allocator, swap the machine to a halt, or be killed (a SIGSEGV for a width of
a million). So the pre-check (with the smallest observation: one number) and the trainer
(with the env's own, before building) refuse what cannot fit, in one line naming the keys.
The estimate errs low: it only has to catch what is hopeless, not what is tight.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..config import ConfigError

FLOAT = 4  # bytes of a float32
# Per stored step besides the observation: action, logprob, value, reward, terminated, done,
# valid, start, advantage, return (memory.RolloutMemory), and the minibatch's copies of them.
STEP_FLOATS = 2 * 10
# A parameter's own value, its gradient and Adam's two moments.
PARAM_COPIES = 4


def network_params(cfg: Any, obs_size: int) -> int:
    """Parameters of the trunk(s) and recurrent core(s): the heads are small next to them."""
    net = cfg.network
    if net.type == "nature_cnn":
        trunk = 1_700_000  # the fixed convolutions and their 512-unit layer
        width = 512
    else:
        width = net.width
        trunk = obs_size * width + (net.depth - 1) * width * width + net.depth * width
    if net.recurrent is not None:
        size = net.recurrent_size
        trunk += 4 * (width + size + 1) * size  # an LSTM's four gates (a GRU's three)
    return trunk * (1 if net.shared else 2)


def rollout_bytes(cfg: Any, obs_size: int, obs_bytes: int = FLOAT) -> int:
    steps = cfg.ppo.num_steps * cfg.env.num_envs
    rows = steps // max(cfg.ppo.num_minibatches, 1)
    width = 512 if cfg.network.type == "nature_cnn" else cfg.network.width
    depth = 1 if cfg.network.type == "nature_cnn" else cfg.network.depth
    # The observations twice (rollout and minibatch), the per-step floats, and one
    # minibatch's activations kept for the backward pass.
    return (
        steps * (2 * obs_size * obs_bytes + STEP_FLOATS * FLOAT) + rows * width * depth * 3 * FLOAT
    )


def available_bytes(device: torch.device, initialise: bool = True) -> int | None:
    """Free memory where the tensors would live: the GPU's, or the host's available RAM;
    None for a GPU when ``initialise`` is False and this process has not initialised CUDA."""
    if device.type == "cuda":
        if not initialise and not torch.cuda.is_initialized():
            # A sweep's command forks its jobs, and a process that initialised CUDA leaves
            # every forked child unable to use it ("Cannot re-initialize CUDA in forked
            # subprocess"): the job checks the GPU itself, in its own process.
            return None
        # The GPU's total, not its free memory: asking for that would create a CUDA context
        # in the launching process of a sweep, whose jobs may run elsewhere.
        index = device.index if device.index is not None else torch.cuda.current_device()
        return int(torch.cuda.get_device_properties(index).total_memory)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} PB"


def check_fits(
    cfg: Any,
    device: torch.device,
    obs_size: int = 1,
    obs_bytes: int = FLOAT,
    initialise: bool = True,
) -> None:
    """Raise ConfigError (one line) where the network or the rollout cannot fit in memory.

    ``cfg``: a composed config (DictConfig or ``config.Config``); ``obs_size``: numbers per
    observation (1 before the env is made: the estimate then only catches the hopeless);
    ``initialise=False``: a GPU is checked only where this process already uses CUDA.
    """
    have = available_bytes(device, initialise)
    if have is None:
        return
    net = network_params(cfg, obs_size) * FLOAT * PARAM_COPIES
    rollout = rollout_bytes(cfg, obs_size, obs_bytes)
    if net + rollout <= have:
        return
    network = cfg.network
    if net >= rollout:
        keys = f"network.width={network.width} x network.depth={network.depth}"
        if network.recurrent is not None:
            keys += f" (network.recurrent_size={network.recurrent_size})"
        what = "the network's parameters, gradients and Adam state would need"
    else:
        keys = f"ppo.num_steps={cfg.ppo.num_steps} x env.num_envs={cfg.env.num_envs}"
        what = "the rollout memory would need"
    raise ConfigError(
        f"{keys} is not allowed: {what} {size(net + rollout)}, and this machine has "
        f"{size(have)} available ({device.type})"
    )
