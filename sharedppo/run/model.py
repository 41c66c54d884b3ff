"""The model of an env: the actor-critic and its observation normaliser, built alike for
training, evaluation and export."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from ..config import ConfigError, EnvConfig, NetworkConfig
from ..envs.build import obs_layout
from ..nn.actor_critic import ActorCritic
from ..nn.normalize import ObsNormalizer


def build_model(
    envs: VectorEnv, env_cfg: EnvConfig, net_cfg: NetworkConfig
) -> tuple[ActorCritic, ObsNormalizer]:
    obs_shape = envs.single_observation_space.shape
    layout = obs_layout(envs)
    try:
        net = ActorCritic(obs_shape, envs.single_action_space, net_cfg, layout)
    except ConfigError as err:
        raise ConfigError(f"env.id={env_cfg.id!r}: {err}") from None
    raw = None
    if layout is not None:  # image keys are not normalised
        raw = np.zeros(obs_shape, dtype=bool)
        for part in layout:
            raw[part.start : part.end] = part.image
    return net, ObsNormalizer(obs_shape, env_cfg.normalize_obs, env_cfg.obs_clip, raw)


def stored_obs_dtype(envs: VectorEnv, net: ActorCritic, obs_norm: ObsNormalizer) -> torch.dtype:
    """uint8 for raw uint8 frames read by a conv trunk (it divides by 255 itself, with the
    same result as from floats), else float32: normalised or vector observations."""
    raw = envs.single_observation_space.dtype == np.uint8 and not obs_norm.enabled
    return torch.uint8 if raw and net.convs is not None else torch.float32


def obs_numbers(envs: VectorEnv) -> tuple[int, int]:
    """Numbers per observation and bytes per number, for the memory estimate (run.budget)."""
    space = envs.single_observation_space
    return int(np.prod(space.shape or (1,))), 1 if space.dtype == np.uint8 else 4
