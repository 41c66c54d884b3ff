"""The ``sharedppo`` command: Hydra app, one-line errors, ``resume=JOB``."""

from __future__ import annotations

import logging
import shlex
import sys
from contextlib import ExitStack, suppress
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..compose import CONFIG_MODULE, VERSION_BASE, open_mapping_overrides, register_configs
from ..config import ConfigError
from ..extras import first_line
from ..jobdir import OVERRIDES, SUMMARY, JobDir, JobFolderError
from ..overrides import key_of, quoted, register_resolvers
from ..run.checkpoint import CheckpointError
from ..run.session import TrainingError, TrainResult, train
from ..run.signals import Interrupted
from ..tb.logger import Logger
from .precheck import check_command, check_stored_overrides, run_dir
from .reference import package_version, terminal

log = logging.getLogger("sharedppo")
register_configs()
register_resolvers()


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name="config")
def _app(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    job = JobDir(out_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        label_jobs(f"job {hydra_cfg.job.num}")
        log.info("%s", shown(out_dir))
    try:
        with job.own():
            if cfg.resume is None:
                job.check_fresh()
            # Hydra's files, now that the folder is this job's (hydra.output_subdir is null).
            job.write_job(cfg, list(hydra_cfg.overrides.task), HydraConfig.instance().cfg)
            result = train(cfg, out_dir)
    except JobFolderError as err:
        return refused(hydra_cfg, err)
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
                with suppress(OSError):  # a full disk: the line above says what failed
                    job.write_summary({"status": "failed", "error": f"{type(err).__name__}: {err}"})
            return float("nan")
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


# Sweep jobs refused a folder (another job's, or unwritable), for the command's exit code.
REFUSED: list[str] = []


def refused(hydra_cfg: DictConfig, err: JobFolderError) -> float:
    """Another job's folder, or one that cannot be written: said on stderr only, since the
    folder's log and summary are not this job's to write."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        print(f"sharedppo: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"sharedppo: job {hydra_cfg.job.num} not run: {err}", file=sys.stderr)
    REFUSED.append(str(hydra_cfg.job.num))
    return float("nan")


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
    if result.eval is not None:
        ev = result.eval
        line += (
            f"; evaluation {ev['mean_return']:.1f} ± {ev['std_return']:.1f} "
            f"({ev['episodes']} episodes at step {ev['step']:,})"
        )
    return line


def shown(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when inside it."""
    path = Path(path).resolve()
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def where_line(job: Path) -> str:
    return (
        f"results in {shown(job)} ({SUMMARY}, checkpoints/, TensorBoard events); "
        f"curves: tensorboard --logdir {shown(job)}"
    )


def sweep_line(sweep: Path, jobs: int) -> str:
    folder = shown(sweep)
    return (
        f"sweep: {jobs} jobs in {folder}; compare them: sharedppo-report {folder}; "
        f"curves: tensorboard --logdir {folder}"
    )


class FailedJobs(Callback):
    """Counts a sweep's failed jobs once all have run, so the command can exit non-zero.

    Runs in the launching process after the launcher returns, whichever launcher ran the jobs
    (they record failure in their own processes, in each job's summary.json).
    """

    found: list[Path] = []
    total = 0
    sweep: Path | None = None

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        jobs = JobDir.in_sweep(config.hydra.sweep.dir)
        FailedJobs.sweep = Path(config.hydra.sweep.dir)
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
    args = sys.argv[1:]
    if args in (["--version"], ["-V"]):
        print(f"sharedppo {package_version()}")
        return
    if args in (["--help"], ["-h"]):  # Hydra's own: --hydra-help
        print(terminal())
        return
    with ExitStack() as owned:
        try:
            args = resume_args(args)
            # A single run and every job of a sweep are composed, validated and checked for
            # the packages they need (and a resume for what may change) before Hydra starts
            # anything, so a mistake is one line and no job trains or rewrites a job folder.
            # A job that fails while training still leaves the others to run (see _app).
            check_command(args)
            args = own_single_run(args, owned)
        except (ConfigError, CheckpointError) as err:
            print(f"sharedppo: error: {err}", file=sys.stderr)
            sys.exit(2)
        sys.argv = [sys.argv[0], *open_mapping_overrides(args)]
        _app()
    if FailedJobs.sweep is not None:
        print(sweep_line(FailedJobs.sweep, FailedJobs.total), file=sys.stderr)
    if REFUSED:
        print(f"sharedppo: job(s) {', '.join(REFUSED)} not run (see above)", file=sys.stderr)
        sys.exit(2)
    if FailedJobs.found:
        print(
            f"sharedppo: {len(FailedJobs.found)} of {FailedJobs.total} jobs failed (see "
            f"{SUMMARY} in {', '.join(str(job) for job in FailedJobs.found)})",
            file=sys.stderr,
        )
        sys.exit(1)
