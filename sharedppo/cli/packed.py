"""``hydra/launcher=packed``: a sweep's jobs grouped into packs, each pack trained in one
process (``pack.train.train_pack``), ``n_jobs`` packs at a time.

Jobs whose resolved configs differ only in the keys a pack lets differ (``pack.group``) share
a pack of at most ``max_pack`` jobs; a job a population cannot hold trains alone. Each job
stays a job: its own folder (as Hydra names it for that job), ``.hydra/``, log file, summary
and checkpoints. The command decides, from each job's folder, whether it is kept, resumed or
started (``sweep.plan``), as every other launcher's jobs do; a pack is a process forked from
the command and watched by it, as ``hydra/launcher=processes`` watches a job (``launcher``).
A pack's process that dies takes only its own jobs with it: those that did not record how
they ended are recorded as failed, and the other packs go on. Ctrl-C reaches the command,
which passes it on to each running pack once (they checkpoint) and starts no further pack.

The plugin that registers it with Hydra is ``hydra_plugins/sharedppo_launcher``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ..jobdir import JobDir, JobFolderError
from ..pack.group import group, pack_lines
from ..pack.train import Member, train_pack
from ..tb.logger import Logger
from . import stop
from .contain import POLL_S, STOP_SIGNALS, describe, record_stamp, start_child
from .packlog import pack_logging
from .precheck import check_packed
from .sweep import REFUSED, Step, job_value, plan, say, shown

log = logging.getLogger(__name__)
# The jobs' own lines (keep, resume, start, failed) under the logger the jobs log to.
jobs_log = logging.getLogger("sharedppo")


@dataclass
class Job:
    """One job of the sweep as the command sees it."""

    num: int
    overrides: list[str]
    sweep_config: DictConfig  # the job's config with Hydra's, as Hydra's launchers load it
    cfg: DictConfig  # the job's config, as the task function would get it
    plain: dict[str, Any]  # cfg resolved, for grouping
    folder: JobDir
    step: Step = Step.START
    before: tuple[int, int, int] | None = None  # its summary's stamp when its pack started

    @property
    def label(self) -> str:
        return f"job {self.num} ({self.folder.path.name})"


@dataclass
class Running:
    number: int
    jobs: list[Job]
    sent: int = 0  # stop requests passed on to its process so far


def load_job(
    config: DictConfig, hydra_context: HydraContext, num: int, overrides: Sequence[str]
) -> Job:
    """The job's config as Hydra's own launchers resolve it (``hydra.job.num``/``id``, its
    sweep folder and subfolder, ``hydra.runtime.output_dir``)."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{num}"
        sweep_config.hydra.job.num = num
    HydraConfig.instance().set_config(sweep_config)
    folder = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
    with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
        sweep_config.hydra.runtime.output_dir = os.path.abspath(folder)
    HydraConfig.instance().set_config(sweep_config)  # ${hydra:...} in the job's config
    cfg = copy.deepcopy(sweep_config)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return Job(num, list(overrides), sweep_config, cfg, plain, JobDir(folder))


def plan_jobs(jobs: list[Job]) -> list[Job]:
    """Each job's step from its folder (``sweep.plan``); the jobs to train, a resumed one's
    ``resume`` set. Kept and skipped jobs are named here, as their own processes would."""
    todo = []
    for job in jobs:
        job.step = plan(job.folder, bool(job.cfg.retry_failed))
        if job.step in (Step.KEEP, Step.SKIP):
            message = f"sharedppo: {job.label} {job.step.value}"
            jobs_log.info(message) if job.step is Step.KEEP else say(message)
            continue
        if job.step is Step.RESUME:
            job.cfg.resume = str(job.folder.path)
        todo.append(job)
    return todo


def _claim(jobs: list[Job]) -> list[Job]:
    """Just before the pack starts: each job's folder cleared of an attempt that left no
    checkpoint, its record stamped; a folder another process holds is left to it."""
    claimed = []
    for job in jobs:
        try:
            with job.folder.own():
                if job.step is Step.START:
                    removed = job.folder.clear_run()
                    if removed:  # a run that left no checkpoint: its curve would zig-zag
                        names = ", ".join(p.name for p in removed)
                        jobs_log.info("%s: removed an earlier attempt's %s", job.label, names)
                job.before = record_stamp(job.folder)
        except JobFolderError as err:
            print(f"sharedppo: {job.label} not run: {err}", file=sys.stderr)
            REFUSED.append(job.label)
            continue
        claimed.append(job)
    return claimed


