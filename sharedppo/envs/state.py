"""Environment state for exact resume.

Checkpoints load with weights_only=True, so an env cannot be pickled into one. Instead its
attributes that are plain data (numpy arrays of any dtype but object, numbers, strings, RNG
states, containers of those) are walked through the wrapper chain and sub-envs and stored
as tensors and primitives. That is the whole state of a numpy-simulated env (classic
control, toy text); what is constant by construction (spaces, the spec, functions) is left
to the rebuilt env, and anything else (an env whose state lives in C objects: Box2D,
MuJoCo) is listed in ``skipped``: resume then continues those from the rebuilt env, which is
inexact, and the run says so rather than failing.
"""

from __future__ import annotations

import enum
import types
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

from .spaces import Part

_ENV_TYPES = (gym.Env, gym.Wrapper, VectorEnv)
_PLAIN = (bool, int, float, str, bytes, type(None))
# Built from the config or the code alone, so the rebuilt env already has them.
_CONSTANT = (gym.envs.registration.EnvSpec, type, types.ModuleType, enum.Enum, Part)


class EnvStateError(Exception):
    """An env attribute a checkpoint holds could not be set back (one line)."""


def _plain(value: Any, depth: int = 0) -> bool:
    """Data a weights_only checkpoint holds as it is: primitives in lists, tuples, dicts."""
    if isinstance(value, _PLAIN):  # numpy's float64 is a float, but no plain one to torch.load
        return not isinstance(value, np.generic)
    if depth > 8:
        return False
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _array(value: np.ndarray) -> tuple:
    """A numeric array as a tensor; any other dtype (bytes, str, structured, ...) as its raw
    bytes and dtype (FrozenLake's and Taxi's maps are bytes arrays)."""
    try:
        return ("array", torch.from_numpy(value.copy()))
    except TypeError:
        raw = torch.frombuffer(bytearray(np.ascontiguousarray(value).tobytes()), dtype=torch.uint8)
        return ("buffer", raw, np.lib.format.dtype_to_descr(value.dtype), list(value.shape))


def _one(value: Any, path: str, skipped: list[str]) -> tuple | None:
    """How one attribute is stored, or None where it is left to the rebuilt env."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            skipped.append(f"{path} (numpy array of Python objects)")
            return None
        return _array(value)
    if isinstance(value, np.random.Generator):
        return ("rng", value.bit_generator.state)
    if isinstance(value, gym.Space):  # constant but for its RNG, where the env samples it
        rngs = _space_rngs(value)
        return ("space", rngs) if rngs else None
    if isinstance(value, np.generic):
        return ("scalar", value.item()) if _plain(value.item()) else None
    if _plain(value):
        return ("value", value)
    if isinstance(value, _ENV_TYPES):
        return ("env", capture_state(value, skipped, path))
    if isinstance(value, list) and value and all(isinstance(v, _ENV_TYPES) for v in value):
        return ("envs", [capture_state(v, skipped, f"{path}[{i}]") for i, v in enumerate(value)])
    if isinstance(value, _CONSTANT) or callable(value) or path.endswith(".metadata"):
        return None
    if isinstance(value, (list, tuple, dict)):  # e.g. a vector env's per-env observations
        return _container(value, path, skipped)
    skipped.append(f"{path} ({type(value).__name__})")
    return None


def _space_rngs(space: gym.Space) -> list:
    """The states of a space's RNG and its sub-spaces' (None where never drawn from)."""
    rng = getattr(space, "_np_random", None)
    subs = space.spaces if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)) else []
    subs = subs.values() if isinstance(subs, dict) else subs
    own = None if rng is None else rng.bit_generator.state
    inner = [_space_rngs(sub) for sub in subs]
    return [own, inner] if own is not None or any(inner) else []


def _restore_space(space: gym.Space, rngs: list) -> None:
    own, inner = rngs
    if own is not None:
        space.np_random.bit_generator.state = own
    subs = space.spaces if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)) else []
    subs = subs.values() if isinstance(subs, dict) else subs
    for sub, sub_rngs in zip(subs, inner, strict=True):
        if sub_rngs:
            _restore_space(sub, sub_rngs)


def _container(value: list | tuple | dict, path: str, skipped: list[str]) -> tuple | None:
    """A container of arrays and plain data, item by item; only functions (gymnasium's
    env_fns): left to the rebuilt env."""
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    inner: list[str] = []
    keys, items = [], []
    for key, item in pairs:
        if not _plain(key):
            inner.append(path)
            break
        keys.append(key)
        items.append(_one(item, f"{path}[{key!r}]", inner))
    if not inner and all(item is not None for item in items):
        kind = "dict" if isinstance(value, dict) else type(value).__name__
        return ("seq", items, kind, keys)
    if not inner and all(item is None for item in items):
        return None
    skipped.append(f"{path} ({type(value).__name__})")
    return None


def capture_state(obj: Any, skipped: list[str] | None = None, path: str = "env") -> dict:
    """The plain-data attributes of ``obj`` and its wrapped and sub-envs; ``skipped`` collects
    the attributes that may hold state but cannot be stored (resume is inexact for them)."""
    skipped = [] if skipped is None else skipped
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        try:
            stored = _one(value, f"{path}.{key}", skipped)
        except Exception as err:  # an attribute of an odd kind must not cost the checkpoint
            skipped.append(f"{path}.{key} ({type(err).__name__}: {err})")
            continue
        if stored is not None:
            out[key] = stored
    return out


def restore_state(obj: Any, state: dict[str, Any], path: str = "env") -> None:
    for key, (kind, value, *extra) in state.items():
        try:
            _restore(obj, key, kind, value, extra, f"{path}.{key}")
        except EnvStateError:
            raise
        except Exception as err:
            raise EnvStateError(
                f"the checkpoint's env attribute {path}.{key} could not be restored "
                f"({type(err).__name__}: {err}); is the env the one that was trained?"
            ) from None


def _sequence(items: list, kind: str, keys: list) -> list | tuple | dict:
    holder = types.SimpleNamespace()
    for i, (item_kind, value, *extra) in enumerate(items):
        _restore(holder, str(i), item_kind, value, extra, "")
    out = [getattr(holder, str(i)) for i in range(len(items))]
    if kind == "dict":
        return dict(zip(keys, out, strict=True))
    return tuple(out) if kind == "tuple" else out


def _restore(obj: Any, key: str, kind: str, value: Any, extra: list, path: str) -> None:
    current = getattr(obj, key, None)
    if kind == "array":
        setattr(obj, key, value.numpy().copy())
    elif kind == "buffer":
        dtype = np.lib.format.descr_to_dtype(extra[0])
        array = np.frombuffer(value.numpy().tobytes(), dtype=dtype).reshape(extra[1])
        setattr(obj, key, array.copy())
    elif kind == "rng":
        if not isinstance(current, np.random.Generator):
            current = np.random.Generator(np.random.PCG64())
            setattr(obj, key, current)
        current.bit_generator.state = value
    elif kind == "scalar":
        setattr(obj, key, type(current)(value) if isinstance(current, np.generic) else value)
    elif kind == "value":
        setattr(obj, key, value)
    elif kind == "space" and isinstance(current, gym.Space):
        _restore_space(current, value)
    elif kind == "seq":
        setattr(obj, key, _sequence(value, *extra))
    elif kind == "env" and current is not None:
        restore_state(current, value, path)
    elif kind == "envs" and isinstance(current, list) and len(current) == len(value):
        for i, (env, sub) in enumerate(zip(current, value, strict=True)):
            restore_state(env, sub, f"{path}[{i}]")
