"""``train_pack``: the jobs of one pack in, each job's folder trained and recorded out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from ..jobdir import JobDir, JobFolderError
from ..run.session import train
from ..run.signals import Interrupted

log = logging.getLogger("sharedppo")


@dataclass
class Member:
    """One job of a pack: its composed config (``resume`` set where the sweep resumes it), its
    folder (made, with ``.hydra/`` written, by the launcher) and its label for log lines."""

    cfg: DictConfig
    out_dir: Path
    label: str


def train_pack(members: list[Member]) -> list[int]:
    """Train the pack's jobs; each job's folder records how it ended (``summary.json``).

    Returns each job's exit code, as a job of its own would end: 0 completed, 1 failed,
    2 refused its folder (another process trains there), 128 + the signal that stopped it.
    """
    return [_train_alone(m) for m in members]


def _train_alone(member: Member) -> int:
    """One job as ``sharedppo`` trains it: the path of a pack of one, and of jobs a population
    cannot hold."""
    job = JobDir(member.out_dir)
    try:
        train(member.cfg, member.out_dir)
    except JobFolderError as err:
        log.error("%s not run: %s", member.label, err)
        return 2
    except Interrupted as stop:
        log.warning(
            "%s stopped by %s at update %s; checkpoint saved", member.label, stop, stop.step
        )
        return 128 + stop.signum
    except Exception as err:
        log.error("%s failed: %s", member.label, err)
        if job.read_summary() is None:  # train() records the failure once it has started
            job.write_summary({"status": "failed", "error": f"{type(err).__name__}: {err}"})
        return 1
    return 0
