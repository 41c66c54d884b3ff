"""SIGINT and SIGTERM as requests to stop after the current update, not mid-write."""

from __future__ import annotations

import signal
import threading
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
def stop_requests() -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a request the loop honours after the current update.

    A second Ctrl-C stops at once, as users expect when a save hangs.
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum: int, frame: Any) -> None:
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
