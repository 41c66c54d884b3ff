"""Hyperparameter tuning on Optuna: pruning, parallel workers, a study that can be continued.

    sharedppo-tune --search cartpole --trials 30 [--jobs 2] [--seeds 3] [overrides ...]

The search space is a YAML file in ``conf/hparams_search/`` (or any path). Each trial composes
its config through Hydra's compose API, trains as a normal job (TensorBoard events, .hydra/,
checkpoints in its own folder), and reports the 20-episode mean return after every update so
the pruner can stop it early. The study lives in ``OUT/study.journal`` (or in a database:
``--storage postgresql://...``); rerunning the command continues it with parameter sets not
tried yet. The best trial is written as a preset usable as ``experiment=NAME_best``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..compose import compose_checked
from ..config import ConfigError
from ..envs.requirements import check_extras
from ..extras import OneLineParser, require
from ..overrides import key_of
from ..run.signals import Interrupted
from .launch import is_launcher_override, launcher_config, run_local, run_submitit
from .preset import best_trial, write_best_preset
from .space import load_space
from .study import JOURNAL, counts, fail_stale, local_storage, open_study, url_storage
from .worker import Plan, work

log = logging.getLogger("sharedppo.tune")

# How workers get the study's storage: a URL may hold a password, and a worker's command line
# is written into files (submitit's job pickles, logs) and shown by ps; the environment is
# passed on by subprocess, submitit's local executor and sbatch alike, and written nowhere.
STORAGE_ENV = "SHAREDPPO_TUNE_STORAGE"


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sharedppo-tune", description=__doc__.split("\n")[0])
    p.add_argument("--search", default="cartpole", help="a file, or a name in conf/hparams_search/")
    p.add_argument("--trials", type=int, default=None, help="total trials for the study")
    p.add_argument("--out", type=Path, default=None, help="default: tune/STUDY_NAME")
    p.add_argument(
        "--preset-dir", type=Path, default=None, help="where experiment/STUDY_best.yaml goes"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="workers at once (processes, or jobs with hydra/launcher=...); 0: write the preset",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per trial, averaged")
    p.add_argument(
        "--storage",
        default=None,
        help="a database URL (postgresql://USER@HOST/DB) or a journal file every worker reaches "
        f"(default: ${STORAGE_ENV}, else OUT/{JOURNAL})",
    )
    p.add_argument(
        "--worker", type=int, default=0, help="this command's index among several on one study"
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="Hydra overrides applied to every trial")
    return p


def make_plan(args: argparse.Namespace, space: DictConfig) -> tuple[Plan, list[str]]:
    """The plan every worker follows, and the overrides this command adds to every trial."""
    seeds = args.seeds if args.seeds is not None else int(space.get("seeds", 1))
    trials = args.trials if args.trials is not None else int(space.get("n_trials", 20))
    limits = (("--seeds", seeds, 1), ("--trials", trials, 0), ("--jobs", args.jobs, 0))
    for name, value, low in limits:
        if value < low:
            raise ConfigError(f"{name}={value} is not allowed: must be >= {low}")
    extra = [o for o in args.overrides if not is_launcher_override(o)]
    searched = [o for o in extra if key_of(o) in space.params]
    if searched:  # the trial's value would silently replace it
        raise ConfigError(
            f"{searched[0]} is not allowed: the search space searches {key_of(searched[0])} "
            "(its params); remove it from the command line or from the space"
        )
    if args.jobs > 1 and not any(key_of(o) == "torch_threads" for o in extra):
        extra.append("torch_threads=1")  # parallel workers keep off each other's cores
    out = args.out or Path("tune") / space.study_name
    plan = Plan(space, out.resolve(), trials, seeds, [*space.get("overrides", []), *extra])
    # A wrong override or parameter key is one line now, not a failure in every trial.
    first = {k: s.choices[0] if s.type == "categorical" else s.low for k, s in space.params.items()}
    check_extras(compose_checked([*plan.overrides, *(f"{k}={v}" for k, v in first.items())]))
    return plan, extra


def worker_argv(args: argparse.Namespace, plan: Plan, extra: list[str], index: int) -> list[str]:
    """A worker's command line; its storage goes through the environment (``for_workers``)."""
    search = Path(args.search)
    return [
        "--child",
        f"--worker={index}",
        f"--search={search.resolve() if search.is_file() else args.search}",
        f"--out={plan.out}",
        f"--trials={plan.trials}",
        f"--seeds={plan.seeds}",
        "--",
        *extra,
    ]


