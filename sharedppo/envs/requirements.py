"""The packages a composed config needs, checked before anything is built.

Each missing one is one line naming ``pip install "sharedppo[EXTRA]"`` (see ``extras``). It
lives with the envs because it asks each backend what its ids need.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym

from ..config import ConfigError
from ..extras import ENV_MODULES, require
from .build import resolve_env_id
from .envpool import check as check_envpool


def check_env(env_id: str) -> None:
    """The id resolves (its module imported, for ``module:EnvId``) and the extra its gymnasium
    module needs is installed."""
    what = f"env.id={env_id!r}"
    spec = resolve_env_id(env_id)
    if not isinstance(spec.entry_point, str):
        return
    module = spec.entry_point.partition(":")[0]
    feature = next(
        (f for prefix, f in ENV_MODULES.items() if f"{module}.".startswith(f"{prefix}.")),
        None,
    )
    if feature is None:
        return
    # Importing the env's module also catches what it imports beyond the list (glfw, say).
    require(feature, what, module)


# Keywords gymnasium.make and make_vec take themselves, whatever the env's constructor takes.
MAKE_KWARGS = {"num_envs", "render_mode", "max_episode_steps", "autoreset", "disable_env_checker"}


def check_kwargs(env: Any) -> None:
    """Each ``env.kwargs`` key is one the constructor that build.make_envs will call takes:
    a sweep over a misspelt keyword is refused before its first job, not in each job."""
    if not env.kwargs or env.backend != "gymnasium":
        return
    spec = resolve_env_id(env.id)
    wrapped = bool(env.wrappers) or env.atari.enabled  # wrappers need per-env instances
    vector = env.vectorization_mode in ("auto", "vector_entry_point") and not wrapped
    target = spec.vector_entry_point if vector and spec.vector_entry_point else spec.entry_point
    try:
        load = gym.envs.registration.load_env_creator
        maker = load(target) if isinstance(target, str) else target
        params = inspect.signature(maker).parameters.values()
    except Exception:  # an entry point we cannot inspect is left to the env itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = {p.name for p in params} | MAKE_KWARGS | set(spec.kwargs)
    unknown = sorted(set(env.kwargs) - known)
    if unknown:
        raise ConfigError(
            f"env.kwargs.{unknown[0]} is not allowed: it would be refused by env.id={env.id!r}, "
            "which takes " + ", ".join(sorted(known - MAKE_KWARGS))
        )


def check_extras(cfg: Any) -> None:
    """Everything a composed config (DictConfig or ``config.Config``) needs is installed.

    Raises ConfigError with one line naming ``pip install "sharedppo[EXTRA]"``; call it before
    building anything, so a missing package never surfaces after a training run.
    """
    if cfg.env.backend == "envpool":
        check_envpool(cfg.env)
    if cfg.env.backend == "gymnasium" or cfg.eval.video:
        check_env(cfg.env.id)  # video is recorded on the gymnasium path
    check_kwargs(cfg.env)
    if cfg.eval.video:
        require("video", "eval.video=true")
