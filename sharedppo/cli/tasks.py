"""A SLURM job of several tasks as one run across processes: ``hydra/launcher=slurm`` with
``hydra.launcher.tasks_per_node`` x ``hydra.launcher.nodes`` > 1.

Each task of the job is a rank, as each process of a ``torchrun`` launch is (run/distributed.py):
rank = SLURM_PROCID, world size = SLURM_NTASKS, local rank = SLURM_LOCALID, and the rendezvous
on the first host of the job's node list, at a port derived from the job id as submitit's
``TorchDistributedEnvironment`` derives it (``MASTER_PORT``, where set, wins). The launcher
(``hydra_plugins/sharedppo_launcher/submitit_slurm.py``) exports these before Hydra's job
machinery runs, in every task.

Hydra's submitit launcher runs the job in every task. Rank 0 runs it as a job of one task does:
it owns its folder, decides from it (keep, skip, resume or start), writes it and trains in a
watched child. A rank other than 0 writes nothing there: Hydra's log goes to a private folder,
and it reads the same folder to decide (:func:`follow_job`), which is as the job found it, since
rank 0 cannot change it before every rank has joined the process group to train.
"""

from __future__ import annotations

import atexit
import math
import os
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ..jobdir import JobDir
from . import stop
from .contain import run_in_child
from .sweep import Step, plan
from .torchrun import follower

# The port range submitit's TorchDistributedEnvironment draws from, seeded by the job id.
MIN_PORT, MAX_PORT = 20000, 60000
# A file that exists once rank 0's task has ended (submitit's result file of task 0), for the
# other ranks, which would otherwise wait for a rank 0 that never trained (refused its folder)
# until the rendezvous times out (SHAREDPPO_TIMEOUT_S).
FIRST_TASK_ENDED = "SHAREDPPO_FIRST_TASK_ENDED"
# A result file of rank 0's older than this task by more than this is from an earlier run of
# the job (SLURM requeues a job under its id): the tasks of one run start together, and nodes'
# clocks (a shared filesystem's times) agree to well within it.
SKEW_S = 10.0


class JobEnvironment(Protocol):
    """What is read of submitit's ``JobEnvironment`` (SLURM's variables, the node list parsed)."""

    job_id: str
    hostnames: list[str]
    num_tasks: int
    num_nodes: int
    global_rank: int
    local_rank: int


def torch_env(job: JobEnvironment) -> dict[str, str]:
    """The ``env://`` variables torch.distributed reads (as torchrun sets them) for a task."""
    port = os.environ.get("MASTER_PORT") or str(
        random.Random(job.job_id).randint(MIN_PORT, MAX_PORT)
    )
    return {
        "MASTER_ADDR": job.hostnames[0],
        "MASTER_PORT": port,
        "RANK": str(job.global_rank),
        "WORLD_SIZE": str(job.num_tasks),
        "LOCAL_RANK": str(job.local_rank),
        "LOCAL_WORLD_SIZE": str(job.num_tasks // job.num_nodes),
    }


def _usr2_as_sigterm(signum: int, frame: Any) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def join_tasks(job: JobEnvironment, first_ended: Path) -> Path | None:
    """In a task of a job: SLURM's time-limit warning made a stop (SIGTERM); in a job of more
    than one task, export its rank's variables, and for a rank other than 0 return a private
    folder for Hydra's log (removed at exit). None for rank 0 and for a job of one task.
    ``first_ended``: a file that rank 0's task writes as it ends."""
    # SLURM's time-limit warning (submitit's --signal=USR2@signal_delay_s) reaches every
    # process of every task; as SIGTERM it stops the run at one update on every rank and rank 0
    # writes last.pt once. submitit's own handler, inherited by the training child, ended a
    # job of one task "failed" (SystemExit -1) without a checkpoint, and would end rank 0's
    # task at once and the others not at all. A forked child inherits this one, and then
    # signals itself.
    signal.signal(signal.SIGUSR2, _usr2_as_sigterm)
    if job.num_tasks <= 1:
        return None
    os.environ.update(torch_env(job), **{FIRST_TASK_ENDED: str(first_ended)})
    if job.global_rank == 0:
        return None
    folder = tempfile.mkdtemp(prefix=f"sharedppo-rank{job.global_rank}-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder)


def private_log(config: DictConfig, folder: Path) -> DictConfig:
    """A job's config whose log files go to ``folder``: Hydra opens its job log (in the job's
    folder) in every task, before the job runs."""
    handlers = OmegaConf.select(config, "hydra.job_logging.handlers")
    if handlers is None:
        return config
    with read_write(handlers), open_dict(handlers):
        for name, handler in handlers.items():
            if isinstance(handler, DictConfig) and "filename" in handler:
                handler.filename = str(folder / f"{name}.log")
    return config


def follow_job(cfg: DictConfig, out_dir: Path, sweep: str | Path) -> float:
    """A sweep job on a rank other than 0: it decides from the folder as rank 0 does, without
    writing there, and trains its part in a watched child (a stop request of the sweep reaches
    it, a rank that dies is rank 0's to record). Rank 0's value is the job's."""
    job = JobDir(out_dir)
    requests = stop.requests_for(sweep)
    first_ended = Path(os.environ.get(FIRST_TASK_ENDED) or os.devnull)
    started = _process_start()
    step = plan(job, bool(cfg.retry_failed))
    # A stop request seen here and not by rank 0 (or the other way round) still ends both: the
    # request stays, and each watcher passes it to its child before that can train.
    if step in (Step.KEEP, Step.SKIP) or requests():
        return math.nan
    if step is Step.RESUME:
        cfg.resume = str(out_dir)

    def stop_requests() -> list[int]:
        found = requests()
        if not found and _written_since(first_ended, started - SKEW_S):  # rank 0 has ended
            return [signal.SIGTERM]
        return found

    with tempfile.TemporaryDirectory(prefix="sharedppo-rank-") as own, stop.busy():
        run_in_child(lambda: _follow(cfg, Path(own)), job, stop_requests)
    return math.nan


def _written_since(path: Path, since: float) -> bool:
    try:
        return path.is_file() and path.stat().st_mtime >= since
    except OSError:
        return False


def _process_start() -> float:
    """When this process (the task SLURM started) began, in seconds since the epoch (Linux's
    /proc; elsewhere now, a little later)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def _follow(cfg: DictConfig, out_dir: Path) -> int:
    follower(cfg, out_dir)
    return 0
