"""Sweep report: one row per configuration across seeds, the swept keys in the first columns.

Writes report.csv, report.md, report.html (self-contained) and report_curves.png into the
sweep folder (several folders compared: into ``out``, with a ``sweep`` column first).
Intervals are percentile-bootstrap 95% CIs of the mean over seeds. Where jobs evaluated
(``eval.every_steps``, ``sharedppo-eval``), their latest evaluation return is a column too.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobdir import HYDRA, JobDir
from ..overrides import key_of, varied_keys
from .files import write_outputs
from .stats import Row, Stat, curve_stats

TAG = "charts/episodic_return"
EVAL_TAG = "eval/mean_return"
SOURCE = "sweep"  # the column naming each job's folder when several are compared


def read_returns(job: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(env steps, episode returns, the latest evaluation's mean return or nan) of one job,
    straight from its event files.

    A resumed session starts its file with TensorBoard's purge mark (a START session log at
    its checkpoint's step + 1): what earlier sessions logged from that step on came after the
    checkpoint it resumed from, was replaced by the resumed session, and is dropped, as
    TensorBoard drops it on display. So a job killed after its last checkpoint and resumed
    counts each episode once, as its summary.json does.
    """
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog
    from tensorboard.util import tensor_util

    def started(path: Path) -> float:
        first = next(iter(EventFileLoader(str(path)).Load()), None)
        return first.wall_time if first is not None else 0.0

    points: list[tuple[int, float]] = []
    evals: list[tuple[int, float]] = []
    # Sessions in the order they started (file names order by whole seconds, then by pid).
    for path in sorted(JobDir(job).events(), key=started):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                points = [p for p in points if p[0] < event.step]
                evals = [e for e in evals if e[0] < event.step]
            for v in event.summary.value:
                if v.tag not in (TAG, EVAL_TAG):
                    continue
                if v.HasField("tensor"):
                    value = float(tensor_util.make_ndarray(v.tensor))
                else:
                    value = v.simple_value
                (points if v.tag == TAG else evals).append((event.step, value))
    points.sort(key=lambda p: p[0])  # stable: episodes of one step keep their order
    steps = np.asarray([p[0] for p in points], dtype=np.int64)
    latest = max(evals, key=lambda e: e[0])[1] if evals else math.nan
    return steps, np.asarray([p[1] for p in points], dtype=np.float64), latest


@dataclass
class Job:
    path: Path
    overrides: list[str]
    status: str
    steps: np.ndarray = field(repr=False)
    returns: np.ndarray = field(repr=False)
    eval_return: float = math.nan  # the latest evaluation's mean return; nan: none ran
    source: str = ""  # the folder it was found in, as given

    def value(self, key: str) -> str:
        """This job's value of an overridden key (the last given wins); '-' for the default."""
        if key == SOURCE:
            return self.source
        for override in reversed(self.overrides):
            if key_of(override) == key:
                return override.split("=", 1)[1] if "=" in override else "(deleted)"
        return "-"


def read_job(path: Path) -> Job:
    job = JobDir(path)
    summary = job.repair_summary()  # a finished job killed before its summary gets it back
    status = "incomplete" if summary is None else summary.get("status", "completed")
    steps, returns, eval_return = read_returns(path)
    return Job(path, job.read_overrides(), status, steps, returns, eval_return)


def swept_keys(jobs: list[Job]) -> list[str]:
    """Keys whose values differ across the jobs; not the seed (it is what repeats), not
    ``resume`` (a resumed job continues its own configuration), not ``retry_failed`` (how
    a sweep was continued)."""
    skip = ("seed", "resume", "retry_failed")
    keys = [k for k in varied_keys([j.overrides for j in jobs]) if k not in skip]
    return [SOURCE, *keys] if len({j.source for j in jobs}) > 1 else keys


def _natural(text: str) -> list[object]:
    """Sort key that orders numbers by value: 0.1 < 0.3 < 1e-3 as numbers, then text."""
    try:
        return [0, float(text), ""]
    except ValueError:
        return [1, 0.0, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]]


def summarise(jobs: list[Job], threshold: float | None, window: int) -> list[Row]:
    keys = swept_keys(jobs)
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.value(k) for k in keys), []).append(job)
    rows = []
    for values, members in sorted(groups.items(), key=lambda g: [_natural(v) for v in g[0]]):
        ok = [j for j in members if j.status == "completed" and len(j.returns)]
        stats = [curve_stats(j.steps, j.returns, window) for j in ok]
        hits = []
        if threshold is not None:
            for j, s in zip(ok, stats, strict=True):
                full = np.arange(len(s.curve)) >= window - 1
                above = np.flatnonzero(full & (s.curve >= threshold))
                if len(above):
                    hits.append(float(j.steps[above[0]]))
        rows.append(
            Row(
                dict(zip(keys, values, strict=True)),
                len(ok),
                len(members) - len(ok),
                Stat.of([s.final for s in stats]),
                Stat.of([s.best for s in stats]),
                Stat.of([s.auc for s in stats]),
                len(hits),
                float(np.median(hits)) if hits else math.nan,
                [(j.steps, s.curve) for j, s in zip(ok, stats, strict=True)],
                Stat.of([j.eval_return for j in ok if not math.isnan(j.eval_return)]),
            )
        )
    return rows


def job_folders(sweep: Path) -> list[Path]:
    """Job folders (subfolders with .hydra/), whatever they are named, in a natural order;
    also one level down (a tuning trial of several seeds: trial_NNN/seed_S). A job folder
    itself is a sweep of one."""
    if JobDir(sweep).is_job():
        return [sweep]
    return sorted(
        (p for p in [*sweep.glob("*/"), *sweep.glob("*/*/")] if JobDir(p).is_job()),
        key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))],
    )


def report(
    sweeps: Path | Sequence[Path],
    threshold: float | None = None,
    window: int = 20,
    out: Path | None = None,
) -> list[Row]:
    """Read every job of one or more sweeps (or job folders: a baseline) and write the report
    files into ``out`` (default: the one sweep's folder); one row per configuration, and with
    several folders, per folder."""
    sweeps = [Path(sweeps)] if isinstance(sweeps, (str, Path)) else [Path(s) for s in sweeps]
    found = {sweep: job_folders(sweep) for sweep in sweeps}
    for sweep, folders in found.items():
        if not folders:
            raise FileNotFoundError(
                f"{sweep} is not a job folder and holds none (folders with {HYDRA}/)"
            )
    folders = [f for fs in found.values() for f in fs]
    workers = min(len(folders), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            jobs = list(pool.map(read_job, folders, chunksize=8))
    else:
        jobs = [read_job(f) for f in folders]
    sources = [str(sweep) for sweep, fs in found.items() for _ in fs]
    for job, source in zip(jobs, sources, strict=True):
        job.source = source
    rows = summarise(jobs, threshold, window)
    if out is None and len(sweeps) > 1:
        raise ValueError("several folders are compared: say where the report goes (out)")
    folder = out or sweeps[0]
    folder.mkdir(parents=True, exist_ok=True)
    write_outputs(folder, rows, threshold, window)
    return rows
