"""One tuning worker: it asks the study for trials and trains them until the study has enough.

Any number of workers, in processes on one machine or on several, may share a study: each
trial's number, folder and parameter set are its own. A sampled parameter set that another
trial already has is not trained again: the trial is marked skipped and a new one asked for.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ..compose import compose_checked
from ..config import ConfigError
from ..jobdir import JobDir
from ..run.checkpoint import CheckpointError
from ..run.session import train
from ..run.signals import Interrupted
from ..run.trainer import TrainingError
from .space import space_size, suggest, untried_set
from .study import claim, counts, fail_stale, heartbeat

log = logging.getLogger("sharedppo.tune")

# Repeated parameter sets in a row after which a worker takes the space as exhausted.
MAX_REPEATS = 20


@dataclass
class Plan:
    """What every worker of a study runs: the space, the budget, where the trials go."""

    space: DictConfig
    out: Path
    trials: int
    seeds: int
    overrides: list[str]  # the search's overrides, then the command line's

    def trial_seeds(self, number: int) -> list[int]:
        first = int(self.space.get("seed") or 0) + number * self.seeds
        return list(range(first, first + self.seeds))

    def folder(self, number: int, seed: int) -> Path:
        trial = self.out / f"trial_{number:03d}"
        return trial if self.seeds == 1 else trial / f"seed_{seed}"


def skip(study: Any, trial: Any, reason: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("skipped", reason)
    study.tell(trial, state=TrialState.FAIL)


def twin_of(study: Any, trial: Any, params: dict[str, Any]) -> int | None:
    """Another counted trial with these parameters. Whichever of two such trials looks
    second skips; if both look at once both skip, and nothing is trained twice."""
    for other in study.get_trials(deepcopy=False):
        if other.number != trial.number and counts(other) and other.params == params:
            return other.number
    return None


def tried_sets(trials: list[Any], names: list[str]) -> set[frozenset]:
    return {frozenset(t.params.items()) for t in trials if sorted(t.params) == sorted(names)}


def work(study: Any, storage: Any, plan: Plan) -> None:
    """Run trials until the study has ``plan.trials`` that count, or the space is used up."""
    names = list(plan.space.params)
    size = space_size(plan.space.params)
    repeats = 0
    while True:
        fail_stale(study)
        trials = [t for t in study.get_trials(deepcopy=False) if counts(t)]
        if len(trials) >= plan.trials:
            return
        if size is not None and len(tried_sets(trials, names)) >= size:
            log.info("all %d parameter sets of the space have been tried", size)
            return
        trial = study.ask()
        claim(trial)
        earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if sum(counts(t) for t in earlier) >= plan.trials:
            skip(study, trial, "surplus: the study had its trials")  # another worker was quicker
            continue
        params = {name: suggest(trial, name, spec) for name, spec in plan.space.params.items()}
        twin = twin_of(study, trial, params)
        if twin is None:
            repeats = 0
            with heartbeat(storage, study, trial):
                run_trial(study, trial, plan, params)
            continue
        skip(study, trial, f"repeats the parameters of trial {twin}")
        log.info("trial %d: repeats trial %d's parameters; not trained", trial.number, twin)
        fresh = untried_set(plan.space.params, tried_sets(trials, names), trial.number)
        if fresh is not None:
            study.enqueue_trial(fresh, skip_if_exists=True)
        repeats += 1
        if repeats >= MAX_REPEATS:
            log.info("%d samples in a row repeated tried parameters: stopping", repeats)
            return


def run_trial(study: Any, trial: Any, plan: Plan, params: dict[str, Any]) -> None:
    """Train the trial's seeds one after another and tell the study how it went."""
    import optuna
    from optuna.trial import TrialState

    overrides = [*plan.overrides, *(f"{name}={value}" for name, value in params.items())]
    trial.set_user_attr("overrides", overrides)
    shown = " ".join(f"{name}={value}" for name, value in params.items())
    try:
        value = train_seeds(trial, plan, overrides)
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=TrialState.PRUNED)
        log.info("trial %d: pruned (%s): %s", trial.number, pruned, shown)
    except (Interrupted, KeyboardInterrupt) as stop:
        trial.set_user_attr("interrupted", str(stop) or type(stop).__name__)
        study.tell(trial, state=TrialState.FAIL)
        raise
    except (ConfigError, CheckpointError, TrainingError) as err:
        trial.set_user_attr("error", str(err))
        study.tell(trial, state=TrialState.FAIL)
        log.info("trial %d: failed: %s", trial.number, err)
    except BaseException as err:
        trial.set_user_attr("error", f"{type(err).__name__}: {err}")
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        study.tell(trial, value)
        log.info("trial %d: mean return %.2f: %s", trial.number, value, shown)


