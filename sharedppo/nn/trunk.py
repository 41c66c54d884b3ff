"""Building the actor-critic's trunks from ``network.*``: what the first layer reads (per-part
encoders for a laid-out observation: Dict, Tuple, Discrete, H x W x C or small images; the
Nature-DQN convolutions for C x H x W frames; or the flat observation) and the recurrent
cores the heads read when ``network.recurrent`` is set.

``ActorCritic.__init__`` assigns what these return in the order it always has (encoders or
convolutions, trunks, cores, heads): that order is the order of the parameters, hence of the
optimizer's flat buffer and of the random numbers the initialisation draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError, NetworkConfig
from ..envs.spaces import Layout
from .activations import tanh
from .encoders import DictEncoder, nature_convs
from .recurrent import CELLS

# tanh: numpy's on CPU tensors, 10x quicker than torch.tanh here (activations.py).
ACTIVATIONS = {"tanh": tanh, "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu}


@dataclass
class TrunkInput:
    """What each trunk's first linear layer reads, and the layers' sizes."""

    encoders: nn.ModuleList | None  # per trunk, for a Dict observation
    convs: nn.ModuleList | None  # per trunk, for image observations (network.type=nature_cnn)
    in_dim: int
    depth: int
    width: int
    activation: Callable[[Tensor], Tensor]
    channels_last: bool


def trunk_input(
    obs_shape: tuple[int, ...], cfg: NetworkConfig, layout: Layout | None, num_trunks: int
) -> TrunkInput:
    """Encoders, convolutions or neither, one per trunk, and the layers they feed."""
    if layout is not None:
        # network.type=nature_cnn keeps its one 512-unit ReLU layer after the encoders.
        cnn = cfg.type == "nature_cnn"
        activation = F.relu if cnn else ACTIVATIONS[cfg.activation]
        depth, width = (1, 512) if cnn else (cfg.depth, cfg.width)
        encoders = nn.ModuleList(DictEncoder(layout, width, activation) for _ in range(num_trunks))
        in_dim = encoders[0].out_dim
        return TrunkInput(encoders, None, in_dim, depth, width, activation, False)
    if cfg.type == "nature_cnn":
        if len(obs_shape) != 3:
            raise ConfigError(
                f"network.type=nature_cnn needs image observations (C, H, W); the env "
                f"gives shape {obs_shape}"
            )
        # Convolutions, then one 512-unit ReLU layer: the MLP path with depth 1.
        convs = nn.ModuleList(nature_convs(obs_shape[0]) for _ in range(num_trunks))
        with torch.no_grad():
            in_dim = convs[0](torch.zeros(1, *obs_shape)).shape[1]
        channels_last = getattr(cfg, "channels_last", True)
        return TrunkInput(None, convs, in_dim, 1, 512, F.relu, channels_last)
    in_dim = int(np.prod(obs_shape))
    activation = ACTIVATIONS[cfg.activation]
    return TrunkInput(None, None, in_dim, cfg.depth, cfg.width, activation, False)


def recurrent_cores(
    cfg: NetworkConfig, width: int, num_trunks: int
) -> tuple[str | None, nn.ModuleList | None, int]:
    """(the cell's name, one core per trunk, the size the heads read): (None, None, width)
    without ``network.recurrent``."""
    recurrent: str | None = getattr(cfg, "recurrent", None)
    if recurrent is None:
        return None, None, width
    if recurrent not in CELLS:
        raise ConfigError(
            f"network.recurrent={recurrent!r} is not allowed: choose one of " + ", ".join(CELLS)
        )
    cell = CELLS[recurrent]
    cores = nn.ModuleList(cell(width, cfg.recurrent_size) for _ in range(num_trunks))
    return recurrent, cores, cfg.recurrent_size
