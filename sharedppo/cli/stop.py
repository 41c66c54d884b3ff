"""Stopping a sweep: Ctrl-C or SIGTERM to its command reaches every job it runs, once.

The command's own process records each SIGINT/SIGTERM and writes it to the sweep folder
(``JobDir.sweep_stop_file``), so that a job's watcher (``contain.run_in_child``) sees it in
whatever process the launcher ran the job: the command itself (Hydra's basic launcher), a joblib
worker, a submitit job on this machine or, through a shared filesystem, on a cluster. A watcher
also stops its job on a signal its own process receives, and when the process that started it
is gone. The first request lets running jobs checkpoint and keeps new ones from starting; a
second stops the running ones at once; a third ends the command without waiting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..durable import process_running
from ..jobdir import JobDir
from .contain import STOP_SIGNALS

COMMAND_ENV = "SHAREDPPO_SWEEP_COMMAND"  # host:pid of the sweep's command
# The stop signals this process received while a sweep ran, in order.
_received: list[int] = []
_state: dict[str, Any] = {
    "sweep": None,  # the sweep's folder, in its command
    "command": False,  # this process is the sweep's command (or forked from it)
    "continue": None,  # the command's continue command, from the sweep's folder
    "worker": False,  # this process runs jobs for a launcher and heeds its own signals
    "busy": False,  # this process watches a job now
}


def _say(message: str) -> None:
    # os.write, not print: a handler may run while the main thread is inside a print.
    os.write(2, f"sharedppo: {message}\n".encode())


def _write(sweep: Path, signums: list[int]) -> None:
    with open(JobDir.sweep_stop_file(sweep), "a") as f:
        f.writelines(f"{signal.Signals(s).name}\n" for s in signums)


def _on_command_signal(signum: int, frame: Any) -> None:
    _received.append(signum)
    if _state["sweep"] is not None:
        # Jobs in this process read _received; only other processes' need the file.
        with contextlib.suppress(OSError):
            _write(_state["sweep"], [signum])
    name = signal.Signals(signum).name
    if len(_received) == 1:
        _say(
            f"{name}: stopping the sweep; running jobs save a checkpoint, no new job starts "
            "(again to stop them at once)"
        )
        if _state["sweep"] is not None and _state["continue"] is not None:
            # Now, not only once the jobs have stopped: the terminal may not wait that long.
            _say(f"continue it later with: {_state['continue'](_state['sweep'])}")
    elif len(_received) == 2:
        _say(f"{name} again: stopping running jobs at once (again to quit without waiting)")
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def watch_command(continue_command: Callable[[Path], str]) -> None:
    """In the sweep's command: record SIGINT/SIGTERM instead of dying, for the jobs to read;
    the first one prints ``continue_command(sweep folder)``."""
    _state["command"] = True
    _state["continue"] = continue_command
    # Inherited by the processes a launcher starts on this machine, which may be orphaned
    # before they first look at their parent (jobs a killed command had queued).
    os.environ[COMMAND_ENV] = f"{socket.gethostname()}:{os.getpid()}"
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_command_signal)


def sweep_started(sweep: str | os.PathLike[str]) -> None:
    """The command knows its sweep folder: an earlier run's requests go, any already received
    are written."""
    folder = Path(sweep).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    JobDir.sweep_stop_file(folder).unlink(missing_ok=True)
    if _received:
        _write(folder, _received)
    _state["sweep"] = folder


def sweep_ended() -> None:
    sweep = _state["sweep"]
    if sweep is not None:
        JobDir.sweep_stop_file(sweep).unlink(missing_ok=True)
    _state["sweep"] = None


def current_sweep() -> Path | None:
    """The folder of the sweep the command runs; None before Hydra started it."""
    return _state["sweep"]


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def received() -> list[int]:
    """The stop signals the command received."""
    return list(_received)


def _on_worker_signal(signum: int, frame: Any) -> None:
    _received.append(signum)


def _outlive_no_command(abandoned: Callable[[], bool]) -> None:
    """A worker process (joblib's, submitit's) whose command was killed outright has nobody
    to report to: once it holds no job (its watcher stops a running one), it exits, instead
    of waiting idle for its launcher's timeout (loky's: 5 minutes)."""
    while True:
        time.sleep(1.0)
        if abandoned() and not _state["busy"]:
            os._exit(0)


@contextmanager
def busy() -> Iterator[None]:
    """While this process watches a job."""
    _state["busy"] = True
    try:
        yield
    finally:
        _state["busy"] = False


def _read(sweep: Path) -> list[int]:
    try:
        names = JobDir.sweep_stop_file(sweep).read_text().split()
    except OSError:
        return []
    return [signal.Signals[n] for n in names if n in signal.Signals.__members__]


def _abandoned() -> Callable[[], bool]:
    """Whether this process's job should stop because nobody waits for it: whoever started
    this process is gone, or the sweep's command is, where it runs on this machine (a process
    orphaned before it first looks sees that too)."""
    first = os.getppid()
    host, _, pid = os.environ.get(COMMAND_ENV, "").rpartition(":")
    command = int(pid) if host == socket.gethostname() and pid.isdigit() else None
    if _state["command"] or command is None:
        return lambda: os.getppid() != first
    return lambda: os.getppid() != first or not process_running(command)


def requests_for(sweep: str | os.PathLike[str]) -> Callable[[], list[int]]:
    """What a job's watcher reads: the stop requests so far, as signals to pass on."""
    folder = Path(sweep).resolve()
    abandoned = _abandoned()
    main_thread = threading.current_thread() is threading.main_thread()
    if not _state["command"] and not _state["worker"] and main_thread:
        # A worker process of a launcher: its own signals count too, for the rest of its life,
        # so that a worker told to stop starts no further job. One that ignores them (a joblib
        # worker of a command that ignores them) keeps ignoring them.
        _state["worker"] = True
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _on_worker_signal)
        threading.Thread(target=_outlive_no_command, args=(abandoned,), daemon=True).start()

    def requests() -> list[int]:
        # The command's requests and this process's own are the same Ctrl-C where both got it
        # (a terminal signals its whole process group): the longer list, not the sum.
        found = max(_read(folder), list(_received), key=len)
        if not found and abandoned():
            return [signal.SIGTERM]
        return found

    return requests
