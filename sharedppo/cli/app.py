"""The ``sharedppo`` command: Hydra app, one-line errors, ``resume=JOB``, sweeps that
continue (``sweep``)."""

from __future__ import annotations

import gc
import logging
import sys
from contextlib import ExitStack, suppress
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..compose import (
    CONFIG_MODULE,
    VERSION_BASE,
    bare_env_id,
    open_mapping_overrides,
    recipe_line,
    register_configs,
    register_launcher,
)
from ..config import ConfigError
from ..extras import first_line
from ..jobdir import OVERRIDES, JobDir, JobFolderError
from ..overrides import key_of, quoted, register_resolvers
from ..run.checkpoint import CheckpointError
from ..run.result import closing_line, failed_summary
from ..run.session import TrainingError, train
from ..run.signals import Interrupted
from ..tb.logger import Logger
from .contain import record_stamp
from .precheck import check_command, check_stored_overrides, is_sweep, multirun_first, run_dir
from .reference import package_version, terminal
from .stop import sweep_started, watch_command
from .sweep import REFUSED, continue_command, run_job, say, shown, sweep_end, where_line
from .tasks import follow_job
from .torchrun import check_launch, env_rank, follower, follower_args, launched

log = logging.getLogger("sharedppo")
register_configs()
register_resolvers()


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name="config")
def _app(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        label_jobs(f"job {hydra_cfg.job.num}")
        sweep = Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir  # hydra.job.chdir may move
        if launched() and env_rank() > 0:  # a task of a SLURM job of several (cli/tasks.py)
            return follow_job(cfg, out_dir, sweep)
        log.info("%s", shown(out_dir))
        label = f"job {hydra_cfg.job.num} ({out_dir.name})"
        return run_job(cfg, out_dir, label, sweep, _train_sweep_job)
    if launched() and env_rank() > 0:
        return follower(cfg, out_dir)
    job = JobDir(out_dir)
    log.info(recipe_line(list(hydra_cfg.overrides.task), cfg.total_steps))
    before = record_stamp(job)
    try:
        with job.own():
            if cfg.resume is None:
                job.check_fresh()
            # Hydra's files, now that the folder is this job's (hydra.output_subdir is null).
            job.write_job(cfg, list(hydra_cfg.overrides.task), HydraConfig.instance().cfg)
            result = train(cfg, out_dir)
    except JobFolderError as err:  # another process's folder, or one that cannot be written
        print(f"sharedppo: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, without a new checkpoint
        resume = (job.read_summary() or {}).get("resume")
        then = (
            f"continue from its last checkpoint with: {resume}" if resume else "nothing to resume"
        )
        say(f"sharedppo: stopped at once (a second Ctrl-C); {then}")
        sys.exit(130)
    except Interrupted as stop:
        say(
            f"sharedppo: {stop} at update {stop.step}; checkpoint saved. Resume with: "
            f"{(job.read_summary() or {}).get('resume') or job.resume_command()}"
        )
        sys.exit(128 + stop.signum)
    except Exception as err:
        if isinstance(err, OSError):  # a full disk, a read-only folder: the user's to fix
            say(f"sharedppo: error: cannot write {err.filename or out_dir}: {err.strerror}")
            sys.exit(2)
        if isinstance(err, (ConfigError, CheckpointError, TrainingError)):
            # Refused before training began: the new folder says so (a resumed job's folder
            # keeps its own record).
            if cfg.resume is None and not job.summary_file.is_file():
                with suppress(OSError):
                    job.write_summary({"status": "refused", "error": str(err)})
            say(f"sharedppo: error: {err}")
            sys.exit(1 if isinstance(err, TrainingError) else 2)
        # The env's own error (its traceback follows, from Hydra): a new folder says the job
        # failed, as train() records a failure once it has started; a resumed job's folder
        # keeps its record (it is still resumable).
        log.error("failed: %s: %s", type(err).__name__, err)
        if cfg.resume is None and record_stamp(job) == before:
            with suppress(OSError):
                job.write_summary(failed_summary(err))
        raise
    log.info(closing_line(result))
    if hydra_cfg.mode != RunMode.MULTIRUN:  # a sweep names its folder once, at its end
        log.info(where_line(out_dir))
    return result.mean_return


class JobLabel(logging.Filter):
    """``[job N] `` before each line of a sweep job's log: under a parallel launcher the jobs'
    lines interleave on one terminal."""

    label = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if self.label and not getattr(record, "job_label", None):
            record.msg = f"[{self.label}] {record.msg}"
            record.job_label = self.label  # once, whichever handler sees it first
        return True


_LABEL = JobLabel()


def label_jobs(label: str) -> None:
    """Label this job's log lines, on the handlers Hydra set up for it, and log progress as
    plain lines (a live terminal line would be overwritten by the other jobs')."""
    _LABEL.label = label
    for handler in logging.getLogger().handlers:
        if _LABEL not in handler.filters:
            handler.addFilter(_LABEL)
    Logger.live = False


def _train_sweep_job(cfg: DictConfig, out_dir: Path) -> int:
    """A sweep job's training, in its own child process (``sweep.run_job``); the exit code.

    One failed job (a bad value, a NaN, a bug) must not end the sweep: it is recorded where
    the sweep report looks, and the launcher goes on with the others.
    """
    job = JobDir(out_dir)
    hydra_cfg = HydraConfig.get()
    num = hydra_cfg.job.num
    before = record_stamp(job)
    try:
        with job.own():
            # Hydra's files, now that the folder is this job's (hydra.output_subdir is null).
            job.write_job(cfg, list(hydra_cfg.overrides.task), HydraConfig.instance().cfg)
            result = train(cfg, out_dir)
    except JobFolderError as err:
        print(f"sharedppo: job {num} not run: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        say(f"sharedppo: job {num} stopped by {stop} at update {stop.step}; checkpoint saved")
        return 128 + stop.signum
    except Exception as err:
        if launched() and isinstance(err, TrainingError):  # a lost rank: its line says it all
            say(f"sharedppo: job {num} failed: {err}")
        else:
            log.exception("job %s failed", num)
            print(f"sharedppo: job {num} failed: {err}", file=sys.stderr)
        if record_stamp(job) == before:  # train() records the failure once it has started
            job.write_summary(failed_summary(err))
        return 1
    log.info(closing_line(result))
    return 0


class SweepFolder(Callback):
    """Tells the sweep's command its folder once Hydra has resolved it (a timestamp by
    default), so that it can pass stop requests to the jobs and name the folder to continue."""

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        sweep_started(config.hydra.sweep.dir)


# The callback's name before sweeps could be continued: a user's own config may still name it.
FailedJobs = SweepFolder


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
    job = resume_path(given[-1].split("=", 1)[1])
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


def resume_path(value: str) -> Path:
    """The job folder ``resume=`` names: ``~`` expanded and ``${oc.env:HOME}``-style
    interpolations resolved, as Hydra would resolve them in any other value."""
    raw = value
    if "${" in value:
        try:
            value = str(OmegaConf.create({"resume": value}).resume)
        except OmegaConfBaseException as err:
            raise ConfigError(f"resume={raw} is not allowed: {first_line(err)}") from None
    try:
        return Path(value.strip("'\"")).expanduser().resolve()
    except RuntimeError:  # ~name of no user: pathlib cannot expand it
        raise ConfigError(
            f"resume={raw} is not allowed: {value.split('/')[0]} is no user's home folder"
        ) from None


def _sets_hydra(key: str) -> bool:
    """``hydra.x``, ``++hydra={...}``, ``hydra/launcher``, ``group@hydra.x``: Hydra's own."""
    return any(part.startswith("hydra") for part in key.split("@"))


def own_single_run(args: list[str], owned: ExitStack) -> list[str]:
    """A single run trains in this process: it owns the folder before Hydra writes anything
    there (its log), and a fresh run into a job's folder is refused with the command that
    continues it. The folder is named once and handed to Hydra as hydra.run.dir."""
    job = run_dir(args)
    if job is None:
        return args
    owned.enter_context(job.own())
    if not any(a.startswith("resume=") for a in args):
        job.check_fresh()
    return [*args, f"hydra.run.dir={quoted(str(job.path))}"]


def main() -> None:
    """Console entry point: ``sharedppo [overrides]``."""
    try:
        _main()
    finally:  # the exit's last collection skips the heap: 0.33 s of a whole cartpole_fast
        gc.freeze()  # run's 2.86 (everything is closed by now; atexit handlers still run)


def _main() -> None:
    given = multirun_first(sys.argv[1:])
    if given in (["--version"], ["-V"]):
        print(f"sharedppo {package_version()}")
        return
    if given in (["--help"], ["-h"]):  # Hydra's own: --hydra-help
        print(terminal())
        return
    with ExitStack() as owned:
        try:
            args = resume_args(bare_env_id(given))
            # A single run and every job of a sweep are composed, validated and checked for
            # the packages they need (and a resume for what may change) before Hydra starts
            # anything, so a mistake is one line and no job trains or rewrites a job folder.
            # A job that fails while training still leaves the others to run (see sweep.py).
            check_command(args)
            sweep = is_sweep(args)
            check_launch(sweep)
            owner = own_single_run if env_rank() == 0 else follower_args
            args = owner(args, owned)
        except (ConfigError, CheckpointError) as err:
            print(f"sharedppo: error: {err}", file=sys.stderr)
            sys.exit(2)
        sys.argv = [sys.argv[0], *open_mapping_overrides(args)]
        if not sweep:
            _app()
            return
    # A sweep: its jobs' watchers stop their jobs when this process is asked to stop; it
    # closes with what each job did, how to continue it and which jobs failed.
    watch_command(lambda folder: continue_command(given, folder))
    register_launcher()
    code = 0
    try:
        _app()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    code = sweep_end(given) or code
    if REFUSED:
        print(
            f"sharedppo: {len(REFUSED)} job(s) not run: {', '.join(REFUSED)} (see above)",
            file=sys.stderr,
        )
        code = code or 2
    sys.exit(code)
