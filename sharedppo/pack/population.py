"""A pack's runs trained as one population: ``Trainer.fit`` for every run at once.

Each run is a ``run.trainer.Trainer`` built as an unpacked job builds it (its seed, envs,
network, optimizer, memory, normalisers, episode tracker, checkpointer, TensorBoard run),
so everything a job records is recorded by the code that records it for a job of its own.
The population takes over three things: the parameters and Adam's moments (stacked rows,
``Stacked``), acting (one batched forward pass, ``collect``) and the update (``PackUpdate``);
and it gives each run a generator of its own, started where its unpacked twin's global
generator would be, which its checkpoints store as their RNG state.

A run that finishes (its budget, or its target with ``stop_on_target``) or fails (a NaN, its
env raising) is recorded there and then and rests; the others go on.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from typing import Any

import torch

from ..algo.gae import compute_gae
from ..algo.gradient import Fused
from ..envs.merged import MergedCartPole, mergeable
from ..jobdir import JobDir
from ..run.checkpoint import GlobalRNG
from ..run.result import closing_line
from ..run.session import resumable, write_summary
from ..run.signals import Interrupted
from ..run.trainer import Trainer, TrainingError
from ..tb.logger import shown_return
from . import forward as F
from .collect import Lane, Shared, collect
from .stacked import Stacked
from .update import PackUpdate

log = logging.getLogger("sharedppo")
PROGRESS_EVERY_S = 10.0


class LaneRNG(GlobalRNG):
    """A packed run's RNG part of its checkpoints: ``GlobalRNG``'s layout with the run's own
    torch generator in it; loading it restarts that generator."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self._cpu():  # a CUDA run's checkpoint keeps the CPU one, as an unpacked run's does
            state["torch"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._cpu():
            self.generator.set_state(state["torch"])
        else:
            torch.set_rng_state(state["torch"])

    def _cpu(self) -> bool:
        return self.generator.device.type == "cpu"


def own_generator(device: torch.device) -> torch.Generator:
    """A generator started where the process's own is now (a run's, just built or loaded)."""
    gen = torch.Generator(device=device)
    state = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    gen.set_state(state)
    return gen


class Population:
    def __init__(self, trainers: list[Trainer], labels: list[str], generators: list) -> None:
        self.trainers, self.labels = trainers, labels
        agents = [t.agent for t in trainers]
        nets = [a.net for a in agents]
        self.shape = F.Shape.of(nets[0])
        self.stacked = Stacked(nets, [a.optimizer for a in agents])
        for agent in agents:  # bound once: nothing moves a packed run's network
            agent.optimizer.check_bound()
        for t, gen in zip(trainers, generators, strict=True):
            t.rng = LaneRNG(gen)
        self.lanes = [
            Lane(t.collector, t.memory, t.tracker, gen, t.agent.net)
            for t, gen in zip(trainers, generators, strict=True)
        ]
        self.shared = Shared(self.lanes)
        envs = [t.collector.envs for t in trainers]
        self.merged = MergedCartPole(envs) if mergeable(envs) else None
        fused = isinstance(agents[0].gradient, Fused)
        self.update = PackUpdate(self.shape, self.stacked, agents, generators, fused)
        self.status: list[str | None] = [None] * len(trainers)
        self.extra: list[dict[str, Any]] = [{} for _ in trainers]
        self._last_line = 0.0

    def fit(self, requested: list[int]) -> None:
        """Train every run to its end; a stop request checkpoints every run still training
        and ends them all as interrupted."""
        trainers, lanes = self.trainers, self.lanes
        totals = [t._open_logger(say_budget=r == 0) for r, t in enumerate(trainers)]
        next_eval = [t.progress.global_step + (t.cfg.eval.every_steps or 0) for t in trainers]
        for r, t in enumerate(trainers):
            if t.progress.updates >= totals[r]:  # resumed after its last update
                self._complete(r)
        while any(lane.active for lane in lanes):
            for r, t in enumerate(trainers):
                if lanes[r].active:
                    t.agent.set_progress(1.0 - t.progress.updates / totals[r])
            steps = collect(
                self.shape,
                self.stacked,
                lanes,
                self.shared,
                [t.progress.global_step for t in trainers],
                [t._on_episodes for t in trainers],
                self.merged,
            )
            for r, t in enumerate(trainers):
                if lanes[r].error is not None and self.status[r] is None:
                    err = lanes[r].error
                    log.error("%s failed: %s", self.labels[r], err, exc_info=err)
                    self._end(r, "failed", {"error": f"{type(err).__name__}: {err}"})
                if lanes[r].active:
                    t.progress.global_step = steps[r]
                    ppo = t.cfg.ppo
                    adv, ret = compute_gae(**t.memory.gae_inputs(), gamma=ppo.gamma, lam=ppo.lam)
                    t.memory.set_advantages(adv, ret)
                    t.agent.snapshot(into=t.last_good)
            active = [lane.active for lane in lanes]
            stats = self.update.run([t.memory.batch() for t in trainers], active)
            # Every run's weights checked at once; a run whose weights or stats are not
            # finite is checked (and failed) by its own trainer.
            finite = torch.isfinite(self.stacked.flat).all(1).tolist()
            for r in range(len(trainers)):
                if active[r]:
                    self._after_update(r, stats[r], totals[r], next_eval, requested, finite[r])
            self._progress_line(totals)
        if requested:
            raise Interrupted(requested[0], max(t.progress.updates for t in trainers))

    def _after_update(
        self,
        r: int,
        stats: dict[str, float],
        total: int,
        next_eval: list[int],
        requested: list[int],
        finite: bool,
    ) -> None:
        """``Trainer.fit``'s bookkeeping after one run's update: its NaN check, logs,
        evaluation, checkpoint, and whether it is done."""
        t = self.trainers[r]
        cfg, progress = t.cfg, t.progress
        progress.updates += 1
        try:
            if not finite or not all(map(math.isfinite, stats.values())):
                t._check_finite(stats)
        except TrainingError as err:
            self._end(r, "failed", {"error": f"TrainingError: {err}"})
            log.error("%s failed: %s", self.labels[r], err)
            return
        if progress.updates % cfg.log_every_updates == 0 or progress.updates == total:
            t._log_update(stats, total, line=False)
        if cfg.eval.every_steps is not None and progress.global_step >= next_eval[r]:
            next_eval[r] += cfg.eval.every_steps
            t._evaluate(episodes=cfg.eval.episodes, seed=cfg.seed + 10_000 + progress.updates)
        mean = t.tracker.mean_return
        if requested:
            t._save(mean)
            job = JobDir(t.out_dir)
            name = signal.Signals(requested[0]).name
            self._end(r, "interrupted", {"signal": name, **resumable(t, job)})
            # As a job trained alone says it (pack.train, cli.app).
            log.warning(
                "%s stopped by %s at update %s; checkpoint saved",
                self.labels[r],
                name,
                progress.updates,
            )
        elif progress.updates >= total or (cfg.stop_on_target and t.tracker.target_step):
            self._complete(r)
        elif t.checkpointer.due(progress.global_step):
            t._save(mean)

    def _complete(self, r: int) -> None:
        t = self.trainers[r]
        final = t.result("completed").summary()
        t._save(final["mean_return"], final)
        self._end(r, "completed", {})

    def _end(self, r: int, status: str, extra: dict[str, Any]) -> None:
        """Record how run ``r`` ended (``session.fit``'s end of a job), and rest it."""
        t, lane = self.trainers[r], self.lanes[r]
        lane.active = False
        self.status[r], self.extra[r] = status, extra
        t.close()
        result = t.result(status)
        write_summary(JobDir(t.out_dir), {**result.summary(), **extra})
        if status == "completed":
            t.finish()
            log.info("%s %s", self.labels[r], closing_line(result))

    def fail_rest(self, err: BaseException, status: str = "failed") -> None:
        """End every run still training, recording ``err`` (or, for a second Ctrl-C, that it
        was interrupted without a new checkpoint)."""
        for r, lane in enumerate(self.lanes):
            if not lane.active:
                continue
            if status == "interrupted":
                job = JobDir(self.trainers[r].out_dir)
                extra = {"signal": "SIGINT", **resumable(self.trainers[r], job)}
            else:
                extra = {"error": f"{type(err).__name__}: {err}"}
            self._end(r, status, extra)

    def _progress_line(self, totals: list[int]) -> None:
        now = time.perf_counter()
        if now - self._last_line < PROGRESS_EVERY_S:
            return
        self._last_line = now
        running = [r for r, lane in enumerate(self.lanes) if lane.active]
        if not running:
            return
        slowest = min(running, key=lambda r: self.trainers[r].progress.updates)
        means = [self.trainers[r].tracker.mean_return for r in running]
        shown = [shown_return(m) for m in means if math.isfinite(m)]
        log.info(
            "pack: %d of %d runs training, update %d/%d (the furthest behind), mean returns %s",
            len(running),
            len(self.lanes),
            self.trainers[slowest].progress.updates,
            totals[slowest],
            " ".join(shown) or "-",
        )