@contextmanager
def for_workers(storage: str) -> Iterator[None]:
    """``STORAGE_ENV`` set while workers are started and waited for, then as it was."""
    before = os.environ.get(STORAGE_ENV)
    os.environ[STORAGE_ENV] = storage
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STORAGE_ENV, None)
        else:
            os.environ[STORAGE_ENV] = before


def check_folders(study: Any, out: Path) -> None:
    """Trial numbers start again with a new study: old trial folders would be written into."""
    if not study.get_trials(deepcopy=False) and any(out.glob("trial_*")):
        raise ConfigError(
            f"--out {out} holds trial folders but study {study.study_name!r} has no trials "
            "there; remove them or choose another --out"
        )


def run(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    prefix = f"[worker {args.worker}] " if args.child else ""
    logging.basicConfig(level=logging.INFO, format=prefix + "%(message)s")
    try:
        require("tune", "sharedppo-tune")
    except ConfigError as err:
        print(f"sharedppo-tune: error: {err}", file=sys.stderr)
        return 2
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial gets one line of ours
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = None
    args.storage = args.storage or os.environ.get(STORAGE_ENV)
    try:
        if args.child and not args.storage:
            raise ConfigError(
                f"this worker got no study storage: ${STORAGE_ENV} is not set (a cluster must "
                "pass the environment on, as sbatch's default --export=ALL does)"
            )
        space = load_space(args.search)
        plan, extra = make_plan(args, space)
        launcher = launcher_config([o for o in args.overrides if is_launcher_override(o)])
        storage = url_storage(args.storage) if args.storage else local_storage(plan.out)
        study = open_study(storage, space, args.worker)
        if not args.child:
            check_folders(study, plan.out)
        if args.child or (args.jobs == 1 and launcher is None):
            work(study, storage, plan)
            code = 0
        else:
            fail_stale(study)
            first = args.worker * args.jobs  # several commands on one study: distinct indices
            argvs = [worker_argv(args, plan, extra, first + i) for i in range(args.jobs)]
            if not argvs:
                code = 0
            else:
                with for_workers(args.storage or str(plan.out / JOURNAL)):
                    if launcher is not None:
                        code = run_submitit(launcher, argvs, plan.out, run_worker)
                    else:
                        code = run_local(argvs)
    except ConfigError as err:
        print(f"sharedppo-tune: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only --out or study file, a full disk: the user's to fix
        where = err.filename or args.out or "the study's folder"
        print(f"sharedppo-tune: error: cannot write {where}: {err.strerror}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt) as stop:
        code = 128 + getattr(stop, "signum", signal.SIGINT)
        if args.child:  # the command that started it says so, once
            return code
    if code > 128:
        name = signal.Signals(code - 128).name
        again = "rerun the same command to continue the study"
        print(f"sharedppo-tune: stopped by {name}; {again}", file=sys.stderr)
    if args.child or study is None:
        return code
    return finish(study, plan, args, code)


def run_worker(argv: list[str]) -> None:
    """A submitit job's body: one worker, failing the job if the worker fails."""
    # SLURM warns with USR2 (signal_delay_s before the time limit): stop as on SIGTERM, so
    # the trial writes last.pt and is marked interrupted instead of dying at the limit.
    signal.signal(signal.SIGUSR2, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    code = run(argv)
    if code != 0:
        raise RuntimeError(f"sharedppo-tune {' '.join(argv)} exited with {code}")


def finish(study: Any, plan: Plan, args: argparse.Namespace, code: int) -> int:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    tally = {s.name.lower(): sum(t.state == s and counts(t) for t in trials) for s in TrialState}
    skipped = sum("skipped" in t.user_attrs for t in trials)
    stopped = sum(t.state == TrialState.FAIL and not counts(t) for t in trials) - skipped
    print(
        f"study {study.study_name!r}: {tally['complete']} completed, {tally['pruned']} pruned, "
        f"{tally['fail']} failed, {tally['running']} running elsewhere, {stopped} stopped "
        f"(not counted); {skipped} repeated or surplus parameter sets skipped"
    )
    if not tally["complete"]:
        print("no trial has completed yet, so no preset was written")
        return code or 1
    preset = write_best_preset(study, plan.overrides, args.preset_dir or plan.out)
    best = best_trial(study)
    auc = best.user_attrs.get("auc")
    area = f" (AUC {auc:.2f}, which breaks ties)" if auc is not None else ""
    print(f"best trial {best.number}: mean return {best.value:.2f}{area} with {best.params}")
    print(f"preset written to {preset}; use it with:")
    print(
        f"  sharedppo 'hydra.searchpath=[file://{preset.parent.parent.resolve()}]' "
        f"experiment={preset.stem}"
    )
    return code


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))
