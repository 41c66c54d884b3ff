"""Observations other than a flat vector: flattened into one float vector at the env boundary,
with a layout.

The rollout memory, the minibatches and the normalisers keep handling one array per step;
the network reads the layout to split the vector back into its parts (images to a conv
encoder, everything else to a linear layer each). Discrete and MultiDiscrete parts are
one-hot encoded here; Tuple and Dict observations (nested too) are encoded per part. An
``action_mask`` key of a top-level Dict is not an observation: it moves to
``info["action_mask"]``, where the rollout looks for masks. A flat Box and a CHW image big
enough for the Nature CNN need no layout: they reach the network as they are.
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
    key: str  # "obs" for the whole observation; a Dict key, a Tuple index, "a.b" when nested
    shape: tuple[int, ...]  # as the network reads it (an image: C, H, W)
    start: int
    end: int
    image: bool  # to a conv encoder; else a linear layer
    scale: float = 1.0  # uint8 images arrive as 0..255
    raw: tuple[int, ...] = ()  # one observation of this part as the env gives it
    onehot: tuple[int, ...] | None = None  # Discrete/MultiDiscrete: sizes of the one-hots
    starts: tuple[int, ...] = ()  # ... and the value each one-hot starts at
    path: tuple[str | int, ...] = ()  # where the part sits in the observation
    hwc: bool = False  # an image given as H, W, C: transposed to C, H, W by the encoder

    @property
    def ndim(self) -> int:
        return len(self.raw)


# The Nature CNN's 8x8/4, 4x4/2, 3x3/1 convolutions need at least this many pixels a side;
# smaller images get a small conv encoder (nn/encoders.py).
MIN_IMAGE_SIDE = 36

Layout = tuple[Part, ...]

_REFUSED = (
    "sharedppo encodes Box, Discrete, MultiDiscrete, MultiBinary, Tuple and Dict observations; "
    "drop it (a Dict key: env.wrappers=[{_target_:gymnasium.wrappers.FilterObservation,"
    "filter_keys:[...]}]) or turn it into one of those with your own ObservationWrapper"
)


def image_axes(shape: tuple[int, ...]) -> bool | None:
    """For a rank-3 Box: True for H, W, C, False for C, H, W (the channels are the smaller
    of the first and last axes, as for (84, 84, 4) frames or (7, 7, 3) grids; a tie is
    C, H, W); None for any other rank."""
    if len(shape) != 3:
        return None
    return shape[2] < shape[0]


def _box(key: str, path: tuple, space: gym.spaces.Box, start: int) -> Part:
    raw = tuple(int(s) for s in space.shape)
    size = int(np.prod(raw))
    hwc = image_axes(raw)
    if hwc is None:  # a vector, or a Box of any other rank: one linear layer reads it flat
        return Part(key, (size,), start, start + size, False, raw=raw, path=path)
    shape = (raw[2], raw[0], raw[1]) if hwc else raw
    scale = 1 / 255 if space.dtype == np.uint8 else 1.0
    return Part(key, shape, start, start + size, True, scale, raw, path=path, hwc=hwc)


def _onehot(key: str, path: tuple, space: gym.Space, start: int) -> Part:
    """Discrete (one value) or MultiDiscrete (one per entry): a one-hot per value."""
    discrete = isinstance(space, gym.spaces.Discrete)
    sizes = (int(space.n),) if discrete else tuple(int(n) for n in np.ravel(space.nvec))
    starts = tuple(int(s) for s in np.ravel(space.start))
    raw = () if discrete else tuple(int(s) for s in space.shape)
    end = start + sum(sizes)
    return Part(key, (end - start,), start, end, False, raw=raw, onehot=sizes, starts=starts,
                path=path)  # fmt: skip


def _parts(key: str, path: tuple, space: gym.Space, start: int) -> list[Part]:
    """The parts of ``space`` at ``key`` ("" for the whole observation)."""
    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, gym.spaces.Dict) else enumerate(space)
        parts: list[Part] = []
        for name, sub in items:
            sub_key = f"{key}.{name}" if key else str(name)
            parts += _parts(sub_key, (*path, name), sub, parts[-1].end if parts else start)
        if not parts:
            raise ConfigError(f"observation space {space} is empty: there is nothing to learn from")
        return parts
    where = f"observation key {key!r}" if key else "the observation"
    key = key or "obs"
    if isinstance(space, gym.spaces.Box):
        return [_box(key, path, space, start)]
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return [_onehot(key, path, space, start)]
    if isinstance(space, gym.spaces.MultiBinary):
        size = int(np.prod(space.n))
        raw = tuple(int(s) for s in space.shape)
        return [Part(key, (size,), start, start + size, False, raw=raw, path=path)]
    raise ConfigError(f"{where} has space {space}: {_REFUSED}")


def space_layout(space: gym.Space) -> Layout:
    """The layout of any encodable observation space (one line naming a space that is not)."""
    if isinstance(space, gym.spaces.Dict):
        kept = {key: sub for key, sub in space.spaces.items() if key != MASK_KEY}
        if not kept:
            raise ConfigError(f"observation space {space} holds no observation besides a mask")
        space = gym.spaces.Dict(kept)
    return tuple(_parts("", (), space, 0))


# The name the layout of Dict observations had; any space is taken now.
dict_layout = space_layout


def needs_layout(space: gym.Space) -> bool:
    """False for what reaches the network as it is: a Box that is no image, or a C, H, W image
    the Nature CNN fits (what network.type decides about, as for Atari frames)."""
    if not isinstance(space, gym.spaces.Box):
        return True
    hwc = image_axes(space.shape)
    return hwc is not None and (hwc or min(space.shape[1:]) < MIN_IMAGE_SIDE)


def _get(obs: Any, path: tuple) -> Any:
    for name in path:
        obs = obs[name]
    return obs


def flatten(layout: Layout, obs: Any) -> np.ndarray:
    """One observation (or a batch of them, leading dims kept) as a float32 vector."""
    pieces = []
    for part in layout:
        value = np.asarray(_get(obs, part.path))
        lead = value.shape[: value.ndim - part.ndim]
        if part.onehot is not None:
            codes = value.reshape(*lead, -1).astype(np.int64) - np.asarray(part.starts)
            for i, n in enumerate(part.onehot):
                pieces.append(np.eye(n, dtype=np.float32)[codes[..., i]])
        else:
            pieces.append(value.reshape(*lead, -1).astype(np.float32))
    return np.concatenate(pieces, axis=-1)


class FlattenObs(gym.Wrapper):
    """The observation as one float32 vector of its layout; a Dict's ``action_mask`` key goes
    to info."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.layout = space_layout(env.observation_space)
        size = self.layout[-1].end
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def _convert(self, obs: Any, info: dict[str, Any]) -> tuple[np.ndarray, dict]:
        if isinstance(obs, dict) and MASK_KEY in obs:
            info = dict(info, action_mask=np.asarray(obs[MASK_KEY]))
        return flatten(self.layout, obs), info

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        return self._convert(*self.env.reset(**kwargs))

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._convert(obs, info)
        return obs, reward, terminated, truncated, info


FlattenDict = FlattenObs  # the name it had when only Dict observations were flattened
