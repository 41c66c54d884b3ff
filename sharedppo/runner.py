"""The runner: composes the config into env, network, agent, memory and logger, and trains."""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from .agent import PPOAgent
from .checkpoint import CheckpointError, save_atomic
from .config import Config, ConfigError, compose_checked, register_configs, validate
from .envs import EpisodeTracker, make_envs
from .logger import Logger
from .memory import RolloutMemory
from .network import ActorCritic

log = logging.getLogger("sharedppo")
register_configs()


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
        out = asdict(self)
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

    obs: np.ndarray
    global_step: int = 0
    last_values: Tensor | None = None


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
    with torch.inference_mode():
        for t in range(memory.num_steps):
            step_obs = memory.obs[t]
            step_obs.copy_(torch.from_numpy(state.obs))
            actions, logprobs, values, masks = agent.act(step_obs)
            memory.actions[t] = actions
            memory.logprobs[t] = logprobs
            memory.values[t] = values
            if masks is not None:
                memory.masks[t] = masks

            state.obs, reward, terminated, truncated, info = envs.step(actions.cpu().numpy())
            done = terminated | truncated
            memory.host_rewards[t] = reward
            memory.host_terminated[t] = terminated
            memory.host_dones[t] = done
            state.global_step += num_envs
            finished = tracker.step(info.get("env_reward", reward), done)
            if finished is not None:
                on_episodes(state.global_step, *finished)
        last_obs = torch.from_numpy(state.obs).to(device, torch.float32)
        state.last_values = agent.net(last_obs)[1]
    memory.finish_rollout()


def train(cfg: DictConfig, out_dir: Path) -> TrainResult:
    validate(cfg)
    c: Config = OmegaConf.to_object(cfg)  # plain dataclasses: attribute access in hot loops
    device = resolve_device(c.device)
    if c.torch_threads > 0:
        torch.set_num_threads(c.torch_threads)
    seed_everything(c.seed)

    envs, obs = make_envs(c.env, c.seed)
    num_envs, ppo = c.env.num_envs, c.ppo
    obs_shape = envs.single_observation_space.shape
    net = ActorCritic(int(np.prod(obs_shape)), int(envs.single_action_space.n), c.network)
    net.to(device)
    agent = PPOAgent(net, ppo)
    memory = RolloutMemory(
        ppo.num_steps,
        num_envs,
        obs_shape,
        net.mask_shape if net.dropout > 0 else None,
        device,
    )
    config = OmegaConf.to_container(cfg, resolve=True)
    logger = Logger(out_dir, config)
    tracker = EpisodeTracker(num_envs)
    state = RolloutState(obs)

    target = c.env.target_return
    if target is None and envs.unwrapped.spec is not None:
        target = envs.unwrapped.spec.reward_threshold
    batch_size = ppo.num_steps * num_envs
    num_updates = math.ceil(c.total_steps / batch_size)
    result = TrainResult(0, 0, 0, float("nan"), 0.0, target, started_at=time.time())
    start = time.perf_counter()

    def on_episodes(step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        logger.episodes_finished(step, returns, lengths)
        if (
            result.target_step is None
            and target is not None
            and len(logger.recent) == logger.recent.maxlen
            and logger.mean_return >= target
        ):
            result.target_step = step
            result.target_seconds = time.perf_counter() - start

    try:
        for update in range(1, num_updates + 1):
            agent.set_progress(1.0 - (update - 1) / num_updates)
            collect_rollout(envs, agent, memory, state, tracker, on_episodes)
            memory.compute_returns_and_advantage(state.last_values, ppo.gamma, ppo.lam)
            stats = agent.update(memory.batch())
            result.global_step, result.updates = state.global_step, update
            for key in ("policy_loss", "value_loss", "grad_norm"):
                if not math.isfinite(stats[key]):
                    raise TrainingError(
                        f"{key} is {stats[key]} at update {update} (step {state.global_step}); "
                        "training stopped, the last checkpoint is kept"
                    )

            if update % c.log_every_updates == 0 or update == num_updates:
                sps = state.global_step / (time.perf_counter() - start)
                logger.scalars(
                    state.global_step,
                    {
                        "charts/SPS": sps,
                        "charts/learning_rate": agent.learning_rate,
                        **{f"losses/{k}": v for k, v in stats.items()},
                    },
                )
                logger.progress(state.global_step, num_updates * batch_size, sps)
            if c.stop_on_target and result.target_step is not None:
                break
    finally:
        result.seconds = time.perf_counter() - start
        result.episodes = logger.episodes
        result.mean_return = logger.mean_return
        logger.close()
        envs.close()

    save_atomic(
        {
            "model": net.state_dict(),
            "optimizer": agent.optimizer.state_dict(),
            "config": config,
            "global_step": result.global_step,
            "updates": result.updates,
        },
        out_dir / "checkpoints" / "last.pt",
    )
    (out_dir / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    result.agent = agent
    return result


@hydra.main(version_base="1.3", config_path="pkg://sharedppo.conf", config_name="config")
def _app(cfg: DictConfig) -> float:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train(cfg, out_dir)
    except (ConfigError, CheckpointError, TrainingError) as err:
        print(f"sharedppo: error: {err}", file=sys.stderr)
        sys.exit(2)
    log.info(
        "done: %d steps in %.1f s, mean return (last 20) %.1f; target %s reached at step %s "
        "(%.2f s)",
        result.global_step,
        result.seconds,
        result.mean_return,
        result.target_return,
        result.target_step,
        result.target_seconds or float("nan"),
    )
    return result.mean_return


def main() -> None:
    """Console entry point: ``sharedppo [overrides]``."""
    args = sys.argv[1:]
    # A single run is checked up front so a mistake reads as one line. Flags (--help, --cfg,
    # -m) go straight to Hydra; in a sweep each job checks its own config, so one bad value
    # fails that job alone.
    if not any(a.startswith("-") for a in args):
        try:
            compose_checked([a for a in args if not a.lstrip("+~").startswith("hydra.")])
        except ConfigError as err:
            print(f"sharedppo: error: {err}", file=sys.stderr)
            sys.exit(2)
    _app()
