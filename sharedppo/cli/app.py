"""The ``sharedppo`` command: Hydra app, one-line errors, ``resume=JOB``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ..compose import (
    CONFIG_MODULE,
    VERSION_BASE,
    bare_env_id,
    open_mapping_overrides,
    recipe_line,
    register_configs,
)
from ..config import ConfigError
from ..jobdir import OVERRIDES, SUMMARY, JobDir
from ..overrides import key_of, quoted, register_resolvers
from ..run.checkpoint import CheckpointError
from ..run.session import TrainingError, TrainResult, train
from ..run.signals import Interrupted
from .precheck import check_command, check_stored_overrides

log = logging.getLogger("sharedppo")
register_configs()
register_resolvers()


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name="config")
def _app(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    job = JobDir(out_dir)
    log.info(recipe_line(list(hydra_cfg.overrides.task), cfg.total_steps))
    try:
        result = train(cfg, out_dir)
    except Interrupted as stop:
        say(
            f"sharedppo: {stop} at update {stop.step}; checkpoint saved. Resume with: "
            f"sharedppo resume={out_dir}"
        )
        sys.exit(128 + stop.signum)
    except Exception as err:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            # One failed job (a bad value, a NaN, a bug) must not end the sweep: record it
            # where the sweep report looks, and let the launcher go on with the others.
            log.exception("job %s failed", hydra_cfg.job.num)
            print(f"sharedppo: job {hydra_cfg.job.num} failed: {err}", file=sys.stderr)
            if not job.summary_file.is_file():  # train() writes one once it started
                job.write_summary({"status": "failed", "error": f"{type(err).__name__}: {err}"})
            return float("nan")
        if isinstance(err, (ConfigError, CheckpointError, TrainingError)):
            # Refused before training began: the new folder says so (a resumed job's folder
            # keeps its own record).
            if cfg.resume is None and not job.summary_file.is_file():
                job.write_summary({"status": "refused", "error": str(err)})
            say(f"sharedppo: error: {err}")
            sys.exit(1 if isinstance(err, TrainingError) else 2)
        raise
    log.info(closing_line(result))
    return result.mean_return


def say(message: str) -> None:
    """To the terminal (stderr) and into the job's log file, which Hydra's console handler
    does not reach for stderr lines."""
    print(message, file=sys.stderr)
    record = logging.LogRecord("sharedppo", logging.WARNING, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def closing_line(result: TrainResult) -> str:
    line = f"done: {result.global_step:,} steps in {result.seconds:.1f} s"
    if result.episodes:
        line += f", mean return (last 20 episodes) {result.mean_return:.1f}"
    else:
        line += ", no episode finished"
    if result.target_return is not None:
        line += (
            f"; target {result.target_return:g} reached at step {result.target_step:,} "
            f"({result.target_seconds:.2f} s)"
            if result.target_step is not None
            else f"; target {result.target_return:g} not reached"
        )
    return line


class FailedJobs(Callback):
    """Counts a sweep's failed jobs once all have run, so the command can exit non-zero.

    Runs in the launching process after the launcher returns, whichever launcher ran the jobs
    (they record failure in their own processes, in each job's summary.json).
    """

    found: list[Path] = []
    total = 0

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        jobs = JobDir.in_sweep(config.hydra.sweep.dir)
        FailedJobs.total = len(jobs)
        FailedJobs.found = [
            job.path for job in jobs if (job.read_summary() or {}).get("status") == "failed"
        ]


def resume_args(args: list[str]) -> list[str]:
    """``resume=JOB`` continues that job in its own folder with its own overrides.

    Overrides given now are applied after the job's own, so ``total_steps=...`` can extend it.
    The job's own are data read from a folder: any that would set Hydra's config (which
    instantiates its callbacks and launcher) is dropped, and the wrappers they compose to are
    checked as a stored config's (``precheck.check_stored_overrides``).
    """
    given = [a for a in args if a.startswith("resume=")]
    if not given:
        return args
    job = Path(given[-1].split("=", 1)[1]).expanduser().resolve()
    folder = JobDir(job)
    if not folder.overrides_file.is_file():
        raise ConfigError(f"resume={job} is not a sharedppo job folder (no {OVERRIDES})")
    original = [
        o
        for o in folder.read_overrides()
        if key_of(o) not in ("resume", "resume_allow") and not _sets_hydra(key_of(o))
    ]
    rest = [a for a in args if not a.startswith("resume=")]
    check_stored_overrides(original, rest, f"resume={job} ({OVERRIDES})")
    # Quoted: job folders are named from overrides, so their paths hold '=' and ','.
    return [*original, *rest, f"resume={quoted(str(job))}", f"hydra.run.dir={quoted(str(job))}"]


def _sets_hydra(key: str) -> bool:
    """``hydra.x``, ``++hydra={...}``, ``hydra/launcher``, ``group@hydra.x``: Hydra's own."""
    return any(part.startswith("hydra") for part in key.split("@"))


def main() -> None:
    """Console entry point: ``sharedppo [overrides]``."""
    args = sys.argv[1:]
    try:
        args = resume_args(bare_env_id(args))
        # A single run and every job of a sweep are composed, validated and checked for the
        # packages they need (and a resume for what may change) before Hydra starts anything,
        # so a mistake is one line and no job trains or rewrites a job folder. A job that
        # fails while training still leaves the others to run (see _app).
        check_command(args)
    except (ConfigError, CheckpointError) as err:
        print(f"sharedppo: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *open_mapping_overrides(args)]
    _app()
    if FailedJobs.found:
        print(
            f"sharedppo: {len(FailedJobs.found)} of {FailedJobs.total} jobs failed (see "
            f"{SUMMARY} in {', '.join(str(job) for job in FailedJobs.found)})",
            file=sys.stderr,
        )
        sys.exit(1)
