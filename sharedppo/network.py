"""The actor-critic: one MLP trunk shared by a policy head and a value head.

Dropout is applied with explicit masks instead of ``nn.Dropout``: the masks drawn when the
agent acts are stored with the transition and reused when it learns, so the PPO ratio
compares the same sub-network before and after the update (and is exactly 1 before it).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigError, NetworkConfig
from .policy import make_distribution

_ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu}


def nature_convs(channels: int) -> nn.Sequential:
    """The Nature-DQN convolutions: 32 8x8/4, 64 4x4/2, 64 3x3/1, ReLU after each."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
    )


class ActorCritic(nn.Module):
    def __init__(
        self,
        obs_shape: tuple[int, ...] | int,
        action_space: gym.Space | int,
        cfg: NetworkConfig,
    ) -> None:
        super().__init__()
        obs_shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        if isinstance(action_space, int):
            action_space = gym.spaces.Discrete(action_space)
        # The distribution follows the action space; a Gaussian's log-std lives in it.
        self.dist = make_distribution(action_space, cfg.log_std_init)
        self.shared = cfg.shared
        self.dropout = float(cfg.dropout)
        num_trunks = 1 if cfg.shared else 2
        self.convs: nn.ModuleList | None = None
        if cfg.type == "nature_cnn":
            if len(obs_shape) != 3:
                raise ConfigError(
                    f"network.type=nature_cnn needs image observations (C, H, W); the env "
                    f"gives shape {obs_shape}"
                )
            # Convolutions, then one 512-unit ReLU layer: the MLP path below with depth 1.
            self.convs = nn.ModuleList(nature_convs(obs_shape[0]) for _ in range(num_trunks))
            with torch.no_grad():
                in_dim = self.convs[0](torch.zeros(1, *obs_shape)).shape[1]
            self.depth, self.width, self.activation = 1, 512, F.relu
        else:
            in_dim = int(np.prod(obs_shape))
            self.depth, self.width = cfg.depth, cfg.width
            self.activation = _ACTIVATIONS[cfg.activation]
        self.trunks = nn.ModuleList(
            nn.ModuleList(
                nn.Linear(in_dim if i == 0 else self.width, self.width) for i in range(self.depth)
            )
            for _ in range(num_trunks)
        )
        self.policy_head = nn.Linear(self.width, self.dist.num_outputs)
        self.value_head = nn.Linear(self.width, 1)
        self._init(cfg.init)
        # The forward pass reads plain lists of (weight, bias): nn.Module attribute lookups
        # and ModuleList indexing cost more than a 64-wide layer on a few rows (about half of
        # an 8-row forward). They hold the Parameter objects themselves, which loading a
        # state dict, .to(device) and the flat optimizer buffer all update in place.
        self.layers = [[(layer.weight, layer.bias) for layer in trunk] for trunk in self.trunks]
        self.heads = (
            (self.policy_head.weight, self.policy_head.bias),
            (self.value_head.weight, self.value_head.bias),
        )

    def _init(self, scheme: str) -> None:
        # Orthogonal with gain sqrt(2) in the trunk, 0.01 on the policy head (near-uniform
        # first policy) and 1 on the value head: the PPO implementation-details recipe.
        if scheme == "torch":
            return  # nn.Linear / nn.Conv2d have already initialised themselves
        for trunk in self.trunks:
            for layer in trunk:
                self._init_layer(layer, scheme, math.sqrt(2))
        for convs in self.convs or []:
            for layer in convs:
                if isinstance(layer, nn.Conv2d):
                    self._init_layer(layer, scheme, math.sqrt(2))
        self._init_layer(self.policy_head, scheme, 0.01)
        self._init_layer(self.value_head, scheme, 1.0)

    @staticmethod
    def _init_layer(layer: nn.Linear | nn.Conv2d, scheme: str, gain: float) -> None:
        if scheme == "orthogonal":
            nn.init.orthogonal_(layer.weight, gain)
        else:  # xavier
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
        if self.convs is not None:
            x = self.convs[index](x / 255.0)  # frames arrive as 0..255
        elif x.dim() > 2:
            x = x.flatten(1)
        activation, depth = self.activation, self.depth
        for j, (weight, bias) in enumerate(self.layers[index]):
            x = activation(F.linear(x, weight, bias))
            if masks is not None:
                x = x * masks[:, index * depth + j]
        return x

    def forward(self, obs: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Policy head output [B, outputs] and values [B]; masks=None: no dropout."""
        hidden = self._trunk(0, obs, masks)
        value_hidden = hidden if self.shared else self._trunk(1, obs, masks)
        policy, value = self.heads
        return F.linear(hidden, *policy), F.linear(value_hidden, *value).squeeze(-1)