class SeedCurves:
    """Each seed's 20-episode mean return by env step, so that a trial of several seeds shows
    the pruner, at each step, the mean of the seeds run so far (earlier seeds at that step)."""

    def __init__(self) -> None:
        self.done: list[tuple[np.ndarray, np.ndarray]] = []
        self.steps: list[int] = []
        self.values: list[float] = []

    def add(self, step: int, value: float) -> float:
        self.steps.append(step)
        self.values.append(value)
        at_step = [value]
        for steps, values in self.done:
            i = np.searchsorted(steps, step, side="right") - 1
            if i >= 0:
                at_step.append(float(values[i]))
        return float(np.mean(at_step))

    def next_seed(self) -> None:
        self.done.append((np.asarray(self.steps), np.asarray(self.values)))
        self.steps, self.values = [], []


def train_seeds(trial: Any, plan: Plan, overrides: list[str]) -> float:
    """The mean over the trial's seeds of the final 20-episode mean return.

    Reports go to the pruner at step ``seed_index * span + env_step`` (span: the last env step
    a seed can reach), so every trial's k-th seed lines up with every other trial's.
    """
    import optuna  # optional (the sweep extra): checked by the command before any worker runs

    curves = SeedCurves()
    returns, aucs = [], []
    for index, seed in enumerate(plan.trial_seeds(trial.number)):
        job = [*overrides, f"seed={seed}"]
        cfg = compose_checked(job)
        batch = cfg.ppo.num_steps * cfg.env.num_envs
        offset = index * math.ceil(cfg.total_steps / batch) * batch
        folder = plan.folder(trial.number, seed)
        # The same layout as a Hydra job, so sharedppo-report, resume= and the HParams read it.
        JobDir(folder).write_job(cfg, job)

        try:
            result = train(cfg, folder, on_update=reporter(trial, curves, offset, seed))
        except optuna.TrialPruned as pruned:
            mark_pruned(folder, str(pruned))
            raise
        if not math.isfinite(result.mean_return):
            raise optuna.TrialPruned(f"seed {seed} finished no episode")
        returns.append(result.mean_return)
        aucs.append(result.auc_return)
        curves.next_seed()
    trial.set_user_attr("seed_returns", returns)
    # What breaks a tie on the value (preset.best_trial): the one that learnt sooner.
    trial.set_user_attr("auc", float(np.mean(aucs)))
    return float(np.mean(returns))


def reporter(trial: Any, curves: SeedCurves, offset: int, seed: int) -> Any:
    """train()'s on_update: the seeds' mean so far to the pruner, which may stop the trial."""
    import optuna

    def on_update(step: int, mean_return: float) -> bool:
        if math.isfinite(mean_return):
            trial.report(curves.add(step, mean_return), offset + step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"at env step {step} of seed {seed}")
        return False

    return on_update


def mark_pruned(folder: Path, why: str) -> None:
    """summary.json says pruned, not failed: the trial stopped early by design."""
    job = JobDir(folder)
    summary = job.read_summary()
    if summary is not None:
        summary.update(status="pruned", pruned=why)
        summary.pop("error", None)
        job.write_summary(summary)
