"""Starting N workers on one study: processes on this machine, or jobs through Hydra's submitit
launcher (``hydra/launcher=slurm``, ``submitit_slurm`` or ``submitit_local``)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose
from omegaconf import DictConfig, OmegaConf

from ..compose import hydra_context
from ..config import ConfigError

log = logging.getLogger("sharedppo.tune")

# submitit's own parameter names; the rest take the cluster's prefix (slurm_partition, ...),
# as in hydra-submitit-launcher.
BASE_PARAMS = {
    "timeout_min",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "mem_gb",
    "nodes",
    "name",
    "stderr_to_stdout",
}


def is_launcher_override(override: str) -> bool:
    return override.lstrip("+~").startswith(("hydra/launcher", "hydra.launcher"))


def launcher_config(overrides: list[str]) -> DictConfig | None:
    """The submitit launcher's settings the overrides select; None for any other launcher."""
    if not overrides:
        return None
    try:
        with hydra_context():
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"{' '.join(overrides)} is not allowed: {first}") from None
    launcher = cfg.hydra.launcher
    target = str(launcher.get("_target_", ""))
    if target.endswith(("SlurmLauncher", "LocalLauncher")) and "submitit" in target:
        return launcher
    raise ConfigError(
        f"hydra/launcher={target.rsplit('.', 1)[-1]} is not allowed for tuning: slurm, "
        "submitit_slurm or submitit_local (or none, for processes on this machine)"
    )


def run_local(argvs: list[list[str]]) -> int:
    """One ``sharedppo-tune`` worker process per argv; Ctrl-C and SIGTERM reach each once."""
    procs = [
        # Their own session: a terminal's Ctrl-C reaches the parent only, which passes it on
        # once (a second Ctrl-C to a worker means "stop now").
        subprocess.Popen([sys.executable, "-m", "sharedppo.tune", *argv], start_new_session=True)
        for argv in argvs
    ]

    def forward(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # A worker killed by a signal (a negative code) exits as a shell reports it: 128 + N.
        codes = [128 - code if code < 0 else code for code in (p.wait() for p in procs)]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return max(codes, key=abs)


def submit(
    launcher: DictConfig, argvs: list[list[str]], out: Path, body: Callable[[list[str]], None]
) -> list[Any]:
    """The workers as one submitit job array, with the launcher's resources; each job calls
    ``body(argv)`` (pickled by reference, so a module-level function)."""
    try:
        import submitit
    except ImportError:
        raise ConfigError('hydra/launcher needs submitit; pip install "sharedppo[sweep]"') from None
    cluster = "slurm" if str(launcher._target_).endswith("SlurmLauncher") else "local"
    params = OmegaConf.to_container(launcher, resolve=False)
    for key in ("_target_", "submitit_folder", "name"):
        params.pop(key, None)
    init = {}
    if "max_num_timeout" in params:  # an executor setting, not a job's
        init[f"{cluster}_max_num_timeout"] = params.pop("max_num_timeout")
    executor = submitit.AutoExecutor(folder=out / "submitit" / "%j", cluster=cluster, **init)
    executor.update_parameters(
        name="sharedppo-tune",
        **{k if k in BASE_PARAMS else f"{cluster}_{k}": v for k, v in params.items()},
    )
    return executor.map_array(body, argvs)


def run_submitit(
    launcher: DictConfig, argvs: list[list[str]], out: Path, body: Callable[[list[str]], None]
) -> int:
    """Submit the workers and wait for them, as Hydra's submitit launcher does."""
    jobs = submit(launcher, argvs, out, body)
    cluster = "slurm" if str(launcher._target_).endswith("SlurmLauncher") else "local"
    log.info("submitted %d workers (%s): %s", len(jobs), cluster, " ".join(j.job_id for j in jobs))
    failed = 0
    for job in jobs:
        try:
            job.result()
        except Exception as err:
            failed += 1
            log.info("worker %s failed: %s", job.job_id, str(err).strip().splitlines()[-1])
    return 1 if failed else 0
