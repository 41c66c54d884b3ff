"""A job folder's layout, in one place; every other module reaches the files through JobDir.

    JOB/
      .hydra/overrides.yaml   the overrides the job was started with (resume=, report, HParams)
      .hydra/config.yaml      its composed config (and .hydra/hydra.yaml, Hydra's own)
      .lock                   flock()ed by the one process that trains in the folder
      summary.json            how it ended (strict JSON, replaced atomically)
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

The job writes ``.hydra/`` itself once it owns the folder (``hydra.output_subdir: null``, so
Hydra does not write it first); tuning trials and the API write the same files. Files are
written whole or not at all (``write_atomic``); a checkpoint is sealed with a SHA-256 of its
bytes and metadata, so a damaged file is told from a good one, and a finished job's summary
is read back from its last.pt without torch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .config import ConfigError
from .durable import Busy, Corrupt, lock, unlock, unsealed, write_atomic

HYDRA = ".hydra"
OVERRIDES = f"{HYDRA}/overrides.yaml"
CONFIG = f"{HYDRA}/config.yaml"
HYDRA_CONFIG = f"{HYDRA}/hydra.yaml"
LOCK = ".lock"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
LAST_GOOD = "last_good.pt"
# Zero-padded so that sorting the names sorts the snapshots by step.
SNAPSHOT = "step_{step:012d}.pt"
SNAPSHOTS = "step_*.pt"
EVENTS = "events.out.tfevents.*"
EVENT_FILE = "events.out.tfevents.{time:010d}.{host}.{pid}.{uid}"  # as TensorBoard names them
HISTORY = "resume_history.jsonl"
VIDEOS = "videos"
SWEEP_STOP = ".stop_requests"
TEMPORARY = ".*.tmp"  # write_atomic's files before their rename


class JobFolderError(ConfigError):
    """The folder is not this process's to write: another process trains in it, it holds
    another job, or it cannot be written. Nothing has been written into it."""


# Folders this process owns: resolved path -> [lock file descriptor, nesting depth]. A forked
# child owns none (durable closes its copies of the lock files).
_OWNED: dict[Path, list[int]] = {}
os.register_at_fork(after_in_child=_OWNED.clear)


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
        return cls(path if Path(path).is_dir() else Path(path).parent.parent)

    @classmethod
    def in_sweep(cls, sweep: str | os.PathLike[str]) -> list[JobDir]:
        """The jobs directly inside a sweep folder, in name order."""
        return [cls(p.parent) for p in sorted(Path(sweep).glob(f"*/{HYDRA}"))]

    @staticmethod
    def sweep_stop_file(sweep: str | os.PathLike[str]) -> Path:
        """A sweep's stop requests, for its jobs' watchers in other processes to read."""
        return Path(sweep) / SWEEP_STOP

    @staticmethod
    def checkpoint_file(path: str | os.PathLike[str]) -> Path:
        """A job folder's last checkpoint, or ``path`` itself when it is a file."""
        return JobDir(path).last if Path(path).is_dir() else Path(path)

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

    def write_job(
        self, config: DictConfig, overrides: list[str], hydra: DictConfig | None = None
    ) -> None:
        """The files Hydra would write for a job (``hydra``: Hydra's own config, when there is
        one), written by the job's owner."""
        write_atomic(self.overrides_file, OmegaConf.to_yaml(overrides).encode())
        write_atomic(self.config_file, OmegaConf.to_yaml(config).encode())
        if hydra is not None:
            write_atomic(self.path / HYDRA_CONFIG, OmegaConf.to_yaml(hydra).encode())

    # Ownership.
    @contextmanager
    def own(self) -> Iterator[None]:
        """Hold the folder for this process (re-entrant within it) through an exclusive
        flock() on its .lock file, which the OS releases when the process ends, kill -9
        included. Another process is refused in one line naming the owner. Temporary files
        left by a killed save are removed on the way in: no one else is writing."""
        key = self.path.resolve()
        if key in _OWNED:
            _OWNED[key][1] += 1
            try:
                yield
            finally:
                _OWNED[key][1] -= 1
            return
        fd = self._lock()
        _OWNED[key] = [fd, 1]
        try:
            for folder in (self.path, self.checkpoints):
                for stale in folder.glob(TEMPORARY):
                    stale.unlink(missing_ok=True)
            yield
        finally:
            _OWNED.pop(key, None)
            unlock(fd)

    def _lock(self) -> int:
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        note = f"process {os.getpid()} on {socket.gethostname()} (since {since})"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            return lock(self.path / LOCK, note)
        except Busy as holder:
            raise JobFolderError(
                f"{self.path} is in use by {holder}; a job folder has one writer at a time"
            ) from None
        except OSError as err:
            raise JobFolderError(f"cannot write to {self.path}: {err.strerror}") from None

    def started(self) -> bool:
        """Whether a run has trained here (a summary, a checkpoint or TensorBoard events), so
        a fresh run must not. Hydra's files alone do not count: the command, the API and a
        tuning trial write them just before training."""
        return self.summary_file.is_file() or self.last.is_file() or bool(self.events())

    def resume_command(self) -> str:
        return f"sharedppo resume={self.path}"

    def check_fresh(self) -> None:
        """Refuse, in one line, a fresh run into a folder where a job has trained: it would
        start again from step 0 over the job's last.pt and mix two runs' curves. The message
        gives the command that continues the job."""
        if not self.started():
            return
        summary = self.repair_summary() or {}
        status = summary.get("status", "no summary")
        meta = self.last_meta() or {}
        step = meta.get("step", summary.get("global_step"))
        if not self.last.is_file():
            raise JobFolderError(
                f"{self.path} already holds a job ({status}) with no checkpoint to continue; "
                "train into another folder or remove this one"
            )
        where = f" at env step {step:,}" if isinstance(step, int) else ""
        if meta.get("final") or status == "completed":
            more = 2 * step if isinstance(step, int) else "MORE"
            go_on = f"train it on with: {self.resume_command()} total_steps={more}"
        else:
            go_on = f"continue it with: {self.resume_command()}"
        raise JobFolderError(f"{self.path} already holds a job ({status}{where}); {go_on}")

    # The summary.
    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY

    def read_summary(self) -> dict[str, Any] | None:
        """The job's summary; None before the job has written one (or for one cut short by
        a sharedppo that wrote it in place)."""
        try:
            return json.loads(self.summary_file.read_text())
        except (OSError, ValueError):
            return None

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Strict JSON: a return that never existed (no episode, a NaN) is null, not the bare
        NaN that JSON parsers other than Python's reject. Replaced atomically."""
        clean = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in summary.items()
        }
        write_atomic(self.summary_file, (json.dumps(clean, indent=2) + "\n").encode())

    def last_meta(self) -> dict[str, Any] | None:
        """What last.pt's seal records (its env step, whether the run had finished, and then
        its summary); None for a missing, unsealed or damaged last.pt."""
        try:
            return unsealed(self.last.read_bytes())[1]
        except (OSError, Corrupt):
            return None

    def repair_summary(self) -> dict[str, Any] | None:
        """The job's summary, rebuilt from last.pt where the run finished (its final last.pt
        is written) but the summary of that finish is not (a kill or a full disk between the
        two writes), and written back when this process can own the folder."""
        summary = self.read_summary()
        meta = self.last_meta() if self.last.is_file() else None
        if not meta or not meta.get("final"):
            return summary
        final = meta["summary"]
        done = summary and summary.get("status") == "completed"
        if done and summary.get("global_step") == final.get("global_step"):
            return summary
        with suppress(JobFolderError, OSError), self.own():  # busy or read-only: in memory
            self.write_summary(final)
        return final

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
        checkpoints, history, videos; not Hydra's files), so that a fresh start is not drawn
        over the old curve. Returns what was removed."""
        gone = [p for p in (self.summary_file, self.history_file, *self.events()) if p.is_file()]
        gone += [p for p in (self.checkpoints, self.videos) if p.is_dir()]
        for path in gone:
            (shutil.rmtree if path.is_dir() else Path.unlink)(path)
        return gone

    def events(self) -> list[Path]:
        """TensorBoard's event files of the job, in name (so creation) order."""
        return sorted(self.path.glob(EVENTS))

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY

    @property
    def videos(self) -> Path:
        return self.path / VIDEOS
