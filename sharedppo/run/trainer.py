"""The trainer: every part of one training job, built from the config, and the PPO loop."""

from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from ..algo.agent import PPOAgent
from ..algo.gae import compute_gae
from ..config import Config, ConfigError
from ..envs.build import make_envs, target_return
from ..jobdir import LAST, JobDir
from ..nn.heads import Categorical
from ..nn.normalize import RewardScaler
from ..nn.precision import Precision
from ..tb.dashboard import final_metrics
from ..tb.logger import Logger, log_eval
from .budget import check_fits
from .checkpoint import Checkpointer, GlobalRNG, Stateful, assemble, restore, save_atomic
from .collect import Collector
from .distributed import Ranks, Silent, StatsSync
from .episodes import EpisodeTracker
from .evaluate import evaluate
from .memory import RolloutMemory
from .model import build_model, obs_numbers, stored_obs_dtype
from .progress import EvalResult, Progress, seed_everything
from .result import TrainingError, TrainResult, result_of
from .signals import Interrupted

log = logging.getLogger("sharedppo")


class Trainer:
    def __init__(
        self,
        cfg: Config,
        config: dict[str, Any],
        out_dir: Path,
        device: torch.device,
        ranks: Ranks | None = None,
    ):
        """``ranks``: this process's place in a data-parallel run (run/distributed.py); rank
        r seeds its RNGs with seed + r and its envs after the lower ranks' envs."""
        self.cfg, self.config, self.out_dir, self.device = cfg, config, out_dir, device
        self.ranks = ranks = ranks or Ranks()
        self.job = JobDir(out_dir)
        seed_everything(cfg.seed + ranks.rank)
        envs, obs, info = make_envs(cfg.env, cfg.seed + ranks.rank * cfg.env.num_envs)
        try:
            self._build(envs, obs, info)
        except BaseException:
            # One path for every failure while building (a network or an action space the
            # config refuses): the envs and their worker processes are closed, not leaked.
            envs.close()
            raise
        self.tracker = EpisodeTracker(cfg.env.num_envs, target=target_return(cfg.env))
        every = cfg.checkpoint.every_steps
        self.checkpointer = Checkpointer(self.job, every, cfg.checkpoint.keep, every or 0)
        self.progress = Progress()
        # The weights before the update in flight, kept for a truthful NaN stop.
        self.last_good = self.agent.snapshot()
        self.logger: Logger | None = None
        self.resume_note = ""
        self.rank_states: list[dict[str, Any]] | None = None  # every rank's own parts
        # What the checkpoint's RNG part is: the process's generators, or a packed run's own.
        self.rng: Stateful = GlobalRNG()

    def _build(self, envs: VectorEnv, obs: np.ndarray, info: dict[str, Any]) -> None:
        """The parts that depend on the envs: network, agent, normalisers, collector, memory."""
        cfg, device = self.cfg, self.device
        env, ppo = cfg.env, cfg.ppo
        check_fits(cfg, device, *obs_numbers(envs))  # before allocating: one line, not a hang
        net, self.obs_norm = build_model(envs, env, cfg.network)
        precision = Precision(cfg.precision, device.type)
        self.agent = PPOAgent(net.to(device), ppo, precision, self.ranks.reducer)
        self.ranks.broadcast_(self.agent.optimizer.flat)  # rank 0's initial weights everywhere
        self.reward_scale = RewardScaler(
            env.num_envs, ppo.gamma, env.normalize_reward, env.reward_clip
        )
        state = net.initial_state(env.num_envs, device)
        self.collector = Collector(
            envs, obs, self.obs_norm, self.reward_scale, info, net.dist.num_outputs, state
        )
        self.collector.ranks = self.ranks.world_size
        rms = [n.rms for n in (self.obs_norm, self.reward_scale) if n is not None and n.enabled]
        self.stats_sync = StatsSync(rms, self.ranks)
        masked = self.collector.action_mask is not None
        if masked and not isinstance(net.dist, Categorical):
            raise ConfigError(
                f"env.id={env.id!r} supplies action masks, which need Discrete or MultiDiscrete "
                f"actions; its action space is {envs.single_action_space}"
            )
        self.memory = RolloutMemory(
            num_steps=ppo.num_steps,
            num_envs=env.num_envs,
            obs_shape=envs.single_observation_space.shape,
            device=device,
            mask_shape=net.mask_shape if net.dropout > 0 else None,
            action_shape=net.dist.action_shape,
            action_dtype=net.dist.action_dtype,
            action_mask_size=net.dist.num_outputs if masked else None,
            state_shape=net.state_shape,
            obs_dtype=stored_obs_dtype(envs, net, self.obs_norm),
        )

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
            "env": self.collector,
            "checkpointer": self.checkpointer,
            "progress": self.progress,
            "rng": self.rng,
        }

    def load(self, state: dict[str, Any], note: str = "") -> None:
        """Continue from a checkpoint (already checked by resume.check_resume); ``note`` goes
        to TensorBoard as text at the resume step."""
        if self.ranks.many:  # this rank's own parts, in place of rank 0's
            state = {**state, **state["ranks"][self.ranks.rank]}
        restore(state, self.parts())
        self.resume_note = note
        log.info("resumed %s from step %s", self.out_dir, f"{self.progress.global_step:,}")
        if state["checkpointer"]["next_step"] is None and self.checkpointer.every_steps:
            self.checkpointer.next_step = self.progress.global_step + self.checkpointer.every_steps

    def checkpoint(self) -> dict[str, Any]:
        state = assemble(self.config, self.parts())
        if self.ranks.many:
            state |= {"world_size": self.ranks.world_size, "ranks": self.rank_states}
        return state

    def fit(self, requested: list[int], on_update: Any = None) -> None:
        """Train until total_steps (or the target, with stop_on_target); a signal in
        ``requested`` or ``on_update`` returning True stops after the update in flight."""
        cfg, progress, agent, memory = self.cfg, self.progress, self.agent, self.memory
        gamma, lam, tracker = cfg.ppo.gamma, cfg.ppo.lam, self.tracker
        num_updates = self._open_logger()
        next_eval = progress.global_step + (cfg.eval.every_steps or 0)
        for update in range(progress.updates + 1, num_updates + 1):
            agent.set_progress(1.0 - (update - 1) / num_updates)
            self.stats_sync.begin()
            progress.global_step = self.collector.collect(
                agent, memory, tracker, progress.global_step, self._on_episodes
            )
            self.stats_sync.end()  # across ranks: the normalisers' statistics merged
            advantages, returns = compute_gae(**memory.gae_inputs(), gamma=gamma, lam=lam)
            memory.set_advantages(advantages, returns)
            stats = self._update(update)
            if update % cfg.log_every_updates == 0 or update == num_updates:
                self._log_update(stats, num_updates)
            if cfg.eval.every_steps is not None and progress.global_step >= next_eval:
                next_eval += cfg.eval.every_steps
                self._evaluate(episodes=cfg.eval.episodes, seed=cfg.seed + 10_000 + update)
            mean = tracker.mean_return
            stop = bool(requested) or bool(on_update and on_update(progress.global_step, mean))
            stop = self.ranks.agree(stop)  # every rank stops at the same update
            if self.checkpointer.due(progress.global_step) or stop:
                self._save(mean)
            if stop:
                raise Interrupted(requested[0] if requested else signal.SIGINT, update)
            if cfg.stop_on_target and self.ranks.agree(tracker.target_step is not None):
                break
        # The finished run's summary goes into its final last.pt: a kill before summary.json
        # is written loses nothing (JobDir.repair_summary).
        final = self.result("completed").summary()
        self._save(final["mean_return"], final)

    def _save(self, mean_return: float, summary: dict[str, Any] | None = None) -> None:
        """A checkpoint, and the HParams metrics as of it: a job killed later still shows in
        every HParams view, with what it had reached. Across ranks, rank 0 writes it with
        every rank's own parts."""
        self.rank_states = self.ranks.gather_parts(self.parts())
        if not self.ranks.main:  # the same schedule as rank 0's, which writes
            self.checkpointer.advance(self.progress.global_step)
            return
        self.checkpointer.save(self.checkpoint, self.progress.global_step, mean_return, summary)
        self.logger.final_metrics(final_metrics(self.result("running")))

    def _open_logger(self, say_budget: bool = True) -> int:
        """Open the TensorBoard run (continued on resume); returns the number of updates.
        ``say_budget``: log how total_steps rounds to whole rollouts (a pack says it once)."""
        cfg, progress = self.cfg, self.progress
        batch = cfg.ppo.num_steps * cfg.env.num_envs * self.ranks.world_size  # global
        num_updates = math.ceil(cfg.total_steps / batch)
        resumed = progress.global_step > 0
        if num_updates * batch != cfg.total_steps and not resumed and say_budget:
            log.info(
                "total_steps=%d becomes %d: whole rollouts of %d steps (env.num_envs x "
                "ppo.num_steps x ranks)",
                cfg.total_steps,
                num_updates * batch,
                batch,
            )
        if not self.ranks.main:  # rank 0 alone writes the job folder
            self.logger = Silent()
            return num_updates
        self.logger = Logger(
            self.out_dir,
            self.config,
            resume_step=progress.global_step + 1 if resumed else None,
            overrides=self.job.read_overrides(),
            has_target=self.tracker.target is not None,
        )
        if self.resume_note:
            self.logger.text("resume/history", self.resume_note, progress.global_step)
        return num_updates

    def _update(self, update: int) -> dict[str, float]:
        """PPO update number ``update`` on the memory's batch; one that leaves a loss or a
        weight non-finite stops the job with the weights from before it."""
        self.agent.snapshot(into=self.last_good)
        stats = self.agent.update(self.memory.batch())
        self.progress.updates = update
        self._check_finite(stats)
        return stats

    def _on_episodes(self, step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        self.logger.episodes_finished(step, returns, lengths)
        if self.progress.target_seconds is None and self.tracker.target_step is not None:
            self.progress.target_seconds = self.progress.elapsed

    def _log_update(self, stats: dict[str, float], num_updates: int, line: bool = True) -> None:
        """Stats to TensorBoard and, with ``line``, the progress line (a pack writes its own)."""
        progress, tracker, ranks = self.progress, self.tracker, self.ranks.world_size
        session_seconds = time.perf_counter() - progress.started
        sps = (progress.global_step - progress.session_start_step) / session_seconds
        stats = stats | {"SPS": sps, "learning_rate": self.agent.learning_rate}
        self.logger.update_stats(progress.global_step, stats, tracker.mean_return, tracker.recent)
        if not line:
            return
        total_steps = num_updates * self.cfg.ppo.num_steps * self.cfg.env.num_envs * ranks
        self.logger.progress(
            progress.global_step, total_steps, sps, tracker.episodes, tracker.mean_return
        )

    def _evaluate(self, episodes: int, seed: int, video_dir: Path | None = None) -> None:
        cfg, net = self.cfg, self.agent.net
        if not self.ranks.main:  # rank 0 evaluates; the others wait at the next collective
            return
        deterministic = cfg.eval.deterministic
        returns, lengths = evaluate(
            net, cfg.env, episodes, deterministic, seed, self.device, video_dir, self.obs_norm
        )
        if video_dir is None:
            self.progress.last_eval = EvalResult.of(self.progress.global_step, returns)
            self.logger.eval_result(self.progress.global_step, returns, lengths)
        else:
            log_eval(self.out_dir, self.progress.global_step, returns, lengths, video_dir)

    def _check_finite(self, stats: dict[str, float]) -> None:
        bad = [k for k in ("policy_loss", "value_loss", "grad_norm") if not math.isfinite(stats[k])]
        if not bad and not self.agent.weights_finite():
            bad = ["network parameters"]
        if not bad:
            return
        self.agent.restore(self.last_good)
        path = self.job.last_good
        keep = ("version", "config", "model", "obs_norm", "progress")
        if self.ranks.main:
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
        return result_of(status, self.tracker, self.progress)

    def close(self) -> None:
        if self.logger is not None:
            self.logger.final_metrics(final_metrics(self.result("closing")))
            self.logger.close()
        self.collector.envs.close()
