"""The one environment builder: training, periodic evaluation and video all come from here.

Every vector env made here uses gymnasium's next-step autoreset (the default of gymnasium
1.x and the only mode its numpy-vectorised CartPole offers): after a step that ends an
episode, the observation returned is the episode's final observation, and the next step
ignores its action and returns the reset observation with reward 0. The rollout therefore
marks that reset step as not a transition (see ``memory.RolloutMemory.valid``).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from ..config import ConfigError, EnvConfig
from ..extras import prepare_video, require
from .atari import atari_wrapper
from .envpool import make_pool, reward_threshold
from .errors import NOT_AN_ENV, check_env_entry, in_phase, not_single_agent
from .shaping import ReachStepsReward
from .spaces import FlattenObs, Layout, needs_layout, space_layout
from .vector import make_lean

# Bars for ids whose registry entry has no reward_threshold (docs/benchmarks.md uses them).
TARGETS = {"Pendulum-v1": -250.0}


def resolve_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The spec of ``env.id``. ``module:EnvId`` imports the module first (gymnasium's
    convention), also from the working directory, so a user's own envs register themselves."""
    module, _, name = env_id.rpartition(":")
    if module:
        _importable_from_cwd()
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"env.id={env_id!r}: module {module!r} could not be imported ({err}); run from "
                "the folder that holds it or put that folder on PYTHONPATH"
            ) from None
        except Exception as err:
            raise ConfigError(
                f"env.id={env_id!r}: importing {module!r} failed ({type(err).__name__}: {err})"
            ) from None
    elif env_id.startswith("ALE/"):
        require("atari", f"env.id={env_id!r}")
        import ale_py

        gym.register_envs(ale_py)
    try:
        return gym.spec(name)
    except gym.error.Error as err:
        if module:
            raise ConfigError(
                f"env.id={env_id!r}: module {module!r} registers no env {name!r} ({err})"
            ) from None
        if env_id.startswith(API_NAMESPACE):  # a class handed to sharedppo.train
            raise ConfigError(
                f"env.id={env_id!r} was registered by sharedppo.train(env=...) in the process "
                "that trained it: pass the same env to sharedppo.load(JOB, env=...), or "
                "register your env under an id and use env.id=module:EnvId-v0 (which the CLI "
                "can import)"
            ) from None
        raise ConfigError(
            f"env.id={env_id!r} is not a registered gymnasium id ({err}); e.g. CartPole-v1, "
            "Acrobot-v1, or your own as module:EnvId-v0"
        ) from None


# The namespace under which sharedppo.train(env=Class) registers an env class or factory.
API_NAMESPACE = "sharedppo_api/"


def _importable_from_cwd() -> None:
    # As `python -m` would: the user's modules sit in the folder they run from.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def user_wrappers(entries: list[Any]) -> list[Any]:
    """``env.wrappers`` as callables env -> wrapped env; one line for an entry that fails,
    naming the entry, whether it fails to load or fails on the env."""
    from hydra.utils import instantiate

    _importable_from_cwd()
    out = []
    for i, entry in enumerate(entries):
        target = entry.get("_target_") if isinstance(entry, dict) else None
        if not target:
            raise ConfigError(
                f"env.wrappers[{i}]={entry!r} is not allowed: give {{_target_: "
                "module.Wrapper, ...its arguments}"
            )
        name = f"env.wrappers[{i}]._target_={target!r}"
        _check_target(name, target)
        try:
            out.append(_named(name, instantiate(entry, _partial_=True)))
        except Exception as err:
            cause = err.__cause__ or err
            raise ConfigError(
                f"{name} cannot be used ({type(cause).__name__}: {str(cause).splitlines()[0]})"
            ) from None
    return out


def _check_target(name: str, target: str) -> None:
    """Say which half of module.Name is missing (Hydra's own message names neither)."""
    module, _, attr = target.rpartition(".")
    try:
        found = hasattr(importlib.import_module(module), attr) if module else False
    except Exception as err:
        raise ConfigError(
            f"{name}: module {module!r} could not be imported ({type(err).__name__}: {err})"
        ) from None
    if not found:
        raise ConfigError(f"{name}: module {module!r} has no {attr!r}")


def _named(name: str, wrap: Any) -> Any:
    """The wrapper, its failures on a sub-env blamed on its own env.wrappers entry."""

    def apply(env: gym.Env) -> gym.Env:
        try:
            return wrap(env)
        except Exception as err:
            raise ConfigError(f"{name} failed on the env: {type(err).__name__}: {err}") from None

    return apply


def target_return(cfg: EnvConfig) -> float | None:
    """``env.target_return``, else the id's registry threshold, else sharedppo's bar for it."""
    if cfg.target_return is not None:
        return cfg.target_return
    if cfg.backend == "envpool":
        # EnvPool's registry, so that ALE ids need no ale-py to be resolved.
        threshold = reward_threshold(cfg.id)
        return threshold if threshold is not None else TARGETS.get(cfg.id)
    spec = resolve_env_id(cfg.id)
    if spec.reward_threshold is not None:
        return float(spec.reward_threshold)
    return TARGETS.get(spec.id)


