"""The encoder of Dict observations: each key encoded, the encodings concatenated.

Image keys go through the Nature-DQN convolutions, every other key through one linear layer
and the trunk's activation; the concatenation is what the shared trunk reads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..envs.spaces import Layout


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


class DictEncoder(nn.Module):
    def __init__(self, layout: Layout, width: int, activation: Callable[[Tensor], Tensor]):
        super().__init__()
        self.layout = layout
        self.activation = activation
        self.encoders = nn.ModuleList()
        self.out_dim = 0
        for part in layout:
            if part.image:
                encoder: nn.Module = nature_convs(part.shape[0])
                with torch.no_grad():
                    size = encoder(torch.zeros(1, *part.shape)).shape[1]
            else:
                encoder, size = nn.Linear(part.end - part.start, width), width
            self.encoders.append(encoder)
            self.out_dim += size

    def forward(self, x: Tensor) -> Tensor:
        features = []
        for part, encoder in zip(self.layout, self.encoders, strict=True):
            piece = x[:, part.start : part.end]
            if part.image:
                features.append(encoder(piece.reshape(-1, *part.shape) * part.scale))
            else:
                features.append(self.activation(encoder(piece)))
        return torch.cat(features, dim=-1)
