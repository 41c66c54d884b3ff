"""The actor-critic: one MLP trunk shared by a policy head and a value head.

Dropout is applied with explicit masks instead of ``nn.Dropout``: the masks drawn when the
agent acts are stored with the transition and reused when it learns, so the PPO ratio
compares the same sub-network before and after the update (and is exactly 1 before it).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import NetworkConfig
from .policy import make_distribution

_ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu}


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_space: gym.Space | int, cfg: NetworkConfig) -> None:
        super().__init__()
        if isinstance(action_space, int):
            action_space = gym.spaces.Discrete(action_space)
        # The distribution follows the action space; a Gaussian's log-std lives in it.
        self.dist = make_distribution(action_space)
        self.shared = cfg.shared
        self.depth = cfg.depth
        self.width = cfg.width
        self.dropout = float(cfg.dropout)
        self.activation = _ACTIVATIONS[cfg.activation]
        num_trunks = 1 if cfg.shared else 2
        self.trunks = nn.ModuleList(
            nn.ModuleList(
                nn.Linear(obs_dim if i == 0 else cfg.width, cfg.width) for i in range(cfg.depth)
            )
            for _ in range(num_trunks)
        )
        self.policy_head = nn.Linear(cfg.width, self.dist.num_outputs)
        self.value_head = nn.Linear(cfg.width, 1)
        self._init(cfg.init)

    def _init(self, scheme: str) -> None:
        # Orthogonal with gain sqrt(2) in the trunk, 0.01 on the policy head (near-uniform
        # first policy) and 1 on the value head: the PPO implementation-details recipe.
        for trunk in self.trunks:
            for layer in trunk:
                self._init_layer(layer, scheme, math.sqrt(2))
        self._init_layer(self.policy_head, scheme, 0.01)
        self._init_layer(self.value_head, scheme, 1.0)

    @staticmethod
    def _init_layer(layer: nn.Linear, scheme: str, gain: float) -> None:
        if scheme == "orthogonal":
            nn.init.orthogonal_(layer.weight, gain)
        else:
            nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)

    @property
    def mask_shape(self) -> tuple[int, int]:
        return (len(self.trunks) * self.depth, self.width)

    def sample_masks(self, batch: int, device: torch.device) -> Tensor | None:
        """Inverted-dropout masks for a batch, or None when dropout is off."""
        if self.dropout == 0.0:
            return None
        keep = 1.0 - self.dropout
        masks = torch.empty((batch, *self.mask_shape), device=device).bernoulli_(keep)
        return masks.div_(keep)

    def _trunk(self, index: int, x: Tensor, masks: Tensor | None) -> Tensor:
        # F.linear rather than layer(x): module-call hooks cost more than a 64-wide matmul.
        for j, layer in enumerate(self.trunks[index]):
            x = self.activation(F.linear(x, layer.weight, layer.bias))
            if masks is not None:
                x = x * masks[:, index * self.depth + j]
        return x

    def forward(self, obs: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Policy head output [B, outputs] and values [B]; masks=None: no dropout."""
        hidden = self._trunk(0, obs, masks)
        value_hidden = hidden if self.shared else self._trunk(1, obs, masks)
        logits = F.linear(hidden, self.policy_head.weight, self.policy_head.bias)
        values = F.linear(value_hidden, self.value_head.weight, self.value_head.bias)
        return logits, values.squeeze(-1)
