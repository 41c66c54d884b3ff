"""A sweep job in a child process of its own, watched by the process that started it.

A job that dies without unwinding (the env calls ``os._exit``, a segfault, the OOM killer)
takes its process with it. Forked into a child, it takes only the child: the process the
launcher gave the job (Hydra's main process, a joblib worker, a submitit job) outlives it and
records it as failed, and the launcher goes on with the other jobs. The same watcher passes
the sweep's stop requests on to the child exactly once each, so the job checkpoints.

POSIX only (``os.fork``); the child dies with its watcher on Linux (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import NoReturn

from ..jobdir import JobDir

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.1  # how often the watcher looks for the child's end and for stop requests
_PR_SET_PDEATHSIG = 1


def record_stamp(job: JobDir) -> tuple[int, int, int] | None:
    """Identifies the job's summary as it is now: a job that ends without writing one (or
    leaves an earlier run's in place) has not recorded how it ended."""
    try:
        st = job.summary_file.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def describe(status: int) -> str:
    """A wait status in words: ``killed by SIGSEGV``, ``exited with code 3``."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM (a checkpoint, then exit) when the watcher dies, even by SIGKILL, so a
    killed sweep leaves no job training on as an orphan."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the watcher died before the request took effect
        os._exit(128 + signal.SIGTERM)


def start_child(body: Callable[[], int]) -> int:
    """Fork; the child runs ``body`` (its exit code) and exits, the parent gets its pid.

    The child is a process group of its own and dies with its parent on Linux; it leaves no
    atexit handler of the parent's to run and never returns into the parent's code.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the child would write the parent's buffered output again
    parent = os.getpid()
    # Blocked until the child has left the terminal's process group and dropped the parent's
    # handlers: a Ctrl-C in between must not run the parent's handler in the child.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid == 0:
        _child(body, parent, blocked)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pid


def _child(body: Callable[[], int], parent: int, mask: set[signal.Signals]) -> NoReturn:
    code = 1
    try:
        # Its own process group: a terminal's Ctrl-C reaches the watcher, which passes it on
        # once; the same signal twice means "stop at once" to a job.
        os.setpgid(0, 0)
        _die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask - set(STOP_SIGNALS))
        code = body()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            # A closed stream must not keep the child from exiting.
            with contextlib.suppress(Exception):
                stream.flush()
        # No atexit handlers, no unwinding into the launcher's code: that is the parent's.
        os._exit(code)


def run_in_child(
    body: Callable[[], int], job: JobDir, stop_requests: Callable[[], list[int]]
) -> str | None:
    """Run ``body`` in a forked child and wait for it; None if the job recorded how it ended
    (its summary) or was stopped on request before it could, else what happened to its
    process.

    Each new entry of ``stop_requests()`` is sent to the child once: the first as it is
    (SIGINT or SIGTERM: checkpoint, then stop), any later one as SIGINT (stop at once).
    """
    before = record_stamp(job)
    pid = start_child(body)
    sent = 0
    status: int | None = None
    while status is None:
        try:
            done, code = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): status unknown
            break
        if done:
            status = code
            break
        requests = stop_requests()
        for n in range(sent, len(requests)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, requests[n] if n == 0 else signal.SIGINT)
        sent = len(requests)
        time.sleep(POLL_S)
    if record_stamp(job) != before:
        return None
    code = None if status is None else os.waitstatus_to_exitcode(status)
    if stop_requests() and code in (*(128 + s for s in STOP_SIGNALS), *(-s for s in STOP_SIGNALS)):
        return None  # stopped while it was still setting up: nothing to record yet
    return "ended" if status is None else describe(status)