def make_envs(
    cfg: EnvConfig,
    seed: int,
    num_envs: int | None = None,
    video_dir: Path | None = None,
) -> tuple[VectorEnv, np.ndarray, dict[str, Any]]:
    """Build the vector env of an env config group and reset it; returns (envs, first obs,
    reset info).

    Training, evaluation (``num_envs``: fewer copies) and video (``video_dir``: one copy,
    rendered and recorded before any wrapper) get the same env, wrappers included.
    ``env.backend=envpool`` builds EnvPool's vector env instead (``envs.envpool``), except
    for video: EnvPool does not render, so the recorded episodes come from the gymnasium path,
    whose observation space is the same (tests/test_envpool.py checks it).
    """
    if cfg.backend == "envpool" and video_dir is None:
        return _finish(make_pool(cfg, seed, num_envs or cfg.num_envs), cfg, seed)
    spec = resolve_env_id(cfg.id)
    mode = cfg.vectorization_mode
    if mode == "auto":
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    wrappers = []
    if video_dir is not None:
        prepare_video()
        wrappers.append(_recorder(video_dir))
        kwargs["render_mode"] = "rgb_array"
        num_envs, mode = 1, "sync"
    if cfg.atari.enabled:
        kwargs.setdefault("frameskip", 1)  # the preprocessing does the skipping
        wrappers.append(atari_wrapper(cfg.atari))
    wrappers += user_wrappers(list(cfg.wrappers))
    check_env_entry(spec, cfg)
    count = num_envs or cfg.num_envs
    try:
        envs = _make_vec(spec.id, count, mode, wrappers, kwargs)
        space = envs.single_observation_space
        if needs_layout(space):
            # Rare enough to build twice: the space is known only once an env exists.
            envs.close()
            layout = space_layout(space)
            envs = _make_vec(spec.id, count, mode, [*wrappers, FlattenObs], kwargs)
            envs.metadata = dict(envs.metadata, obs_layout=layout)
    except ConfigError:  # a wrapper's own failure, or a space refused: already named
        raise
    except gym.error.DependencyNotInstalled as err:
        hint = "; pip install 'sharedppo[video]'" if video_dir is not None else ""
        raise ConfigError(f"env.id={cfg.id!r} could not be made: {err}{hint}") from None
    except TypeError as err:
        if NOT_AN_ENV in str(err):
            raise ConfigError(not_single_agent(cfg.id, str(err).split(". ")[0])) from None
        raise in_phase(err, cfg.id, _constructing(cfg)) from None
    except gym.error.Error as err:  # gymnasium's own refusal, not the env's code
        raise ConfigError(
            f"env.id={cfg.id!r} could not be made with env.vectorization_mode={mode!r}: {err}"
        ) from None
    except Exception as err:  # the user's code: its own traceback, with the phase noted
        raise in_phase(err, cfg.id, _constructing(cfg)) from None
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        raise ConfigError(f"env.id={cfg.id!r} uses {autoreset}; sharedppo expects NEXT_STEP")
    return _finish(envs, cfg, seed)


def _finish(
    envs: VectorEnv, cfg: EnvConfig, seed: int
) -> tuple[VectorEnv, np.ndarray, dict[str, Any]]:
    if cfg.reach_reward_steps is not None:
        envs = ReachStepsReward(envs, cfg.reach_reward_steps)
    envs.action_space.seed(seed)
    try:
        obs, info = envs.reset(seed=seed)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        envs.close()
        if "unpack" in str(err) or "not iterable" in str(err):  # not gymnasium's reset API
            raise ConfigError(
                f"env.id={cfg.id!r} is not allowed: its reset() must return (observation, "
                f"info) as gymnasium's API says ({type(err).__name__}: "
                f"{str(err).splitlines()[0]})"
            ) from None
        raise in_phase(err, cfg.id, f"resetting (reset(seed={seed}))") from None
    except Exception as err:
        envs.close()
        raise in_phase(err, cfg.id, f"resetting (reset(seed={seed}))") from None
    return envs, obs, info


def action_mask(info: dict[str, Any], num_envs: int, num_actions: int) -> np.ndarray | None:
    """The valid actions the envs put in ``info["action_mask"]`` (gymnasium's and
    PettingZoo's convention), as bool [num_envs, num_actions]; None where there is none."""
    mask = info.get("action_mask")
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (num_envs, num_actions) or mask.dtype not in (np.bool_, np.int8, np.uint8):
        raise ConfigError(
            f"info['action_mask'] has shape {mask.shape} and dtype {mask.dtype}; sharedppo "
            f"needs one bool or int8 entry per action: shape ({num_envs}, {num_actions})"
        )
    return mask.astype(bool, copy=False)


def _constructing(cfg: EnvConfig) -> str:
    """The phase, with the keywords the constructor was given (the likely culprits)."""
    given = f" with env.kwargs={dict(cfg.kwargs)!r}" if cfg.kwargs else ""
    return f"constructing the env{given}"


def _make_vec(
    env_id: str, num_envs: int, mode: str, wrappers: list[Any], kwargs: dict[str, Any]
) -> VectorEnv:
    if wrappers and mode == "vector_entry_point":
        mode = "sync"  # per-env wrappers need per-env instances
    envs = gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode=mode, wrappers=wrappers or None, **kwargs
    )
    return make_lean(envs)


def obs_layout(envs: VectorEnv) -> Layout | None:
    """How the observation was flattened (``spaces.FlattenObs``), or None."""
    return envs.metadata.get("obs_layout")


def _recorder(video_dir: Path) -> Any:
    from gymnasium.wrappers import RecordVideo

    def wrap(env: gym.Env) -> gym.Env:
        return RecordVideo(env, str(video_dir), episode_trigger=lambda _: True)

    return wrap
