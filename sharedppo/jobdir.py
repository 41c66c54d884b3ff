"""A job folder's layout, in one place; every other module reaches the files through JobDir.

    JOB/
      .hydra/overrides.yaml   the overrides the job was started with (resume=, report, HParams)
      .hydra/config.yaml      its composed config
      summary.json            how it ended (strict JSON)
      checkpoints/last.pt     the resumable checkpoint; best.pt, step_NNNNNNNNNNNN.pt beside it
      checkpoints/last_good.pt  the weights from before a non-finite update
      events.out.tfevents.*   TensorBoard's event files: the job folder is one run
      resume_history.jsonl    what each resume changed
      videos/                 evaluation videos
      sharedppo.log           Hydra's log of the job (named after hydra.job.name; not read)

    SWEEP/
      multirun.yaml           Hydra's record of the sweep's command
      JOB/ ...                one folder per job, as above
      .stop_requests          while a sweep stops: one signal name a line (cli/stop.py)

A Hydra job writes ``.hydra/`` itself (Hydra's default ``hydra.output_subdir``); a tuning trial
and the Python API write the same two files there, so resume=, sharedppo-report and the
HParams dashboard read a job alike whoever started it. A job started with another
``hydra.output_subdir`` is not recognised as a job folder, as before.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

HYDRA = ".hydra"
OVERRIDES = f"{HYDRA}/overrides.yaml"
CONFIG = f"{HYDRA}/config.yaml"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
LAST_GOOD = "last_good.pt"
# Zero-padded so that sorting the names sorts the snapshots by step.
SNAPSHOT = "step_{step:012d}.pt"
SNAPSHOTS = "step_*.pt"
EVENTS = "events.out.tfevents.*"
HISTORY = "resume_history.jsonl"
VIDEOS = "videos"
SWEEP_STOP = ".stop_requests"


@dataclass(frozen=True)
class JobDir:
    """One job folder: where each of its files is, and how the shared ones are read and
    written. Nothing is created until something is written."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> JobDir:
        """The job of a job folder, or of a checkpoint file inside one's checkpoints/."""
        path = Path(path)
        return cls(path if path.is_dir() else path.parent.parent)

    @classmethod
    def in_sweep(cls, sweep: str | os.PathLike[str]) -> list[JobDir]:
        """The jobs directly inside a sweep folder, in name order."""
        return [cls(p.parent) for p in sorted(Path(sweep).glob(f"*/{HYDRA}"))]

    @staticmethod
    def sweep_stop_file(sweep: str | os.PathLike[str]) -> Path:
        """In a sweep folder: the stop requests its command received, for the jobs' watchers
        in other processes (a joblib worker, a submitit job) to read."""
        return Path(sweep) / SWEEP_STOP

    @staticmethod
    def checkpoint_file(path: str | os.PathLike[str]) -> Path:
        """A job folder's last checkpoint, or ``path`` itself when it is a file."""
        path = Path(path)
        return JobDir(path).last if path.is_dir() else path

    # Hydra's files.
    @property
    def hydra_dir(self) -> Path:
        return self.path / HYDRA

    @property
    def overrides_file(self) -> Path:
        return self.path / OVERRIDES

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    def is_job(self) -> bool:
        """Whether the folder holds a job (Hydra's, a tuning trial's or the API's)."""
        return self.hydra_dir.is_dir()

    def read_overrides(self) -> list[str]:
        """The overrides the job was started with; [] where the folder has none."""
        path = self.overrides_file
        return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []

    def write_job(self, config: DictConfig, overrides: list[str]) -> None:
        """The two files Hydra writes for a job, for a job that Hydra does not start."""
        self.hydra_dir.mkdir(parents=True, exist_ok=True)
        self.overrides_file.write_text(OmegaConf.to_yaml(overrides))
        self.config_file.write_text(OmegaConf.to_yaml(config))

    # The summary.
    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY

    def read_summary(self) -> dict[str, Any] | None:
        """The job's summary; None before the job has written one."""
        path = self.summary_file
        return json.loads(path.read_text()) if path.is_file() else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Strict JSON: a return that never existed (no episode, a NaN) is null, not the bare
        NaN that JSON parsers other than Python's reject."""
        clean = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in summary.items()
        }
        self.summary_file.write_text(json.dumps(clean, indent=2) + "\n")

    # Checkpoints.
    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST

    @property
    def last_good(self) -> Path:
        return self.checkpoints / LAST_GOOD

    def snapshot(self, step: int) -> Path:
        return self.checkpoints / SNAPSHOT.format(step=step)

    def snapshots(self) -> list[Path]:
        """The periodic snapshots, oldest first."""
        return sorted(self.checkpoints.glob(SNAPSHOTS))

    def clear_run(self) -> list[Path]:
        """Remove what an earlier attempt that left nothing to resume wrote (summary, events,
        checkpoints, history, videos), keeping Hydra's files and the log, so that a fresh
        start is not drawn over the old curve. Returns what was removed."""
        files = [p for p in (self.summary_file, self.history_file, *self.events()) if p.is_file()]
        folders = [p for p in (self.checkpoints, self.videos) if p.is_dir()]
        for path in files:
            path.unlink()
        for path in folders:
            shutil.rmtree(path)
        return files + folders

    # The rest.
    def events(self) -> list[Path]:
        """TensorBoard's event files of the job, in name (so creation) order."""
        return sorted(self.path.glob(EVENTS))

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY

    @property
    def videos(self) -> Path:
        return self.path / VIDEOS
