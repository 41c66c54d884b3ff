"""What a training job ends with: its result (``summary.json``) or the error that stopped it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..tb.logger import shown_return

if TYPE_CHECKING:
    from .episodes import EpisodeTracker
    from .progress import Progress


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say); the message names what and where."""


LIVE = ("agent", "out_dir")  # TrainResult fields that hold objects, not results


@dataclass
class TrainResult:
    status: str  # completed | interrupted | failed
    global_step: int
    updates: int
    episodes: int
    mean_return: float  # of the last 20 episodes
    best_return: float | None  # best mean of 20 consecutive episodes
    auc_return: float  # the 20-episode mean averaged over the run's env steps
    seconds: float
    target_return: float | None
    target_step: int | None
    target_seconds: float | None
    started_at: float | None  # wall clock (time.time()) of the job's first step; None: unknown
    # The latest evaluation during training (eval.every_steps): step, episodes, mean_return,
    # std_return; None when none ran.
    eval: dict[str, Any] | None = None
    # Set by run.session.train once the job is finished; not part of summary.json.
    agent: Any = field(default=None, repr=False, compare=False)  # the trained PPOAgent
    out_dir: Path | None = field(default=None, repr=False, compare=False)  # the job folder

    def summary(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in LIVE}


def result_of(status: str, tracker: EpisodeTracker, progress: Progress) -> TrainResult:
    """The result of a job as its episodes and progress stand."""
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
        eval=None if progress.last_eval is None else asdict(progress.last_eval),
    )


def closing_line(result: TrainResult) -> str:
    """The line a finished job ends with: steps, time, return, target, evaluation."""
    line = f"done: {result.global_step:,} steps in {result.seconds:.1f} s"
    if result.episodes:
        line += f", mean return (last 20 episodes) {shown_return(result.mean_return)}"
    else:
        line += ", no episode finished"
    if result.target_return is not None:
        line += (
            f"; target {result.target_return:g} reached at step {result.target_step:,} "
            f"({result.target_seconds:.2f} s)"
            if result.target_step is not None
            else f"; target {result.target_return:g} not reached"
        )
    if result.eval is not None:
        ev = result.eval
        line += (
            f"; evaluation {shown_return(ev['mean_return'])} ± {shown_return(ev['std_return'])} "
            f"({ev['episodes']} episodes at step {ev['step']:,})"
        )
    return line


def failed_summary(err: BaseException) -> dict[str, str]:
    """The summary of a job that failed before training recorded anything itself."""
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"}
