"""The trainer: every part of one training job, built from the config, and the PPO loop."""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..algo.agent import LOSS_STATS, PPOAgent
from ..config import Config, ConfigError
from ..envs.build import make_envs, target_return
from ..jobdir import LAST, JobDir
from ..nn.heads import Categorical
from ..nn.normalize import RewardScaler
from ..nn.precision import Precision
from ..tb.dashboard import final_metrics
from ..tb.logger import Logger, log_eval
from .checkpoint import Checkpointer, GlobalRNG, Stateful, assemble, restore, save_atomic
from .episodes import EpisodeTracker
from .evaluate import evaluate
from .memory import RolloutMemory
from .model import build_model, stored_obs_dtype
from .result import TrainingError, TrainResult
from .rollout import Rollout
from .signals import Interrupted

log = logging.getLogger("sharedppo")


class Progress:
    """Where the job is: env steps, updates, and training seconds across sessions."""

    def __init__(self) -> None:
        self.global_step = 0
        self.updates = 0
        self.target_seconds: float | None = None
        self.elapsed_before = 0.0
        self.started = time.perf_counter()
        self.session_start_step = 0
        # Wall clock of the job's first step: kept across sessions, so summary.started_at
        # is when the job began, not when it was last resumed.
        self.started_at: float | None = time.time()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        return {
            "global_step": self.global_step,
            "updates": self.updates,
            "elapsed": self.elapsed,
            "target_seconds": self.target_seconds,
            "started_at": self.started_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = self.session_start_step = int(state["global_step"])
        self.updates = int(state["updates"])
        self.target_seconds = state["target_seconds"]
        self.elapsed_before = float(state["elapsed"])
        self.started = time.perf_counter()
        self.started_at = state.get("started_at")  # None: a checkpoint before layout 3


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: Config, config: dict[str, Any], out_dir: Path, device: torch.device):
        self.cfg, self.config, self.out_dir, self.device = cfg, config, out_dir, device
        self.job = JobDir(out_dir)
        seed_everything(cfg.seed)
        env, ppo = cfg.env, cfg.ppo
        envs, obs, info = make_envs(env, cfg.seed)
        obs_shape = envs.single_observation_space.shape
        try:
            net, self.obs_norm = build_model(envs, env, cfg.network)
        except ConfigError:
            envs.close()
            raise
        self.agent = PPOAgent(net.to(device), ppo, Precision(cfg.precision, device.type))
        self.reward_scale = RewardScaler(
            env.num_envs, ppo.gamma, env.normalize_reward, env.reward_clip
        )
        try:
            self.rollout = Rollout(
                envs,
                obs,
                self.obs_norm,
                self.reward_scale,
                info,
                net.dist.num_outputs,
                net.initial_state(env.num_envs, device),
            )
        except ConfigError:
            envs.close()
            raise
        if self.rollout.action_mask is not None and not isinstance(net.dist, Categorical):
            envs.close()
            raise ConfigError(
                f"env.id={env.id!r} supplies action masks, which need Discrete or MultiDiscrete "
                f"actions; its action space is {envs.single_action_space}"
            )
        self.memory = RolloutMemory(
            ppo.num_steps,
            env.num_envs,
            obs_shape,
            net.mask_shape if net.dropout > 0 else None,
            device,
            net.dist.action_shape,
            net.dist.action_dtype,
            ppo.gamma,
            ppo.lam,
            None if self.rollout.action_mask is None else net.dist.num_outputs,
            net.state_shape,
            stored_obs_dtype(envs, net, self.obs_norm),
        )
        self.tracker = EpisodeTracker(env.num_envs, target=target_return(env))
        every = cfg.checkpoint.every_steps
        self.checkpointer = Checkpointer(self.job, every, cfg.checkpoint.keep, every or 0)
        self.progress = Progress()
        # The weights before the update in flight, kept for a truthful NaN stop.
        self.last_good = torch.empty_like(self.agent.optimizer.flat)
        self.logger: Logger | None = None
        self.resume_note = ""

    def parts(self) -> dict[str, Stateful]:
        """What a checkpoint holds (checkpoint.py's layout); the RNGs last, as they are
        restored last."""
        return {
            "model": self.agent.net,
            "optimizer": self.agent.optimizer,
            "obs_norm": self.obs_norm,
            "reward_scale": self.reward_scale,
            "memory": self.memory,
            "episodes": self.tracker,
            "env": self.rollout,
            "checkpointer": self.checkpointer,
            "progress": self.progress,
            "rng": GlobalRNG(),
        }

    def load(self, state: dict[str, Any], note: str = "") -> None:
        """Continue from a checkpoint (already checked by resume.check_resume); ``note`` goes
        to TensorBoard as text at the resume step."""
        restore(state, self.parts())
        self.resume_note = note
        if state["checkpointer"]["next_step"] is None and self.checkpointer.every_steps:
            self.checkpointer.next_step = self.progress.global_step + self.checkpointer.every_steps

    def checkpoint(self) -> dict[str, Any]:
        return assemble(self.config, self.parts())

    def fit(self, requested: list[int], on_update: Any = None) -> None:
        """Train until total_steps (or the target, with stop_on_target); a signal in
        ``requested`` or ``on_update`` returning True stops after the update in flight."""
        cfg, progress, agent, memory = self.cfg, self.progress, self.agent, self.memory
        batch = cfg.ppo.num_steps * cfg.env.num_envs
        num_updates = math.ceil(cfg.total_steps / batch)
        resumed = progress.global_step > 0
        if num_updates * batch != cfg.total_steps and not resumed:
            log.info(
                "total_steps=%d becomes %d: whole rollouts of %d steps (env.num_envs x "
                "ppo.num_steps)",
                cfg.total_steps,
                num_updates * batch,
                batch,
            )
        self.logger = Logger(
            self.out_dir,
            self.config,
            resume_step=progress.global_step + 1 if resumed else None,
            overrides=self.job.read_overrides(),
        )
        if self.resume_note:
            self.logger.writer.add_text("resume/history", self.resume_note, progress.global_step)
        next_eval = progress.global_step + (cfg.eval.every_steps or 0)
        for update in range(progress.updates + 1, num_updates + 1):
            agent.set_progress(1.0 - (update - 1) / num_updates)
            progress.global_step = self.rollout.collect(
                agent, memory, self.tracker, progress.global_step, self._on_episodes
            )
            self.last_good.copy_(agent.optimizer.flat)
            stats = agent.update(memory.batch())
            progress.updates = update
            self._check_finite(stats)
            if update % cfg.log_every_updates == 0 or update == num_updates:
                self._log_update(stats, num_updates * batch)
            if cfg.eval.every_steps is not None and progress.global_step >= next_eval:
                next_eval += cfg.eval.every_steps
                self._evaluate(episodes=cfg.eval.episodes, seed=cfg.seed + 10_000 + update)
            mean = self.tracker.mean_return
            stop = bool(requested) or bool(on_update and on_update(progress.global_step, mean))
            if self.checkpointer.due(progress.global_step) or stop:
                self.checkpointer.save(self.checkpoint, progress.global_step, mean)
            if stop:
                raise Interrupted(requested[0] if requested else signal.SIGINT, update)
            if cfg.stop_on_target and self.tracker.target_step is not None:
                break
        # The finished run's summary goes into its final last.pt: a kill before summary.json
        # is written loses nothing (JobDir.repair_summary).
        final = self.result("completed").summary()
        self.checkpointer.save(self.checkpoint, progress.global_step, final["mean_return"], final)

    def _on_episodes(self, step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        self.logger.episodes_finished(step, returns, lengths)
        if self.progress.target_seconds is None and self.tracker.target_step is not None:
            self.progress.target_seconds = self.progress.elapsed

    def _log_update(self, stats: dict[str, float], total_steps: int) -> None:
        progress = self.progress
        session_seconds = time.perf_counter() - progress.started
        sps = (progress.global_step - progress.session_start_step) / session_seconds
        values = {f"losses/{k}" if k in LOSS_STATS else f"charts/{k}": v for k, v in stats.items()}
        values |= {"charts/SPS": sps, "charts/learning_rate": self.agent.learning_rate}
        tracker = self.tracker
        self.logger.scalars(progress.global_step, values, tracker.mean_return, tracker.recent)
        self.logger.progress(
            progress.global_step, total_steps, sps, self.tracker.episodes, self.tracker.mean_return
        )

    def _evaluate(self, episodes: int, seed: int, video_dir: Path | None = None) -> None:
        returns, lengths = evaluate(
            self.agent.net,
            self.cfg.env,
            episodes,
            self.cfg.eval.deterministic,
            seed,
            self.device,
            video_dir,
            self.obs_norm,
        )
        if video_dir is None:
            self.logger.eval_result(self.progress.global_step, returns, lengths)
        else:
            log_eval(self.out_dir, self.progress.global_step, returns, lengths, video_dir)

    def _check_finite(self, stats: dict[str, float]) -> None:
        flat = self.agent.optimizer.flat
        bad = [k for k in ("policy_loss", "value_loss", "grad_norm") if not math.isfinite(stats[k])]
        if not bad and not bool(torch.isfinite(flat).all()):
            bad = ["network parameters"]
        if not bad:
            return
        flat.copy_(self.last_good)
        path = self.job.last_good
        keep = ("version", "config", "model", "obs_norm", "progress")
        save_atomic({k: v for k, v in self.checkpoint().items() if k in keep}, path)
        saved = self.checkpointer.saved_step
        resumable = (
            f"the last resumable checkpoint is {LAST} at env step {saved:,}"
            if saved is not None
            else "no resumable checkpoint was written before it"
        )
        raise TrainingError(
            f"{bad[0]} is not finite at update {self.progress.updates} (env step "
            f"{self.progress.global_step:,}); training stopped. The weights from before that "
            f"update are in {path} (sharedppo-eval reads it); {resumable}"
        )

    def finish(self) -> None:
        """After a completed run: the video of an evaluation episode, when asked for."""
        if self.cfg.eval.video:
            self._evaluate(episodes=1, seed=self.cfg.seed, video_dir=self.job.videos)

    def result(self, status: str) -> TrainResult:
        tracker, progress = self.tracker, self.progress
        return TrainResult(
            status=status,
            global_step=progress.global_step,
            updates=progress.updates,
            episodes=tracker.episodes,
            mean_return=tracker.mean_return,
            best_return=tracker.best_mean if math.isfinite(tracker.best_mean) else None,
            auc_return=tracker.auc_return,
            seconds=progress.elapsed,
            target_return=tracker.target,
            target_step=tracker.target_step,
            target_seconds=progress.target_seconds,
            started_at=progress.started_at,
        )

    def close(self) -> None:
        if self.logger is not None:
            self.logger.final_metrics(final_metrics(self.result("closing")))
            self.logger.close()
        self.rollout.envs.close()
