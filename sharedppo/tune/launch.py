"""Starting N workers on one study: processes on this machine, or jobs through Hydra's submitit
launcher (``hydra/launcher=slurm``, ``submitit_slurm`` or ``submitit_local``)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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
    from hydra import compose, initialize_config_module

    from ..compose import register_configs

    register_configs()
    try:
        with initialize_config_module("sharedppo.conf", version_base="1.3"):
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


def run_worker(argv: list[str]) -> None:
    """A submitit job's body: one worker, failing the job if the worker fails."""
    import os

    from .cli import run

    # SLURM warns with USR2 (signal_delay_s before the time limit): stop as on SIGTERM, so
    # the trial writes last.pt and is marked interrupted instead of dying at the limit.
    signal.signal(signal.SIGUSR2, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    code = run(argv)
    if code != 0:
        raise RuntimeError(f"sharedppo-tune {' '.join(argv)} exited with {code}")


def submit(launcher: DictConfig, argvs: list[list[str]], out: Path) -> list[Any]:
    """The workers as one submitit job array, with the launcher's resources."""
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
    return executor.map_array(run_worker, argvs)


def run_submitit(launcher: DictConfig, argvs: list[list[str]], out: Path) -> int:
    """Submit the workers and wait for them, as Hydra's submitit launcher does."""
    jobs = submit(launcher, argvs, out)
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
