"""Sweep report: one row per configuration across seeds, the swept keys in the first columns.

Writes report.csv, report.md, report.html (self-contained) and report_curves.png into the
sweep folder. Intervals are percentile-bootstrap 95% CIs of the mean over seeds.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobdir import HYDRA, JobDir
from ..overrides import key_of, varied_keys
from .files import write_outputs
from .stats import Row, Stat, curve_stats

TAG = "charts/episodic_return"


def read_returns(job: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, episode returns) of one job, straight from its event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    steps: list[int] = []
    values: list[float] = []
    for path in JobDir(job).events():
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                if v.tag == TAG:
                    steps.append(event.step)
                    if v.HasField("tensor"):
                        values.append(float(tensor_util.make_ndarray(v.tensor)))
                    else:
                        values.append(v.simple_value)
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps)[order], np.asarray(values, dtype=np.float64)[order]


@dataclass
class Job:
    path: Path
    overrides: list[str]
    status: str
    steps: np.ndarray = field(repr=False)
    returns: np.ndarray = field(repr=False)

    def value(self, key: str) -> str:
        """This job's value of an overridden key (the last given wins); '-' for the default."""
        for override in reversed(self.overrides):
            if key_of(override) == key:
                return override.split("=", 1)[1] if "=" in override else "(deleted)"
        return "-"


def read_job(path: Path) -> Job:
    job = JobDir(path)
    summary = job.read_summary()
    status = "incomplete" if summary is None else summary.get("status", "completed")
    steps, returns = read_returns(path)
    return Job(path, job.read_overrides(), status, steps, returns)


def swept_keys(jobs: list[Job]) -> list[str]:
    """Keys whose values differ across the jobs; not the seed (it is what repeats), not
    ``resume`` (a resumed job continues its own configuration), not ``retry_failed`` (how
    a sweep was continued)."""
    skip = ("seed", "resume", "retry_failed")
    return [k for k in varied_keys([j.overrides for j in jobs]) if k not in skip]


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


def report(sweep: Path, threshold: float | None = None, window: int = 20) -> list[Row]:
    """Read every job of a sweep and write the report files; one row per configuration."""
    folders = job_folders(sweep)
    if not folders:
        raise FileNotFoundError(
            f"{sweep} is not a job folder and holds none (folders with {HYDRA}/)"
        )
    workers = min(len(folders), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            jobs = list(pool.map(read_job, folders, chunksize=8))
    else:
        jobs = [read_job(f) for f in folders]
    rows = summarise(jobs, threshold, window)
    write_outputs(sweep, rows, threshold, window)
    return rows
