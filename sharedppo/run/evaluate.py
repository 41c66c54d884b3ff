"""Evaluation: run a trained policy for N episodes; load one from a job folder or checkpoint.

The ``sharedppo-eval`` command is ``cli/eval.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import Config, EnvConfig
from ..envs.build import action_mask, make_envs
from ..envs.stored import check_no_interpolation, check_stored_wrappers
from ..extras import first_line
from ..jobdir import JobDir
from ..nn.act import act_on_host
from ..nn.actor_critic import ActorCritic
from ..nn.normalize import ObsNormalizer
from ..nn.recurrent import EpisodeStarts
from .checkpoint import CheckpointError, read
from .episodes import EpisodeTracker
from .model import build_model


def evaluate(
    net: ActorCritic,
    env_cfg: EnvConfig,
    episodes: int,
    deterministic: bool,
    seed: int,
    device: torch.device,
    video_dir: Path | None = None,
    obs_norm: ObsNormalizer | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of ``episodes`` episodes on a fresh env, on the env's own reward.

    Each parallel env runs a fixed share of the episodes: taking the first N to finish would
    favour short episodes. Observation statistics are used frozen. A recurrent network
    carries its state, reset where each episode starts.
    """
    envs, obs, info = make_envs(env_cfg, seed, min(episodes, env_cfg.num_envs), video_dir)
    n, num_actions = envs.num_envs, net.dist.num_outputs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    done_count = np.zeros(n, dtype=np.int64)
    tracker = EpisodeTracker(n)
    returns: list[float] = []
    lengths: list[int] = []
    state = net.initial_state(n, device)
    starts = EpisodeStarts(n)
    while (done_count < quota).any():
        valid = action_mask(info, n, num_actions)
        start = None if state is None else starts.now
        actions, state = act_on_host(net, obs, device, obs_norm, valid, state, start, deterministic)
        obs, reward, terminated, truncated, info = envs.step(actions)
        starts.advance(terminated | truncated)
        done = info.get("game_over", terminated | truncated)
        finished = tracker.step(info.get("env_reward", reward), done)
        if finished is None:
            continue
        for i, ret, length in zip(np.flatnonzero(done), *finished, strict=True):
            if done_count[i] < quota[i]:
                returns.append(float(ret))
                lengths.append(int(length))
            done_count[i] += 1
    envs.close()
    return np.array(returns), np.array(lengths)


def load_policy(
    path: Path, device: torch.device
) -> tuple[ActorCritic, Config, dict[str, Any], ObsNormalizer]:
    """A job folder (its checkpoints/last.pt) or a checkpoint file -> (network, config, state,
    observation normaliser)."""
    file = JobDir.checkpoint_file(path)
    state = read(file, map_location=device)
    # The checkpoint's config is data: nothing in it may resolve, call or build anything.
    check_no_interpolation(state["config"], f"checkpoint {file}")
    try:
        cfg: Config = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(Config), state["config"])
        )
    except (OmegaConfBaseException, ValueError) as err:  # a config not of the schema's shape
        raise CheckpointError(
            f"checkpoint {file} holds a config this sharedppo cannot read ({first_line(err)})"
        ) from None
    check_stored_wrappers(cfg.env.wrappers, f"checkpoint {file}")
    # The env as training built it (wrappers included) tells the spaces.
    envs, _, _ = make_envs(cfg.env, seed=0, num_envs=1)
    try:
        net, obs_norm = build_model(envs, cfg.env, cfg.network)
    finally:
        envs.close()
    try:
        net.load_state_dict(state["model"])
    except RuntimeError:
        raise CheckpointError(f"checkpoint {file} does not match its own network config") from None
    obs_norm.load_state_dict(state["obs_norm"])
    return net.to(device), cfg, state, obs_norm
