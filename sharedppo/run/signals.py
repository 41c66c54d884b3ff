"""SIGINT and SIGTERM as requests to stop after the current update, not mid-write."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the job saved last.pt and can be resumed."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.step = step


@contextmanager
def stop_requests(echo_s: float = 0.0) -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a request the loop honours after the current update.

    A second Ctrl-C stops at once, as users expect when a save hangs. ``echo_s``: a signal
    within that many seconds of the first is the same request arriving twice (under
    torchrun a Ctrl-C reaches a rank from the terminal and again from the launcher).
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    first: list[float] = []

    def handler(signum: int, frame: Any) -> None:
        if requested and signum == signal.SIGINT and time.monotonic() - first[0] >= echo_s:
            raise KeyboardInterrupt
        requested.append(signum)
        first.append(time.monotonic())

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
