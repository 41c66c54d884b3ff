"""``train``: a composed config in, a trained job folder out (build, load, fit, finish)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..config import Config, ConfigError, validate
from ..jobdir import LAST, JobDir
from ..nn.precision import check_precision
from .checkpoint import CheckpointError, check_writable, read
from .distributed import check_world, join
from .resume import check_resume, record_resume, resume_note
from .signals import Interrupted, stop_requests
from .trainer import Trainer, TrainingError, TrainResult

__all__ = [
    "Interrupted",
    "TrainResult",
    "TrainingError",
    "resolve_device",
    "train",
]

log = logging.getLogger("sharedppo")
# Under torchrun, a signal this soon after the first is its echo, not a second Ctrl-C.
ECHO_S = 2.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name!r} is not allowed: this machine has no CUDA device "
            f"(torch {torch.__version__}); use device=cpu or device=auto"
        )
    return torch.device(name)


def train(
    cfg: DictConfig,
    out_dir: Path,
    on_update: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Train from a composed config, writing TensorBoard events, checkpoints and
    ``summary.json`` to out_dir; returns the result, with the agent as ``result.agent`` and
    the folder as ``result.out_dir``.

    The process owns out_dir while it trains (``JobDir.own``): another process is refused,
    and so is a fresh run into a folder where a job has trained (the message gives the
    ``resume=`` command). ``on_update(global_step, mean_return)`` is called after every
    update; returning True stops the run as a pre-emption would (last.pt written, resumable).

    Under ``torchrun`` (run/distributed.py) every process trains its part of the one job;
    rank 0 owns and writes out_dir, the others write nothing (:func:`follow`).
    """
    validate(cfg)  # a mistake in the config is refused before the folder is taken
    if not join(resolve_device(cfg.device))[0].main:
        return follow(cfg, out_dir)
    job = JobDir(out_dir)
    with job.own():
        return fit(open_trainer(cfg, out_dir), job, on_update)


def open_trainer(cfg: DictConfig, out_dir: Path) -> Trainer:
    """A job's trainer, built from its config and, on ``resume=``, loaded from the checkpoint
    it names; the caller owns ``out_dir`` (``JobDir.own``)."""
    validate(cfg)
    c: Config = OmegaConf.to_object(cfg)  # plain dataclasses: attribute access in hot loops
    config = OmegaConf.to_container(cfg, resolve=True)
    ranks, device = join(resolve_device(c.device))
    check_precision(c.precision, device)
    job = JobDir(out_dir)
    saved = None
    if c.resume is None:
        job.check_fresh()
    else:
        JobDir(c.resume).repair_summary()  # a finished job killed before its summary
        saved = read(JobDir(c.resume).last, map_location=device)
        changes = check_resume(saved, config, Path(c.resume))
        check_world(saved, ranks.world_size, c.resume)
    check_writable(job)
    if c.torch_threads > 0:
        torch.set_num_threads(c.torch_threads)
    if ranks.many:
        n = c.env.num_envs
        log.info(
            "one run across %d processes (ranks), %d envs each, %d in all",
            ranks.world_size,
            n,
            n * ranks.world_size,
        )
    trainer = Trainer(c, config, out_dir, device, ranks)
    if saved is not None:
        step = saved["progress"]["global_step"]
        try:
            trainer.load(saved, resume_note(step, changes))
        except BaseException:
            trainer.close()
            raise
        record_resume(out_dir, step, changes)  # only a resume that happened is on record
        if trainer.progress.started_at is None:  # a checkpoint from before layout 3
            before = JobDir(c.resume).read_summary() or {}
            trainer.progress.started_at = before.get("started_at")
    return trainer


def follow(cfg: DictConfig, out_dir: Path) -> TrainResult:
    """A rank other than 0: its envs, its part of every update, nothing written (rank 0
    owns the job folder and speaks for the run)."""
    c: Config = OmegaConf.to_object(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    ranks, device = join(resolve_device(c.device))
    check_precision(c.precision, device)
    saved = None
    if c.resume is not None:
        saved = read(JobDir(c.resume).last, map_location=device)
        check_world(saved, ranks.world_size, c.resume)
    trainer = Trainer(c, config, out_dir, device, ranks)
    try:
        if saved is not None:
            trainer.load(saved)
        with stop_requests(ECHO_S) as requested:
            trainer.fit(requested)
    finally:
        trainer.close()
    result = trainer.result("completed")
    result.agent = trainer.agent
    return result


def fit(
    trainer: Trainer, job: JobDir, on_update: Callable[[int, float], bool] | None
) -> TrainResult:
    """Run the trainer, and write summary.json however the run ends."""
    extra: dict[str, Any] = {}
    status = "failed"
    try:
        with stop_requests(ECHO_S if trainer.ranks.many else 0.0) as requested:
            trainer.fit(requested, on_update)
        status = "completed"
    except Interrupted as stop:
        status, extra = "interrupted", {"signal": str(stop), **resumable(trainer, job)}
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint now, last.pt is the last one
        status, extra = "interrupted", {"signal": "SIGINT", **resumable(trainer, job)}
        raise
    except BaseException as err:
        extra = {"error": f"{type(err).__name__}: {err}"}
        raise
    finally:
        trainer.close()
        result = trainer.result(status)
        unwritten = write_summary(job, {**result.summary(), **extra})
    if unwritten is not None:
        raise CheckpointError(
            f"the run finished but {job.summary_file} could not be written ({unwritten}); "
            f"its final {LAST} holds the summary, which resume= or sharedppo-report writes back"
        )
    trainer.finish()
    result.agent, result.out_dir = trainer.agent, job.path
    return result


def resumable(trainer: Trainer, job: JobDir) -> dict[str, Any]:
    """What an interrupted job's summary says about going on: a resume command only where a
    checkpoint exists to resume from, and the step it resumes at."""
    step = trainer.checkpointer.saved_step
    if step is None or not job.last.is_file():
        return {"resume": None, "checkpoint": f"none: stopped before the first {LAST}"}
    return {"resume": trainer.ranks.command(job.resume_command()), "resume_step": step}


def write_summary(job: JobDir, summary: dict[str, Any]) -> str | None:
    """Write summary.json; a failure (a full disk) is returned, not raised, so that it does
    not hide the error that ended the run."""
    try:
        job.write_summary(summary)
    except OSError as err:
        log.error("could not write %s: %s", job.summary_file, err.strerror)
        return err.strerror
    return None
