"""A sweep that continues, and one whose jobs cannot take it down.

Rerunning a sweep's own command with its folder, ``sharedppo -m ... hydra.sweep.dir=FOLDER``,
continues it: a job whose folder records that it completed is kept, one with a checkpoint and
no such record resumes from it (``resume=``), one that failed is rerun only with
``retry_failed=true`` (from its checkpoint where it has one), and the others start. Each job
decides from its own folder, in whatever process the launcher runs it, so every launcher
continues a sweep alike; then it trains in a child process of its own (``contain``), so that a
job that dies is recorded as failed and the launcher runs the rest.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import shlex
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from omegaconf import DictConfig

from ..jobdir import SUMMARY, JobDir, JobFolderError
from ..overrides import expand_sweep, key_of, quoted
from . import stop
from .contain import run_in_child

log = logging.getLogger("sharedppo")


class Step(enum.Enum):
    KEEP = "kept: it completed earlier"
    SKIP = "failed earlier; not retried (retry_failed=true reruns it)"
    RESUME = "resumes from its checkpoint"
    START = "starts"


# Sweep jobs refused their folder (another process trains there), for the command's exit code
# (the basic and processes launchers run jobs in the command's own process or its children).
REFUSED: list[str] = []


def plan(job: JobDir, retry_failed: bool) -> Step:
    """What a (re)run of the sweep does with this job, from what its folder holds."""
    status = (job.read_summary() or {}).get("status")
    if status == "completed":
        return Step.KEEP
    if status in ("failed", "refused") and not retry_failed:
        return Step.SKIP
    return Step.RESUME if job.last.is_file() else Step.START


def say(message: str) -> None:
    """To the terminal (stderr) and into the job's log file, which Hydra's console handler
    does not reach for stderr lines."""
    print(message, file=sys.stderr)
    record = logging.LogRecord("sharedppo", logging.WARNING, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def shown(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when inside it."""
    path = Path(path).resolve()
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def where_line(job: Path) -> str:
    return (
        f"results in {shown(job)} ({SUMMARY}, checkpoints/, TensorBoard events); "
        f"curves: tensorboard --logdir {shown(job)}"
    )


def sweep_line(sweep: Path, jobs: int) -> str:
    folder = shown(sweep)
    return (
        f"sweep: {jobs} jobs in {folder}; compare them: sharedppo-report {folder}; "
        f"curves: tensorboard --logdir {folder}"
    )


def job_value(job: JobDir) -> float:
    """What Hydra gets back for the job: its mean return, NaN where there is none."""
    value = (job.read_summary() or {}).get("mean_return")
    return float(value) if isinstance(value, (int, float)) else math.nan


def run_job(
    cfg: DictConfig,
    out_dir: Path,
    label: str,
    sweep: str | Path,
    body: Callable[[DictConfig, Path], int],
) -> float:
    """One job of a sweep, in the process the launcher gave it: keep, skip, resume or start
    it, training in a watched child process (``body(cfg, out_dir)``, its exit code)."""
    job = JobDir(out_dir)
    requests = stop.requests_for(sweep)  # first: a worker process heeds stop signals from now
    try:
        # Decided and cleared while this process owns the folder; the child owns it to train
        # (an flock held here would refuse the child its own).
        with job.own():
            step = plan(job, bool(cfg.retry_failed))
            if step in (Step.KEEP, Step.SKIP):
                (log.info if step is Step.KEEP else say)(f"sharedppo: {label} {step.value}")
                return job_value(job)
            if requests():
                log.info("sharedppo: %s not started: the sweep is stopping", label)
                return math.nan
            if step is Step.RESUME:
                cfg.resume = str(out_dir)
            else:
                removed = job.clear_run()
                if removed:
                    # A run that left no checkpoint: its curve would zig-zag under the new one.
                    names = ", ".join(p.name for p in removed)
                    log.info("%s: removed an earlier attempt's %s", label, names)
    except JobFolderError as err:  # another process trains there: its folder is not ours
        print(f"sharedppo: {label} not run: {err}", file=sys.stderr)
        REFUSED.append(label)
        return math.nan
    log.info("sharedppo: %s %s", label, step.value)
    with stop.busy():
        why = run_in_child(lambda: body(cfg, out_dir), job, requests)
        if why is not None:
            error = f"its process {why} before recording how the job ended"
            with suppress(JobFolderError), job.own():
                job.write_summary({"status": "failed", "error": error})
            say(f"sharedppo: {label} failed: {error}")
    return job_value(job)


_PLAIN = re.compile(r"^[\w/.:~+-]+$")


def continue_command(args: list[str], sweep: Path) -> str:
    """The command as given, with the sweep's folder: rerun, it continues the sweep."""
    folder = str(sweep) if _PLAIN.match(str(sweep)) else quoted(str(sweep))
    given = [a for a in args if key_of(a) != "hydra.sweep.dir"]
    return shlex.join(["sharedppo", *given, f"hydra.sweep.dir={folder}"])


def _states(sweep: Path) -> tuple[Counter[str], list[Path]]:
    """How many jobs ended which way (``not started`` counts jobs with no folder too)."""
    states: Counter[str] = Counter()
    failed = []
    jobs = JobDir.in_sweep(sweep)
    for job in jobs:
        status = (job.read_summary() or {}).get("status")
        if status is None:
            status = "unfinished" if job.last.is_file() else "not started"
        states[status] += 1
        if status == "failed":
            failed.append(job.path)
    expected = expand_sweep(sweep)
    if expected is not None and len(expected) > len(jobs):
        states["not started"] += len(expected) - len(jobs)
    return states, failed


def sweep_end(args: list[str]) -> int:
    """The sweep's closing lines (what each job did, how to continue it, the failed jobs
    last); the command's exit code: 128 + the signal that stopped it, 1 if a job failed."""
    sweep = stop.current_sweep()
    stop.sweep_ended()
    if sweep is None:  # no sweep ran (--help, --cfg, an error before the first job)
        return 0
    states, failed = _states(sweep)
    order = ["completed", "failed", "interrupted", "unfinished", "not started"]
    counts = ", ".join(
        f"{states[s]} {s}" for s in [*order, *sorted(set(states) - set(order))] if states[s]
    )
    signals = stop.received()
    line = f"sharedppo: sweep {sweep}: {counts or 'no jobs'}"
    if signals:
        line += f"; stopped by {stop.signal_name(signals[0])}"
    if failed:
        line += "; retry_failed=true reruns the failed jobs"
    print(line, file=sys.stderr)
    print(sweep_line(sweep, sum(states.values())), file=sys.stderr)
    if sum(states.values()) > states["completed"]:
        print(f"sharedppo: continue it with: {continue_command(args, sweep)}", file=sys.stderr)
    if failed:
        print(
            f"sharedppo: {len(failed)} of {sum(states.values())} jobs failed (see {SUMMARY} in "
            f"{', '.join(str(p) for p in failed)})",
            file=sys.stderr,
        )
    if signals:
        return 128 + signals[0]
    return 1 if failed else 0