def run_pack(number: int, jobs: list[Job], verbose: Any) -> int:
    """In the pack's own process: each job's folder owned and its Hydra files written, its
    log file opened, then the pack trained. 0 once every job has recorded how it ended."""
    Logger.live = False  # plain progress lines: a live line would be overwritten by another's
    with ExitStack() as owned:
        members = []
        for job in jobs:
            try:
                owned.enter_context(job.folder.own())
            except JobFolderError as err:
                print(f"sharedppo: {job.label} not run: {err}", file=sys.stderr)
                continue
            HydraConfig.instance().set_config(job.sweep_config)
            # Hydra's files, now that the folder is this job's (hydra.output_subdir is null).
            job.folder.write_job(job.cfg, job.overrides, HydraConfig.instance().cfg)
            members.append(job)
        if not members:
            return 2
        logs = [(j.label, j.num, str(j.folder.path), j.sweep_config) for j in members]
        pack_logging(number, logs, verbose)
        for job in members:  # each job's first lines, as under hydra/launcher=processes
            own = {"member": job.label}
            jobs_log.info("%s", shown(job.folder.path), extra=own)
            jobs_log.info("sharedppo: %s %s", job.label, job.step.value, extra=own)
        codes = train_pack([Member(j.cfg, j.folder.path, j.label) for j in members])
    return max([*codes, 2 if len(members) < len(jobs) else 0])


def _pass_on(running: dict[int, Running], requests: list[int]) -> None:
    """Each new stop request to every running pack once: the first as it is (checkpoint, then
    stop), any later one as SIGINT (stop at once), as ``contain.run_in_child`` does."""
    for pid, pack in running.items():
        for n in range(pack.sent, len(requests)):
            with suppress(ProcessLookupError):
                os.kill(pid, requests[n] if n == 0 else signal.SIGINT)
        pack.sent = len(requests)


def finished(pack: Running, status: int) -> None:
    """A pack's process ended: a job it trained that did not record how it ended is marked
    failed, unless the pack was stopped on request before the job could record anything."""
    code = os.waitstatus_to_exitcode(status)
    stopped = stop.received() and code in (
        *(128 + s for s in STOP_SIGNALS),
        *(-s for s in STOP_SIGNALS),
    )
    if code == 0 or stopped:
        return
    for job in pack.jobs:
        if record_stamp(job.folder) != job.before:
            continue
        error = (
            f"its pack's process (pack {pack.number}) {describe(status)} before recording "
            "how the job ended"
        )
        with suppress(JobFolderError), job.folder.own():  # unless another process has it
            job.folder.write_summary({"status": "failed", "error": error})
            say(f"sharedppo: {job.label} failed: {error}")


def launch(
    config: DictConfig,
    hydra_context: HydraContext,
    n_jobs: int,
    max_pack: int,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> list[JobReturn]:
    """Group the jobs into packs and train them, ``n_jobs`` packs at once (<= 0: one per CPU);
    once the command is asked to stop, start no further pack and wait for the running ones."""
    check_packed(config.hydra.launcher)  # the command checked it, unless a sweeper of its own
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    sweeps_own = HydraConfig.instance().cfg  # each job's is set to resolve it, as run_job does
    try:
        jobs = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
            jobs.append(load_job(config, hydra_context, num, overrides))
    finally:
        HydraConfig.instance().cfg = sweeps_own
    todo = plan_jobs(jobs)
    at_once = n_jobs if n_jobs > 0 else usable_cpus()
    packs = group([j.plain for j in todo], max_pack, at_once)
    log.info(
        "Launching %d jobs in %d pack%s of at most %d, %d pack(s) at a time, each in a process "
        "of its own",
        len(todo),
        len(packs),
        "" if len(packs) == 1 else "s",
        max_pack,
        at_once,
    )
    plain, nums = [j.plain for j in todo], [j.num for j in todo]
    for line in pack_lines(packs, plain, nums, max_pack, at_once):
        log.info(line)
    pending = deque((n, [todo[i] for i in p.jobs]) for n, p in enumerate(packs, start=1))
    started = train_packs(pending, at_once, config.hydra.verbose)
    ran = ({j.num for j in jobs} - {j.num for j in todo}) | started  # kept, skipped, trained
    return [_return(j, j.num in ran) for j in jobs]


def usable_cpus() -> int:
    """The CPUs this process may run on (a cgroup or taskset may allow fewer than exist)."""
    affinity = getattr(os, "sched_getaffinity", None)  # not on macOS
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def train_packs(pending: deque[tuple[int, list[Job]]], at_once: int, verbose: Any) -> set[int]:
    """Each pack in a watched process of its own, ``at_once`` at a time, until the command is
    asked to stop; the numbers of the jobs whose packs started."""
    running: dict[int, Running] = {}
    started: set[int] = set()
    while pending or running:
        while pending and len(running) < at_once and not stop.received():
            number, members = pending.popleft()
            claimed = _claim(members)
            if claimed:
                pid = start_child(lambda n=number, c=claimed: run_pack(n, c, verbose))
                running[pid] = Running(number, claimed)
                started |= {j.num for j in claimed}
        if not running:
            break  # stopping (the packs left are not started), or nothing left to run
        _pass_on(running, stop.received())
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                finished(running.pop(pid), status)
        time.sleep(POLL_S)
    return started


def _return(job: Job, ran: bool) -> JobReturn:
    """The job's return for the sweeper, as ``hydra/launcher=processes`` gives it."""
    ret = JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED)
    ret.working_dir = os.getcwd()
    ret.return_value = job_value(job.folder) if ran else math.nan
    return ret
