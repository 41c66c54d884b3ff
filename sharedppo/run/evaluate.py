"""Evaluation: run a trained policy for N episodes, and the ``sharedppo-eval`` command."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from ..compose import register_configs
from ..config import Config, ConfigError, EnvConfig
from ..envs.build import action_mask, make_envs
from ..jobdir import JobDir
from ..nn.actor_critic import ActorCritic
from ..nn.heads import mask_logits
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
    with torch.inference_mode():
        while (done_count < quota).any():
            if obs_norm is not None:
                obs = obs_norm(obs, update=False)
            x = torch.as_tensor(obs, dtype=torch.float32, device=device)
            valid = action_mask(info, n, num_actions)
            if state is None:
                out = net(x)[0]
            else:
                out, _, state = net.step(x, None, state, torch.from_numpy(starts.now).to(device))
            out = mask_logits(out, None if valid is None else torch.from_numpy(valid).to(device))
            actions = net.dist.mode(out) if deterministic else net.dist.sample(out)[0]
            step = envs.step(net.dist.to_env(actions.cpu().numpy()))
            obs, reward, terminated, truncated, info = step
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
    register_configs()
    cfg: Config = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(Config), state["config"])
    )
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


def main(argv: list[str] | None = None) -> None:
    """``sharedppo-eval JOB_FOLDER_OR_CHECKPOINT [--episodes N] [--stochastic] [--video]``."""
    parser = argparse.ArgumentParser(
        prog="sharedppo-eval", description="Evaluate a trained sharedppo policy."
    )
    parser.add_argument("path", type=Path, help="a job folder or a .pt checkpoint")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--stochastic", action="store_true", help="sample instead of argmax")
    parser.add_argument("--video", action="store_true", help="record MP4s into the job folder")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    from ..tb.logger import log_eval

    try:
        device = torch.device(args.device)
        net, cfg, state, obs_norm = load_policy(args.path, device)
        job = JobDir.of(args.path)
        video_dir = job.videos if args.video else None
        returns, lengths = evaluate(
            net, cfg.env, args.episodes, not args.stochastic, args.seed, device, video_dir, obs_norm
        )
        mode = "stochastic" if args.stochastic else "deterministic"
        print(
            f"{cfg.env.id} {mode}, {len(returns)} episodes: return {returns.mean():.2f} ± "
            f"{returns.std():.2f}, length {lengths.mean():.1f} ± {lengths.std():.1f}"
        )
        # TensorBoard's writer meets a read-only folder in a thread of its own, which dies
        # printing a traceback: a file that vanishes on closing finds it first.
        try:
            tempfile.TemporaryFile(dir=job.path).close()
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(job.path)) from None
        log_eval(job.path, int(state["progress"]["global_step"]), returns, lengths, video_dir)
    except (CheckpointError, ConfigError) as err:
        print(f"sharedppo-eval: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a read-only or full job folder: the user's to fix
        where = os.fsdecode(err.filename) if err.filename else args.path
        print(f"sharedppo-eval: error: cannot write {where}: {err.strerror}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
