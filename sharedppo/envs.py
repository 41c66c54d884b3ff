"""Vectorised gymnasium environments and the episode bookkeeping the runner logs.

Every vector env made here uses gymnasium's next-step autoreset (the default of gymnasium
1.x and the only mode its numpy-vectorised CartPole offers): after a step that ends an
episode, the observation returned is the episode's final observation, and the next step
ignores its action and returns the reset observation with reward 0. The rollout therefore
marks that reset step as not a transition (see ``memory.RolloutMemory.valid``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from .config import AtariConfig, ConfigError, EnvConfig


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


class RecordGameScore(gym.Wrapper):
    """Puts the unclipped reward and the real end of the game into ``info``.

    It sits inside the reward clipping and the life-loss episodes, so the runner logs the
    game's own score per game while the learner sees clipped rewards per life.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, env_reward=reward, game_over=terminated or truncated)
        return obs, reward, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """A lost life ends the learner's episode; the game itself goes on from where it was."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Presses FIRE after a reset, for games that wait for it."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def atari_wrapper(cfg: AtariConfig) -> Callable[[gym.Env], gym.Env]:
    def wrap(env: gym.Env) -> gym.Env:
        from gymnasium.wrappers import (
            AtariPreprocessing,
            FrameStackObservation,
            TransformReward,
        )

        env = AtariPreprocessing(
            env,
            noop_max=cfg.noop_max,
            frame_skip=cfg.frame_skip,
            screen_size=cfg.screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=cfg.grayscale,
            scale_obs=False,
        )
        env = RecordGameScore(env)
        if cfg.episodic_life:
            env = EpisodicLife(env)
        if cfg.fire_reset and "FIRE" in env.unwrapped.get_action_meanings()[1:2]:
            env = FireReset(env)
        if cfg.clip_reward:
            env = TransformReward(env, np.sign)
        return FrameStackObservation(env, cfg.frame_stack)

    return wrap


def check_env_id(env_id: str) -> None:
    if env_id.startswith("ALE/"):
        try:
            import ale_py
        except ImportError:
            raise ConfigError(
                f"env.id={env_id!r} needs ale-py; pip install 'sharedppo[atari]'"
            ) from None
        gym.register_envs(ale_py)
    try:
        gym.spec(env_id)
    except gym.error.Error as err:
        raise ConfigError(
            f"env.id={env_id!r} is not a registered gymnasium id ({err}); "
            "e.g. CartPole-v1, Acrobot-v1, MountainCar-v0"
        ) from None


def make_envs(cfg: EnvConfig, seed: int) -> tuple[VectorEnv, np.ndarray]:
    """Build the vector env from its config group and reset it; returns (envs, first obs)."""
    check_env_id(cfg.id)
    spec = gym.spec(cfg.id)
    mode = cfg.vectorization_mode
    if mode == "auto":
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    wrappers = None
    if cfg.atari.enabled:
        kwargs.setdefault("frameskip", 1)  # the preprocessing does the skipping
        wrappers = [atari_wrapper(cfg.atari)]
        mode = "sync" if mode == "vector_entry_point" else mode
    try:
        envs = gym.make_vec(
            cfg.id, num_envs=cfg.num_envs, vectorization_mode=mode, wrappers=wrappers, **kwargs
        )
    except (gym.error.Error, TypeError, ValueError) as err:
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


class EpisodeTracker:
    """Running return and length per env; hands back the episodes that finished each step.

    A few in-place vector ops per step, no Python loop over envs.
    """

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def step(self, reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        self.returns += reward
        self.lengths += 1
        if not done.any():
            return None
        finished = self.returns[done], self.lengths[done]
        # The next step is gymnasium's reset step (reward 0): it must bring the count to 0.
        self.returns[done] = 0.0
        self.lengths[done] = -1
        return finished


# --- environment state for exact resume ------------------------------------------------------
# Checkpoints load with weights_only=True, so an env cannot be pickled into one. Instead its
# attributes that are plain data (numpy arrays, numbers, RNG states) are walked through the
# wrapper chain and sub-envs and stored as tensors and primitives. That is the whole state of
# a numpy-simulated env (classic control); an env whose state lives in C objects (Box2D,
# MuJoCo) resumes from a fresh reset instead.

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
