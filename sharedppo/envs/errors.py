"""What goes wrong in the user's env, said as such.

An exception raised by the env's own code (its constructor, ``reset``, ``step``) is the
user's: it keeps its traceback into the user's file, and sharedppo adds one note saying which
phase failed. Only what sharedppo can tell for certain is its own one-line refusal: keywords
the env's constructor does not take (checked against its signature before it is called) and
an env that is not a single-agent gymnasium env.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from ..config import ConfigError, EnvConfig

# What gymnasium's make says when the entry point returned something that is no gymnasium.Env.
NOT_AN_ENV = "must inherit from the gymnasium.Env class"
# gymnasium's make re-raises a constructor's TypeError as a new one saying this.
_CREATOR = "was raised from the environment creator"
# Base classes of PettingZoo's two APIs.
_MULTI_AGENT = ("AECEnv", "ParallelEnv")


def in_phase(err: BaseException, env_id: str | None, phase: str) -> BaseException:
    """The env's own exception (the one gymnasium's make wrapped, where it did), with a
    note naming the phase: raise what this returns to keep its traceback."""
    cause = err.__cause__
    if isinstance(err, TypeError) and _CREATOR in str(err) and isinstance(cause, TypeError):
        err = cause
    env = f"env.id={env_id!r}" if env_id else "the env"
    err.add_note(f"sharedppo: {env} raised this while {phase} (the traceback above is the env's)")
    return err


def _creator(spec: gym.envs.registration.EnvSpec) -> Any:
    entry = spec.entry_point
    try:
        return entry if callable(entry) else load_env_creator(entry)
    except Exception:  # gymnasium's make reports a bad entry point itself
        return None


def not_single_agent(env_id: str, what: str) -> str:
    return (
        f"env.id={env_id!r} is not a single-agent gymnasium.Env ({what}); sharedppo trains "
        "gymnasium's API. A multi-agent env (PettingZoo's AECEnv/ParallelEnv API) needs a "
        "single-agent view first, e.g. one agent against fixed opponents in a gymnasium.Env"
    )


def check_env_entry(spec: gym.envs.registration.EnvSpec, cfg: EnvConfig) -> None:
    """Refuse, before the env is made, a multi-agent env class and env.kwargs its
    constructor's signature does not take; anything else is left to the constructor."""
    creator = _creator(spec)
    if creator is None:
        return
    if inspect.isclass(creator):
        bases = {base.__name__ for base in creator.__mro__}
        if bases & set(_MULTI_AGENT) or hasattr(creator, "possible_agents"):
            raise ConfigError(not_single_agent(cfg.id, f"{creator.__name__} is multi-agent"))
    if not cfg.kwargs:
        return
    try:
        signature = inspect.signature(creator)
    except (TypeError, ValueError):  # a builtin or C extension: its constructor will tell
        return
    try:
        signature.bind(**{**(spec.kwargs or {}), **dict(cfg.kwargs)})
    except TypeError as err:
        raise ConfigError(
            f"env.kwargs={dict(cfg.kwargs)!r} were refused by env.id={cfg.id!r}: {err}"
        ) from None
