"""The actor-critic: one MLP trunk shared by a categorical policy head and a value head.

Dropout is applied with explicit masks instead of ``nn.Dropout``: the masks drawn when the
agent acts are stored with the transition and reused when it learns, so the PPO ratio
compares the same sub-network before and after the update (and is exactly 1 before it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import NetworkConfig

_ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu}


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, num_actions: int, cfg: NetworkConfig) -> None:
        super().__init__()
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
        self.policy_head = nn.Linear(cfg.width, num_actions)
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
        """Logits [B, A] and values [B]; masks=None is the mean network (no dropout)."""
        hidden = self._trunk(0, obs, masks)
        value_hidden = hidden if self.shared else self._trunk(1, obs, masks)
        logits = F.linear(hidden, self.policy_head.weight, self.policy_head.bias)
        values = F.linear(value_hidden, self.value_head.weight, self.value_head.bias)
        return logits, values.squeeze(-1)


# Below this many rows Gumbel-max (fewest ops) is fastest; above it the inverse CDF is, since
# torch's exponential_ is several times slower per number than rand on CPU.
INVERSE_CDF_MIN_ROWS = 256


def sample_categorical(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Draw actions and their log-probs without building a torch.distributions object.

    Small batches: Gumbel-max in its exponential form, argmax(p / E) with E ~ Exp(1).
    Large batches: inverse CDF, the number of cumulative probabilities below U ~ U[0, 1).
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    if logits.shape[0] < INVERSE_CDF_MIN_ROWS:
        actions = (probs / torch.empty_like(probs).exponential_()).argmax(dim=-1)
    else:
        u = torch.rand((*probs.shape[:-1], 1), dtype=probs.dtype, device=probs.device)
        # The clamp guards the last cumulative probability rounding below U.
        actions = (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)
    return actions, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def categorical_entropy(log_probs: Tensor) -> Tensor:
    """Entropy of each row, from normalised log-probabilities."""
    return -(log_probs.exp() * log_probs).sum(-1)


def categorical_logp_entropy(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probs of the given actions and the entropy of each row's distribution."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1), categorical_entropy(log_probs)
