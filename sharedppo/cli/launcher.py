"""``hydra/launcher=processes``: a sweep's jobs in processes of their own, ``n_jobs`` at a time.

Hydra's joblib launcher runs jobs in loky workers, which share the terminal's process group: a
Ctrl-C reaches a worker that is starting up or between jobs, it dies of it, and joblib then
kills every worker with its job (SIGKILL, no checkpoint). Here each job is a process forked
from the command, in a process group of its own: a Ctrl-C reaches the command alone, which
records it for the jobs' watchers (``stop``), starts no further job and waits for the running
ones to checkpoint. A job that dies, however it dies, is recorded as failed by its watcher or,
failing that, by the command. Forked, a job needs no pickling and no fresh interpreter (POSIX).

The plugin that registers it with Hydra is ``hydra_plugins/sharedppo_launcher``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from ..jobdir import JobDir
from . import stop
from .contain import POLL_S, describe, record_stamp, start_child
from .sweep import job_value

log = logging.getLogger(__name__)


@dataclass
class _Running:
    num: int
    overrides: Sequence[str]
    folder: JobDir
    before: tuple[int, int, int] | None


def _run_one(hydra_context: HydraContext, task: TaskFunction, sweep_config: DictConfig) -> int:
    """In the job's own process: Hydra's job machinery (folder, .hydra/, log, callbacks)."""
    HydraConfig.instance().set_config(sweep_config)
    ret = run_job(
        hydra_context=hydra_context,
        task_function=task,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    if ret.status == JobStatus.COMPLETED:
        return 0
    # The task raised (not training: that is recorded by the job); Hydra's basic launcher
    # would raise it in the sweeper, here it ends this job alone.
    error = ret._return_value
    log.error("job %s raised", sweep_config.hydra.job.num, exc_info=error)
    return 1


def _start(
    config: DictConfig,
    hydra_context: HydraContext,
    task: TaskFunction,
    num: int,
    overrides: Sequence[str],
) -> tuple[int, _Running]:
    log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{num}"
        sweep_config.hydra.job.num = num
    # The folder run_job will make, resolved as it resolves it, for the record afterwards.
    folder = JobDir(Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir))
    before = record_stamp(folder)
    pid = start_child(lambda: _run_one(hydra_context, task, sweep_config))
    return pid, _Running(num, overrides, folder, before)


def _finished(job: _Running, status: int) -> JobReturn:
    """The job's return for the sweeper; a process that died unrecorded is marked failed."""
    if os.waitstatus_to_exitcode(status) != 0 and record_stamp(job.folder) == job.before:
        error = f"its process {describe(status)} before recording how the job ended"
        job.folder.write_summary({"status": "failed", "error": error})
        log.error("job %d failed: %s", job.num, error)
    ret = JobReturn(overrides=list(job.overrides), status=JobStatus.COMPLETED)
    ret.working_dir = os.getcwd()
    ret.return_value = job_value(job.folder)
    return ret


def launch(
    config: DictConfig,
    hydra_context: HydraContext,
    task: TaskFunction,
    n_jobs: int,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> list[JobReturn]:
    """Run the jobs, ``n_jobs`` at once (<= 0: one per CPU); once the command is asked to
    stop, start none of those left (they return NaN) and wait for the running ones."""
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    at_once = n_jobs if n_jobs > 0 else os.cpu_count() or 1
    log.info(
        "Launching %d jobs, %d at a time, each in a process of its own", len(job_overrides), at_once
    )
    pending = deque(enumerate(job_overrides, start=initial_job_idx))
    running: dict[int, _Running] = {}
    returns: dict[int, JobReturn] = {}
    while pending or running:
        while pending and len(running) < at_once and not stop.received():
            pid, job = _start(config, hydra_context, task, *pending.popleft())
            running[pid] = job
        if not running:
            break  # stopping: the jobs left are not started
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                job = running.pop(pid)
                returns[job.num] = _finished(job, status)
        time.sleep(POLL_S)
    not_started = JobReturn(status=JobStatus.COMPLETED, _return_value=float("nan"))
    first = initial_job_idx
    return [returns.get(first + i, not_started) for i in range(len(job_overrides))]
