"""Environment state for exact resume.

Checkpoints load with weights_only=True, so an env cannot be pickled into one. Instead its
attributes that are plain data (numpy arrays, numbers, RNG states) are walked through the
wrapper chain and sub-envs and stored as tensors and primitives. That is the whole state of
a numpy-simulated env (classic control); an env whose state lives in C objects (Box2D,
MuJoCo) resumes from a fresh reset instead.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

_ENV_TYPES = (gym.Env, gym.Wrapper, VectorEnv)


def capture_state(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            out[key] = ("array", torch.from_numpy(value.copy()))
        elif isinstance(value, np.random.Generator):
            out[key] = ("rng", value.bit_generator.state)
        elif isinstance(value, np.generic):
            out[key] = ("scalar", value.item())
        elif isinstance(value, (bool, int, float)) or value is None:
            out[key] = ("value", value)
        elif isinstance(value, _ENV_TYPES):
            out[key] = ("env", capture_state(value))
        elif isinstance(value, list) and value and all(isinstance(v, _ENV_TYPES) for v in value):
            out[key] = ("envs", [capture_state(v) for v in value])
    return out


def restore_state(obj: Any, state: dict[str, Any]) -> None:
    for key, (kind, value) in state.items():
        current = getattr(obj, key, None)
        if kind == "array":
            setattr(obj, key, value.numpy().copy())
        elif kind == "rng":
            if not isinstance(current, np.random.Generator):
                current = np.random.Generator(np.random.PCG64())
                setattr(obj, key, current)
            current.bit_generator.state = value
        elif kind == "scalar":
            setattr(obj, key, type(current)(value) if isinstance(current, np.generic) else value)
        elif kind == "value":
            setattr(obj, key, value)
        elif kind == "env" and current is not None:
            restore_state(current, value)
        elif kind == "envs" and isinstance(current, list) and len(current) == len(value):
            for env, sub in zip(current, value, strict=True):
                restore_state(env, sub)
