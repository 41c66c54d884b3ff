"""Where a study lives and which of its trials count: a journal file beside the trials by
default, a journal on a shared filesystem, or a database server shared by several machines."""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..config import ConfigError
from ..durable import process_running
from .space import make_pruner, make_sampler

log = logging.getLogger("sharedppo.tune")

JOURNAL = "study.journal"
LEGACY = "study.db"  # the SQLite study of sharedppo-tune before journals
# A worker that stops beating for GRACE seconds is taken as dead and its trial failed.
HEARTBEAT, GRACE = 60, 300
HOST = socket.gethostname()


def journal_storage(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def local_storage(out: Path) -> Any:
    """``out/study.journal``, safe for several processes; a study.db from before is copied
    into it once (trial numbers kept) and renamed study.db.migrated."""
    import optuna

    journal, legacy = out / JOURNAL, out / LEGACY
    if legacy.is_file() and not journal.exists():
        source = f"sqlite:///{legacy.resolve()}"
        partial = out / (JOURNAL + ".partial")
        partial.unlink(missing_ok=True)
        target = journal_storage(partial)
        for name in optuna.get_all_study_names(source):
            optuna.copy_study(from_study_name=name, from_storage=source, to_storage=target)
        partial.rename(journal)
        legacy.rename(out / (LEGACY + ".migrated"))
        log.info("continued %s in %s; the old file is now %s.migrated", legacy, journal, legacy)
    return journal_storage(journal)


def shown(url: str) -> str:
    """The URL without its password, for messages: the user part's, and any query value that
    may be one (libpq also takes ``?password=...``)."""
    from sqlalchemy.engine import make_url

    try:
        rendered = make_url(url).render_as_string(hide_password=True)
    except Exception:
        rendered = url.split("@")[-1]
    return _SECRET_QUERY.sub(r"\1***", rendered)


# A query parameter whose name says it holds a secret (password, sslpassword, token, ...).
_SECRET_QUERY = re.compile(r"([?&][^=&]*(?:pass|secret|token|key)[^=&]*=)[^&]*", re.IGNORECASE)


def rdb_storage(engine_url: str) -> Any:
    """Optuna's RDBStorage, with heartbeats so that a dead worker's trial is failed."""
    import optuna
    import sqlalchemy.exc

    sqlite = engine_url.startswith("sqlite")
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                engine_url,
                engine_kwargs=None if sqlite else {"pool_pre_ping": True},
                heartbeat_interval=HEARTBEAT,
                grace_period=GRACE,
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers starting together on a new database race to create its tables; the
            # loser finds them made a moment later.
            if attempt == 4:
                raise
            time.sleep(1 + attempt)


def url_storage(url: str) -> Any:
    """A database URL, or a journal file's path (on a filesystem every machine mounts)."""
    import sqlalchemy.exc

    if "://" not in url:
        return journal_storage(Path(url))
    # SQLAlchemy's default PostgreSQL driver depends on its version; use the one installed.
    engine_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        return rdb_storage(engine_url)
    except ImportError as err:
        raise ConfigError(
            f"--storage {shown(url)}: {err.__cause__ or err}; for PostgreSQL "
            'pip install "sharedppo[sweep]"'
        ) from None
    except sqlalchemy.exc.ArgumentError as err:
        raise ConfigError(f"--storage {shown(url)} is not allowed: {err}") from None
    except sqlalchemy.exc.SQLAlchemyError as err:
        detail = str(getattr(err, "orig", err)).strip().splitlines()[0]
        raise ConfigError(f"--storage {shown(url)}: cannot open the study: {detail}") from None


def open_study(storage: Any, space: DictConfig, worker: int) -> Any:
    """Create or load the study, with a sampler seeded for this worker and this point of it."""
    import optuna

    kwargs = {"study_name": space.study_name, "storage": storage}
    study = optuna.create_study(
        **kwargs, direction=space.get("direction", "maximize"), load_if_exists=True
    )
    sampler = make_sampler(space, len(study.get_trials(deepcopy=False)), worker)
    return optuna.load_study(**kwargs, sampler=sampler, pruner=make_pruner(space.get("pruner", {})))


def counts(trial: Any) -> bool:
    """A trial that spends the budget and whose parameter set has been tried: it completed,
    was pruned, runs, or failed on its own settings. Trials the tuner skipped (a repeat, a
    surplus) and trials stopped from outside (a signal, a dead worker) do not count."""
    from optuna.trial import TrialState

    if "skipped" in trial.user_attrs:
        return False
    if trial.state == TrialState.FAIL:
        return "error" in trial.user_attrs
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def claim(trial: Any) -> None:
    trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid()})


def fail_stale(study: Any) -> None:
    """Fail running trials whose worker is gone: a dead process on this machine, or an
    unclaimed trial a minute old (from an older sharedppo or a migrated study); on a database,
    any machine's trial whose heartbeat stopped."""
    import optuna
    from optuna.trial import TrialState

    optuna.storages.fail_stale_trials(study)  # nothing to do without heartbeats
    old = datetime.datetime.now() - datetime.timedelta(minutes=1)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        unclaimed = owner is None and trial.datetime_start and trial.datetime_start < old
        if unclaimed or (owner and owner["host"] == HOST and not process_running(owner["pid"])):
            log.info("trial %d: its worker is gone; marked failed", trial.number)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


@contextmanager
def heartbeat(storage: Any, study: Any, trial: Any) -> Iterator[None]:
    """Beat while a trial runs on a database with heartbeats, as Optuna's optimize() does."""
    interval = getattr(storage, "heartbeat_interval", None)
    if interval is None:
        yield
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
