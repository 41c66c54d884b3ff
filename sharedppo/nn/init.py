"""Weight initialisation of the actor-critic (``network.init``)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def initialise(net: Any, scheme: str) -> None:
    """Orthogonal with gain sqrt(2) in the trunk and encoders, 0.01 on the policy head
    (a near-uniform first policy) and 1 on the value head: the PPO implementation-details
    recipe; xavier: uniform Xavier; torch: PyTorch's own initialisation, left as it is."""
    if scheme == "torch":
        return  # nn.Linear / nn.Conv2d have already initialised themselves
    for trunk in net.trunks:
        for layer in trunk:
            _layer(layer, scheme, math.sqrt(2))
    for encoder in [*(net.convs or []), *(net.encoders or [])]:
        for layer in encoder.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                _layer(layer, scheme, math.sqrt(2))
    for core in net.cores or []:
        # Orthogonal (gain 1) or Xavier per gate block's full matrix, zero biases.
        for name, param in core.named_parameters():
            if name.startswith("bias"):
                nn.init.zeros_(param)
            elif scheme == "orthogonal":
                nn.init.orthogonal_(param, 1.0)
            else:
                nn.init.xavier_uniform_(param)
    _layer(net.policy_head, scheme, 0.01)
    _layer(net.value_head, scheme, 1.0)


def _layer(layer: nn.Linear | nn.Conv2d, scheme: str, gain: float) -> None:
    if scheme == "orthogonal":
        nn.init.orthogonal_(layer.weight, gain)
    else:  # xavier
        nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
