"""The runner: composes the config into env, network, agent, memory and logger, and trains."""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from .agent import PPOAgent
from .checkpoint import (
    Checkpointer,
    CheckpointError,
    check_writable,
    rng_state,
    set_rng_state,
)
from .checkpoint import load as load_checkpoint
from .config import Config, ConfigError, NetworkConfig, validate
from .dashboard import job_overrides, metrics_from_events
from .envs import EpisodeTracker, capture_state, make_envs, restore_state
from .evaluate import evaluate
from .logger import Logger, log_eval
from .memory import RolloutMemory
from .network import ActorCritic
from .normalize import ObsNormalizer, RewardScaler
from .signals import Interrupted, stop_requests

log = logging.getLogger("sharedppo")


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say); the message names what and where."""


@dataclass
class TrainResult:
    global_step: int
    updates: int
    episodes: int
    mean_return: float
    seconds: float
    target_return: float | None
    target_step: int | None = None
    target_seconds: float | None = None
    started_at: float = 0.0  # wall clock (time.time()) of the first environment step
    agent: PPOAgent | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        out = {"status": "completed", **asdict(self)}
        out.pop("agent")
        return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name!r} is not allowed: this machine has no CUDA device "
            f"(torch {torch.__version__}); use device=cpu or device=auto"
        )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class RolloutState:
    """What carries over from one rollout to the next."""

    obs: np.ndarray  # as the env returned it
    global_step: int = 0
    last_values: Tensor | None = None
    obs_norm: ObsNormalizer | None = None
    reward_scale: RewardScaler | None = None


def collect_rollout(
    envs: VectorEnv,
    agent: PPOAgent,
    memory: RolloutMemory,
    state: RolloutState,
    tracker: EpisodeTracker,
    on_episodes: Callable[[int, np.ndarray, np.ndarray], None],
) -> None:
    """Fill ``memory`` with one rollout and compute the bootstrap value after its last step."""
    device = memory.obs.device
    num_envs = memory.obs.shape[1]
    # Looked up once: this loop runs per env step, and each attribute walk or no-op call costs
    # a measurable share of a small network's step.
    to_env = agent.net.dist.to_env
    obs_norm = state.obs_norm if state.obs_norm is not None and state.obs_norm.enabled else None
    scale = state.reward_scale
    scale = scale if scale is not None and scale.enabled else None
    # Per-step views made once: indexing a tensor per step costs more than the copy into it.
    obs_rows, action_rows = memory.obs.unbind(0), memory.actions.unbind(0)
    logprob_rows, value_rows = memory.logprobs.unbind(0), memory.values.unbind(0)
    mask_rows = None if memory.masks is None else memory.masks.unbind(0)
    act = agent.act
    with torch.inference_mode():
        for t in range(memory.num_steps):
            step_obs = obs_rows[t]
            obs = state.obs if obs_norm is None else obs_norm(state.obs, update=True)
            step_obs.copy_(torch.from_numpy(obs))
            actions, logprobs, values, masks = act(step_obs)
            action_rows[t].copy_(actions)
            logprob_rows[t].copy_(logprobs)
            value_rows[t].copy_(values)
            if mask_rows is not None:
                mask_rows[t].copy_(masks)

            step = envs.step(to_env(actions.cpu().numpy()))
            state.obs, reward, terminated, truncated, info = step
            done = terminated | truncated
            memory.host_rewards[t] = reward if scale is None else scale(reward, done)
            memory.host_terminated[t] = terminated
            memory.host_dones[t] = done
            state.global_step += num_envs
            # Scores are the game's own: unshaped, unclipped, per game rather than per life.
            finished = tracker.step(info.get("env_reward", reward), info.get("game_over", done))
            if finished is not None:
                on_episodes(state.global_step, *finished)
        obs = state.obs if obs_norm is None else obs_norm(state.obs, update=False)
        last_obs = torch.from_numpy(obs).to(device, torch.float32)
        state.last_values = agent.net.forward(last_obs)[1]
    memory.finish_rollout()


def _check_resumable(saved: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    # The network must match, a key added to the schema after the checkpoint was written
    # counting as its default; of the env, the task and how many copies run may not change.
    schema = asdict(NetworkConfig())
    env_keys = ("id", "num_envs")
    compared = {
        "network": ({**schema, **saved["network"]}, {**schema, **config["network"]}),
        "env": tuple({k: cfg["env"].get(k) for k in env_keys} for cfg in (saved, config)),
    }
    for key, (old, new) in compared.items():
        if old != new:
            diff = ", ".join(
                f"{key}.{k}={old.get(k)!r} in the checkpoint, {new.get(k)!r} requested"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
            )
            raise CheckpointError(f"cannot resume {path}: {diff}")
    if saved["ppo"]["num_steps"] != config["ppo"]["num_steps"]:
        raise CheckpointError(f"cannot resume {path}: ppo.num_steps differs from the checkpoint")


def train(
    cfg: DictConfig,
    out_dir: Path,
    on_update: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Train from a composed config, writing TensorBoard events and checkpoints to out_dir.

    ``on_update(global_step, mean_return)`` is called after every update; returning True
    stops the run as a pre-emption would (last.pt written, resumable).
    """
    validate(cfg)
    c: Config = OmegaConf.to_object(cfg)  # plain dataclasses: attribute access in hot loops
    device = resolve_device(c.device)
    config = OmegaConf.to_container(cfg, resolve=True)
    saved = None
    if c.resume is not None:
        resume = Path(c.resume)
        saved = load_checkpoint(resume / "checkpoints" / "last.pt", map_location=device)
        _check_resumable(saved["config"], config, resume)
    check_writable(out_dir)
    if c.torch_threads > 0:
        torch.set_num_threads(c.torch_threads)
    seed_everything(c.seed)

    envs, obs = make_envs(c.env, c.seed)
    num_envs, ppo = c.env.num_envs, c.ppo
    obs_shape = envs.single_observation_space.shape
    try:
        net = ActorCritic(obs_shape, envs.single_action_space, c.network)
    except ConfigError as err:
        envs.close()
        raise ConfigError(f"env.id={c.env.id!r}: {err}") from None
    net.to(device)
    agent = PPOAgent(net, ppo)
    memory = RolloutMemory(
        ppo.num_steps,
        num_envs,
        obs_shape,
        net.mask_shape if net.dropout > 0 else None,
        device,
        action_shape=net.dist.action_shape,
        action_dtype=net.dist.action_dtype,
    )
    tracker = EpisodeTracker(num_envs)
    state = RolloutState(
        obs,
        obs_norm=ObsNormalizer(obs_shape, c.env.normalize_obs, c.env.obs_clip),
        reward_scale=RewardScaler(num_envs, ppo.gamma, c.env.normalize_reward, c.env.reward_clip),
    )
    target = c.env.target_return
    if target is None and envs.unwrapped.spec is not None:
        target = envs.unwrapped.spec.reward_threshold
    result = TrainResult(0, 0, 0, float("nan"), 0.0, target, started_at=time.time())
    first_update, elapsed_before = 1, 0.0
    if saved is not None:
        net.load_state_dict(saved["model"])
        agent.optimizer.load_state_dict(saved["optimizer"])
        restore_state(envs, saved["env"])
        state.obs = saved["obs"].numpy().copy()
        state.global_step = result.global_step = int(saved["global_step"])
        memory.last_done = saved["last_done"].numpy().copy()
        tracker.returns = saved["tracker"]["returns"].numpy().copy()
        tracker.lengths = saved["tracker"]["lengths"].numpy().copy()
        result.target_step = saved["target_step"]
        result.target_seconds = saved["target_seconds"]
        elapsed_before = float(saved["elapsed"])
        first_update = int(saved["updates"]) + 1
        set_rng_state(saved["rng"])
        state.obs_norm.load_state_dict(saved["obs_norm"])
        state.reward_scale.load_state_dict(saved["reward_scale"])
    resume_step = None if saved is None else state.global_step + 1
    logger = Logger(out_dir, config, resume_step=resume_step, overrides=job_overrides(out_dir))
    if saved is not None:
        logger.recent.extend(saved["recent_returns"])
        logger.episodes = int(saved["episodes"])
    checkpointer = Checkpointer(
        out_dir / "checkpoints",
        c.checkpoint.every_steps,
        c.checkpoint.keep,
        state.global_step + (c.checkpoint.every_steps or 0),
    )
    if saved is not None:
        checkpointer.best = float(saved["best_return"])
    next_eval = state.global_step + (c.eval.every_steps or 0)

    batch_size = ppo.num_steps * num_envs
    num_updates = math.ceil(c.total_steps / batch_size)
    start = time.perf_counter()
    session_start_step = state.global_step

    def on_episodes(step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        logger.episodes_finished(step, returns, lengths)
        if (
            result.target_step is None
            and target is not None
            and len(logger.recent) == logger.recent.maxlen
            and logger.mean_return >= target
        ):
            result.target_step = step
            result.target_seconds = elapsed_before + time.perf_counter() - start

    def snapshot(update: int) -> dict[str, Any]:
        return {
            "model": net.state_dict(),
            "optimizer": agent.optimizer.state_dict(),
            "config": config,
            "global_step": state.global_step,
            "updates": update,
            "obs": torch.from_numpy(np.array(state.obs, dtype=np.float32)),
            "last_done": torch.from_numpy(memory.last_done.copy()),
            "tracker": {
                "returns": torch.from_numpy(tracker.returns.copy()),
                "lengths": torch.from_numpy(tracker.lengths.copy()),
            },
            "recent_returns": list(logger.recent),
            "episodes": logger.episodes,
            "best_return": max(checkpointer.best, logger.mean_return),
            "target_step": result.target_step,
            "target_seconds": result.target_seconds,
            "elapsed": elapsed_before + time.perf_counter() - start,
            "rng": rng_state(),
            "env": capture_state(envs),
            "obs_norm": state.obs_norm.state_dict(),
            "reward_scale": state.reward_scale.state_dict(),
        }

    update = first_update - 1
    try:
        with stop_requests() as requested:
            for update in range(first_update, num_updates + 1):
                agent.set_progress(1.0 - (update - 1) / num_updates)
                collect_rollout(envs, agent, memory, state, tracker, on_episodes)
                memory.compute_returns_and_advantage(state.last_values, ppo.gamma, ppo.lam)
                stats = agent.update(memory.batch())
                result.global_step, result.updates = state.global_step, update
                _check_finite(stats, agent, update, state.global_step)

                if update % c.log_every_updates == 0 or update == num_updates:
                    sps = (state.global_step - session_start_step) / (time.perf_counter() - start)
                    logger.scalars(
                        state.global_step,
                        {
                            "charts/SPS": sps,
                            "charts/learning_rate": agent.learning_rate,
                            **{f"losses/{k}": v for k, v in stats.items()},
                        },
                    )
                    logger.progress(state.global_step, num_updates * batch_size, sps)
                if c.eval.every_steps is not None and state.global_step >= next_eval:
                    next_eval += c.eval.every_steps
                    seed = c.seed + 10_000 + update
                    logger.eval_result(
                        state.global_step,
                        *evaluate(
                            net,
                            c.env,
                            c.eval.episodes,
                            c.eval.deterministic,
                            seed,
                            device,
                            obs_norm=state.obs_norm,
                        ),
                    )
                stop = bool(requested) or (
                    on_update is not None and on_update(state.global_step, logger.mean_return)
                )
                if checkpointer.due(state.global_step) or stop:
                    checkpointer.save(snapshot(update), state.global_step, logger.mean_return)
                if stop:
                    raise Interrupted(requested[0] if requested else signal.SIGINT, update)
                if c.stop_on_target and result.target_step is not None:
                    break
            checkpointer.save(snapshot(update), state.global_step, logger.mean_return)
    finally:
        result.seconds = elapsed_before + time.perf_counter() - start
        result.episodes = logger.episodes
        result.mean_return = logger.mean_return
        logger.writer.flush()  # issue 13 stand-in until the tracker keeps best and AUC
        logger.final_metrics(metrics_from_events(out_dir, result))
        logger.close()
        envs.close()

    if c.eval.video:
        video_dir = out_dir / "videos"
        returns, lengths = evaluate(
            net, c.env, 1, c.eval.deterministic, c.seed, device, video_dir, state.obs_norm
        )
        log_eval(out_dir, state.global_step, returns, lengths, video_dir)
    (out_dir / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    result.agent = agent
    return result


def _check_finite(stats: dict[str, float], agent: PPOAgent, update: int, step: int) -> None:
    bad = [k for k in ("policy_loss", "value_loss", "grad_norm") if not math.isfinite(stats[k])]
    if not bad and not bool(torch.isfinite(agent.optimizer.flat).all()):
        bad = ["network parameters"]
    if bad:
        raise TrainingError(
            f"{bad[0]} is not finite at update {update} (env step {step}); training stopped, "
            "the last good checkpoint is kept"
        )
