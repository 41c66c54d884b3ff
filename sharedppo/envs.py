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
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from .atari import atari_wrapper
from .config import ConfigError, EnvConfig


class ReachStepsReward(VectorWrapper):
    """The original blog's CartPole shaping: 1 on the step an episode reaches ``steps``, else 0.

    The environment's own reward is kept in ``info["env_reward"]`` so episode returns are
    still logged on the environment's scale.
    """

    def __init__(self, env: VectorEnv, steps: int) -> None:
        super().__init__(env)
        self.target = steps
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.prev_done = np.zeros(self.num_envs, dtype=bool)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.lengths[:] = 0
        self.prev_done[:] = False
        return self.env.reset(**kwargs)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.lengths = np.where(self.prev_done, 0, self.lengths + 1)
        self.prev_done = terminated | truncated
        info = dict(info, env_reward=reward)
        return obs, (self.lengths == self.target).astype(np.float32), terminated, truncated, info


# Bars for ids whose registry entry has no reward_threshold (docs/benchmarks.md uses them).
TARGETS = {"Pendulum-v1": -250.0}


def resolve_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The spec of ``env.id``. ``module:EnvId`` imports the module first (gymnasium's
    convention), also from the working directory, so a user's own envs register themselves."""
    module, _, name = env_id.rpartition(":")
    if module:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
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
        try:
            import ale_py
        except ImportError:
            raise ConfigError(
                f"env.id={env_id!r} needs ale-py; pip install 'sharedppo[atari]'"
            ) from None
        gym.register_envs(ale_py)
    try:
        return gym.spec(name)
    except gym.error.Error as err:
        if module:
            raise ConfigError(
                f"env.id={env_id!r}: module {module!r} registers no env {name!r} ({err})"
            ) from None
        raise ConfigError(
            f"env.id={env_id!r} is not a registered gymnasium id ({err}); e.g. CartPole-v1, "
            "Acrobot-v1, or your own as module:EnvId-v0"
        ) from None


def target_return(cfg: EnvConfig) -> float | None:
    """``env.target_return``, else the id's registry threshold, else sharedppo's bar for it."""
    if cfg.target_return is not None:
        return cfg.target_return
    spec = resolve_env_id(cfg.id)
    if spec.reward_threshold is not None:
        return float(spec.reward_threshold)
    return TARGETS.get(spec.id)


def make_envs(
    cfg: EnvConfig,
    seed: int,
    num_envs: int | None = None,
    video_dir: Path | None = None,
) -> tuple[VectorEnv, np.ndarray]:
    """Build the vector env of an env config group and reset it; returns (envs, first obs).

    Training, evaluation (``num_envs``: fewer copies) and video (``video_dir``: one copy,
    rendered and recorded before any wrapper) get the same env, wrappers included.
    """
    spec = resolve_env_id(cfg.id)
    mode = cfg.vectorization_mode
    if mode == "auto":
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    wrappers = []
    if video_dir is not None:
        wrappers.append(_recorder(video_dir))
        kwargs["render_mode"] = "rgb_array"
        num_envs, mode = 1, "sync"
    if cfg.atari.enabled:
        kwargs.setdefault("frameskip", 1)  # the preprocessing does the skipping
        wrappers.append(atari_wrapper(cfg.atari))
    if wrappers and mode == "vector_entry_point":
        mode = "sync"  # per-env wrappers need per-env instances
    try:
        envs = gym.make_vec(
            spec.id,
            num_envs=num_envs or cfg.num_envs,
            vectorization_mode=mode,
            wrappers=wrappers or None,
            **kwargs,
        )
    except gym.error.DependencyNotInstalled as err:
        hint = "; pip install 'sharedppo[video]'" if video_dir is not None else ""
        raise ConfigError(f"env.id={cfg.id!r} could not be made: {err}{hint}") from None
    except TypeError as err:
        raise ConfigError(
            f"env.kwargs={dict(cfg.kwargs)!r} were refused by env.id={cfg.id!r}: {err}"
        ) from None
    except (gym.error.Error, ValueError) as err:
        raise ConfigError(
            f"env.vectorization_mode={mode!r} with env.id={cfg.id!r} failed: {err}"
        ) from None
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        raise ConfigError(f"env.id={cfg.id!r} uses {autoreset}; sharedppo expects NEXT_STEP")
    if cfg.reach_reward_steps is not None:
        envs = ReachStepsReward(envs, cfg.reach_reward_steps)
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    return envs, obs


def _recorder(video_dir: Path) -> Any:
    from gymnasium.wrappers import RecordVideo

    def wrap(env: gym.Env) -> gym.Env:
        return RecordVideo(env, str(video_dir), episode_trigger=lambda _: True)

    return wrap
