"""Dict observations: flattened into one float vector at the env boundary, with a layout.

The rollout memory, the minibatches and the normalisers keep handling one array per step;
the network reads the layout to split the vector back into its keys (image keys to the CNN,
vector keys to a linear layer each). An ``action_mask`` key is not an observation: it moves
to ``info["action_mask"]``, where the rollout looks for masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError

MASK_KEY = "action_mask"


@dataclass(frozen=True)
class Part:
    key: str
    shape: tuple[int, ...]  # as the network reads it (an image: C, H, W)
    start: int
    end: int
    image: bool  # to the CNN; else a linear layer
    scale: float = 1.0  # uint8 images arrive as 0..255
    ndim: int = 1  # dims of one observation of this key as the env gives it
    onehot_start: int | None = None  # Discrete: one-hot of (value - start)


# The Nature CNN's 8x8/4, 4x4/2, 3x3/1 convolutions need at least this many pixels a side.
MIN_IMAGE_SIDE = 36


Layout = tuple[Part, ...]


def _part(key: str, space: gym.Space, start: int) -> Part:
    if isinstance(space, gym.spaces.Box):
        shape = tuple(space.shape)
        image = len(shape) == 3 and min(shape[1:]) >= MIN_IMAGE_SIDE
        scale = 1 / 255 if image and space.dtype == np.uint8 else 1.0
        return Part(key, shape, start, start + int(np.prod(shape)), image, scale, len(shape))
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return Part(key, (n,), start, start + n, False, ndim=0, onehot_start=int(space.start))
    if isinstance(space, gym.spaces.MultiBinary):
        size = int(np.prod(space.n))
        return Part(key, (size,), start, start + size, False, ndim=len(space.shape))
    raise ConfigError(
        f"observation key {key!r} has space {space}; Dict observations may hold Box, Discrete "
        "and MultiBinary entries"
    )


def dict_layout(space: gym.spaces.Dict) -> Layout:
    parts: list[Part] = []
    for key, sub in space.spaces.items():
        if key != MASK_KEY:
            parts.append(_part(key, sub, parts[-1].end if parts else 0))
    if not parts:
        raise ConfigError(f"observation space {space} holds no observation besides a mask")
    return tuple(parts)


def flatten(layout: Layout, obs: dict[str, Any]) -> np.ndarray:
    """One observation dict (or a batch of them, leading dims kept) as a float32 vector."""
    pieces = []
    for part in layout:
        value = np.asarray(obs[part.key])
        if part.onehot_start is not None:
            pieces.append(np.eye(part.shape[0], dtype=np.float32)[value - part.onehot_start])
        else:
            lead = value.shape[: value.ndim - part.ndim]
            pieces.append(value.reshape(*lead, -1).astype(np.float32))
    return np.concatenate(pieces, axis=-1)


class FlattenDict(gym.Wrapper):
    """Dict observations as one float32 vector; the ``action_mask`` key goes to info."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        self.layout = dict_layout(space)
        size = self.layout[-1].end
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def _convert(self, obs: dict[str, Any], info: dict[str, Any]) -> tuple[np.ndarray, dict]:
        if MASK_KEY in obs:
            info = dict(info, action_mask=np.asarray(obs[MASK_KEY]))
        return flatten(self.layout, obs), info

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        return self._convert(*self.env.reset(**kwargs))

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._convert(obs, info)
        return obs, reward, terminated, truncated, info
