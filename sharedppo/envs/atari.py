"""Atari preprocessing (the standard wrappers) on top of gymnasium's AtariPreprocessing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import AtariConfig


class RecordGameScore(gym.Wrapper):
    """Puts the unclipped reward and the real end of the game into ``info``.

    It sits inside the reward clipping and the life-loss episodes, so the collector logs the
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
