"""The ``sharedppo`` command: Hydra app, one-line errors, ``resume=JOB``, sweeps that
continue (``sweep``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ..compose import CONFIG_MODULE, VERSION_BASE, open_mapping_overrides, register_configs
from ..config import ConfigError
from ..jobdir import OVERRIDES, JobDir
from ..overrides import key_of, quoted, register_resolvers
from ..run.checkpoint import CheckpointError
from ..run.session import TrainingError, TrainResult, train
from ..run.signals import Interrupted
from .contain import record_stamp
from .precheck import MULTIRUN_FLAGS, check_command, check_stored_overrides
from .stop import sweep_started, watch_command
from .sweep import continue_command, run_job, say, sweep_end

log = logging.getLogger("sharedppo")
register_configs()
register_resolvers()


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name="config")
def _app(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        label = f"job {hydra_cfg.job.num} ({out_dir.name})"
        sweep = Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir  # hydra.job.chdir may move
        return run_job(cfg, out_dir, label, sweep, _train_sweep_job)
    job = JobDir(out_dir)
    try:
        result = train(cfg, out_dir)
    except Interrupted as stop:
        say(
            f"sharedppo: {stop} at update {stop.step}; checkpoint saved. Resume with: "
            f"sharedppo resume={out_dir}"
        )
        sys.exit(128 + stop.signum)
    except (ConfigError, CheckpointError, TrainingError) as err:
        # Refused before training began: the new folder says so (a resumed job's folder
        # keeps its own record).
        if cfg.resume is None and not job.summary_file.is_file():
            job.write_summary({"status": "refused", "error": str(err)})
        say(f"sharedppo: error: {err}")
        sys.exit(1 if isinstance(err, TrainingError) else 2)
    log.info(closing_line(result))
    return result.mean_return


def _train_sweep_job(cfg: DictConfig, out_dir: Path) -> int:
    """A sweep job's training, in its own child process (``sweep.run_job``); the exit code.

    One failed job (a bad value, a NaN, a bug) must not end the sweep: it is recorded where
    the sweep report looks, and the launcher goes on with the others.
    """
    job = JobDir(out_dir)
    num = HydraConfig.get().job.num
    before = record_stamp(job)
    try:
        result = train(cfg, out_dir)
    except Interrupted as stop:
        say(f"sharedppo: job {num} stopped by {stop} at update {stop.step}; checkpoint saved")
        return 128 + stop.signum
    except Exception as err:
        log.exception("job %s failed", num)
        print(f"sharedppo: job {num} failed: {err}", file=sys.stderr)
        if record_stamp(job) == before:  # train() records the failure once it has started
            job.write_summary({"status": "failed", "error": f"{type(err).__name__}: {err}"})
        return 1
    log.info(closing_line(result))
    return 0


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


class SweepFolder(Callback):
    """Tells the sweep's command its folder once Hydra has resolved it (a timestamp by
    default), so that it can pass stop requests to the jobs and name the folder to continue."""

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        sweep_started(config.hydra.sweep.dir)


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
    given = sys.argv[1:]
    try:
        args = resume_args(given)
        # A single run and every job of a sweep are composed, validated and checked for the
        # packages they need (and a resume for what may change) before Hydra starts anything,
        # so a mistake is one line and no job trains or rewrites a job folder. A job that
        # fails while training still leaves the others to run (see _app).
        check_command(args)
    except (ConfigError, CheckpointError) as err:
        print(f"sharedppo: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *open_mapping_overrides(args)]
    if not any(a in MULTIRUN_FLAGS for a in args):
        _app()
        return
    # A sweep: its jobs' watchers stop their jobs when this process is asked to stop; it
    # closes with what each job did, how to continue it and which jobs failed.
    watch_command(lambda sweep: continue_command(given, sweep))
    code = 0
    try:
        _app()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    sys.exit(sweep_end(given) or code)
