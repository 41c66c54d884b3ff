"""The encoder of a laid-out observation (``envs.spaces``): each part encoded, the encodings
concatenated.

Image parts go through the Nature-DQN convolutions, or through a small conv stack where the
image is too small for them (under ``MIN_IMAGE_SIDE`` pixels a side: grids such as 7x7x3
symbolic views); H, W, C images are transposed first and uint8 ones scaled to [0, 1]. Every
other part goes through one linear layer and the trunk's activation. The concatenation is
what the shared trunk reads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..envs.spaces import MIN_IMAGE_SIDE, Layout, Part


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


def small_convs(channels: int, side: int) -> nn.Sequential:
    """For images under MIN_IMAGE_SIDE a side: 16 then 32 3x3 convolutions, padded so any
    size fits (a 7x7 grid keeps its cells), strided from 16 px up so the features stay few."""
    stride = 2 if side >= 16 else 1
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=stride, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=stride, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )


def image_convs(part: Part) -> nn.Sequential:
    """The conv encoder an image part gets: the Nature CNN where it fits."""
    channels, *sides = part.shape
    if min(sides) >= MIN_IMAGE_SIDE:
        return nature_convs(channels)
    return small_convs(channels, min(sides))


class DictEncoder(nn.Module):
    def __init__(self, layout: Layout, width: int, activation: Callable[[Tensor], Tensor]):
        super().__init__()
        self.layout = layout
        self.activation = activation
        self.encoders = nn.ModuleList()
        self.out_dim = 0
        for part in layout:
            if part.image:
                encoder: nn.Module = image_convs(part)
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
                if part.hwc:  # as the env gives it (H, W, C), then as the convs read it
                    channels, height, width = part.shape
                    image = piece.reshape(-1, height, width, channels).permute(0, 3, 1, 2)
                else:
                    image = piece.reshape(-1, *part.shape)
                features.append(encoder(image * part.scale))
            else:
                features.append(self.activation(encoder(piece)))
        return torch.cat(features, dim=-1)
