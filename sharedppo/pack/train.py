"""``train_pack``: the jobs of one pack in, each job's folder trained and recorded out."""

from __future__ import annotations

import logging
import signal
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from ..jobdir import JobDir, JobFolderError
from ..run.result import closing_line, failed_summary
from ..run.session import open_trainer, train
from ..run.signals import Interrupted, stop_requests
from ..run.trainer import Trainer
from ..tb.logger import Logger
from .forward import packable_net
from .labels import member as labelled
from .population import Population, own_generator

log = logging.getLogger("sharedppo")
EXIT = {"completed": 0, "failed": 1}


@dataclass
class Member:
    """One job of a pack: its composed config (``resume`` set where the sweep resumes it), its
    folder (made, with ``.hydra/`` written, by the launcher) and its label for log lines."""

    cfg: DictConfig
    out_dir: Path
    label: str


def train_pack(members: list[Member]) -> list[int]:
    """Train the pack's jobs; each job's folder records how it ended (``summary.json``).

    A pack of one trains as ``sharedppo`` trains a job (bit for bit). Several train as one
    population, unless their networks or envs are ones a population cannot hold: then each
    trains alone, in turn, said in one line.

    Returns each job's exit code, as a job of its own would end: 0 completed, 1 failed,
    2 refused its folder (another process trains there), 128 + the signal that stopped it.
    """
    if len(members) == 1:
        return [_train_alone(members[0])]
    Logger.live = False  # many runs: plain progress lines, not one overwritten line
    codes: list[int | None] = [None] * len(members)
    with ExitStack() as owned:
        trainers, generators, index = [], [], []
        for i, member in enumerate(members):
            trainer = _open(member, owned)
            if isinstance(trainer, int):
                codes[i] = trainer
                continue
            generators.append(own_generator(trainer.device))
            trainers.append(trainer)
            index.append(i)
        if not trainers:
            return [c if c is not None else 1 for c in codes]
        reason = _unpackable(trainers[0])
        if reason is not None:
            log.warning("pack: its runs train one after another: %s", reason)
            for t in trainers:
                t.close()
            _one_after_another(members, index, codes)
            return [c if c is not None else 1 for c in codes]
        labels = [members[i].label for i in index]
        population = Population(trainers, labels, generators)
        _fit(population)
        for i, status in zip(index, population.status, strict=True):
            codes[i] = _code(status, population, index.index(i))
    return [c if c is not None else 1 for c in codes]


def _one_after_another(members: list[Member], index: list[int], codes: list[int | None]) -> None:
    """The members ``index`` names, each trained alone, in turn; once one is stopped by a
    signal (the sweep's Ctrl-C, passed on once), the rest are not started: they wait for the
    sweep's rerun instead of training to their end."""
    stopped: int | None = None
    for i in index:
        if stopped is not None:
            label = members[i].label
            log.info("%s not started: the pack is stopping", label, extra={"member": label})
            codes[i] = stopped
            continue
        codes[i] = _train_alone(members[i])
        if codes[i] > 128:
            stopped = codes[i]


def _fit(population: Population) -> None:
    with stop_requests() as requested:
        try:
            population.fit(requested)
        except Interrupted:
            pass  # every run checkpointed and recorded itself as interrupted
        except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint now
            population.fail_rest(KeyboardInterrupt(), "interrupted")
            raise
        except BaseException as err:
            log.exception("pack failed")
            population.fail_rest(err)


def _code(status: str | None, population: Population, r: int) -> int:
    if status == "interrupted":
        name = population.extra[r].get("signal", "SIGINT")
        return 128 + signal.Signals[name].value
    return EXIT.get(status or "failed", 1)


def _unpackable(trainer: Trainer) -> str | None:
    reason = packable_net(trainer.agent.net)
    if reason is None and trainer.collector.action_mask is not None:
        reason = "its env supplies action masks"
    return reason


def _open(member: Member, owned: ExitStack) -> Trainer | int:
    """The member's trainer, its folder owned until the pack ends; or its exit code when it
    cannot start (its summary then says why)."""
    job = JobDir(member.out_dir)
    try:
        owned.enter_context(job.own())
        return open_trainer(member.cfg, member.out_dir)
    except JobFolderError as err:
        log.error("%s not run: %s", member.label, err)
        return 2
    except Exception as err:
        log.error("%s failed: %s", member.label, err)
        job.write_summary(failed_summary(err))
        return 1


def _train_alone(member: Member) -> int:
    """One job as ``sharedppo`` trains it: the path of a pack of one, and of jobs a population
    cannot hold."""
    with labelled(member.label):  # its lines go to its own log (pack.labels)
        return _train_labelled(member)


def _train_labelled(member: Member) -> int:
    job = JobDir(member.out_dir)
    try:
        result = train(member.cfg, member.out_dir)
    except JobFolderError as err:
        log.error("%s not run: %s", member.label, err)
        return 2
    except Interrupted as stop:
        log.warning(
            "%s stopped by %s at update %s; checkpoint saved", member.label, stop, stop.step
        )
        return 128 + stop.signum
    except Exception as err:
        log.error("%s failed: %s", member.label, err)
        if job.read_summary() is None:  # train() records the failure once it has started
            job.write_summary(failed_summary(err))
        return 1
    log.info("%s %s", member.label, closing_line(result))
    return 0
