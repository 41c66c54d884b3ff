"""The ``sharedppo`` command under ``torchrun``: one job, N processes (run/distributed.py).

Rank 0 is the command as it runs alone: it names and owns the job folder, writes it and
speaks for the run. The other ranks compose the same config, train their part, and write
nothing there: Hydra's own files (its log) go to a private temporary folder.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from omegaconf import DictConfig

from ..config import ConfigError
from ..overrides import quoted
from ..run.checkpoint import CheckpointError
from ..run.distributed import env_rank, launched
from ..run.session import TrainingError, train
from ..run.signals import Interrupted

__all__ = ["follower", "follower_args", "check_launch", "launched", "env_rank"]


def check_launch(sweep: bool) -> None:
    if sweep and launched():
        raise ConfigError(
            "a sweep (-m) cannot run under torchrun: torchrun launches one job across "
            "processes; give each job its own torchrun (or sweep with a launcher)"
        )


def follower_args(args: list[str], owned: ExitStack) -> list[str]:
    """A rank other than 0: Hydra's run folder is a private temporary one."""
    folder = tempfile.mkdtemp(prefix=f"sharedppo-rank{env_rank()}-")
    owned.callback(shutil.rmtree, folder, ignore_errors=True)
    kept = [a for a in args if not a.lstrip("+").startswith("hydra.run.dir=")]
    return [*kept, f"hydra.run.dir={quoted(folder)}"]


def follower(cfg: DictConfig, out_dir: Path) -> float:
    """Train as a rank other than 0. Rank 0 says what happened; this rank says only what
    is its own (a lost peer, an error in its envs)."""
    logging.getLogger("sharedppo").setLevel(logging.WARNING)
    try:
        return train(cfg, out_dir).mean_return
    except Interrupted as stop:
        sys.exit(128 + stop.signum)
    except (ConfigError, CheckpointError):  # the same check refuses it on rank 0, which says so
        sys.exit(2)
    except TrainingError as err:
        print(f"sharedppo: rank {env_rank()}: error: {err}", file=sys.stderr)
        sys.exit(1)
