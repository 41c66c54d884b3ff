"""A TensorBoard event file written on the caller's thread.

torch's ``SummaryWriter`` hands each event to a thread of its own, which computes the record's
CRC32C in pure Python and writes it. That thread wants the GIL whenever an event is queued,
and the training loop gives the GIL up around every torch op, so each queued event costs the
loop a switch to the writer and back on top of the writer's own work. Measured on this
project's 2-core machine (docs/benchmarks.md, "TensorBoard's writer thread"): a pack of 8
CartPole runs (8 writer threads) acted 4.7x slower per step with its writers running than
with none. Here a record is encoded in place and handed to a buffered file; the file is
flushed every ``flush_secs`` and on :meth:`EventFile.flush` / :meth:`EventFile.close`.

The format is TFRecord, which TensorBoard's reader checks: a little-endian uint64 length, its
masked CRC32C, the serialised ``Event``, the data's masked CRC32C.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary

from ..jobdir import EVENT_FILE

try:  # google-crc32c is a dependency; TensorBoard's pure-Python CRC if it was left out
    from google_crc32c import value as _crc32c
except ImportError:  # pragma: no cover - an environment without it
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as _crc32c

_MASK_DELTA = 0xA282EAD8
_uid = itertools.count()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = _crc32c(data) & 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord holding ``data``."""
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class EventFile:
    """A new event file in ``log_dir`` (named as TensorBoard's writers name theirs).

    ``purge_step``: a resumed run's first step; TensorBoard then drops what an earlier
    session wrote at or after it (a SessionLog START event, as ``SummaryWriter`` writes)."""

    def __init__(
        self, log_dir: str | Path, purge_step: int | None = None, flush_secs: float = 10.0
    ) -> None:
        os.makedirs(log_dir, exist_ok=True)
        host, pid, uid = socket.gethostname(), os.getpid(), next(_uid)
        name = EVENT_FILE.format(time=int(time.time()), host=host, pid=pid, uid=uid)
        self.path = Path(log_dir) / name
        self._file = open(self.path, "wb")  # noqa: SIM115 - open until close()
        self.flush_secs = flush_secs
        self._flushed = time.monotonic()
        self.add_event(Event(file_version="brain.Event:2"))
        if purge_step is not None:
            self.add_event(Event(file_version="brain.Event:2"), purge_step)
            self.add_event(Event(session_log=SessionLog(status=SessionLog.START)), purge_step)
        self.flush()

    def add_event(self, event: Event, step: int | None = None) -> None:
        event.wall_time = time.time()
        if step is not None:
            event.step = int(step)
        self._file.write(record(event.SerializeToString()))
        if time.monotonic() - self._flushed >= self.flush_secs:
            self.flush()

    def add_summary(self, summary: Summary, step: int | None = None) -> None:
        self.add_event(Event(summary=summary), step)

    def add_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        self.add_summary(Summary(value=[Summary.Value(tag=tag, simple_value=value)]), step)

    def add_text(self, tag: str, text: str, step: int | None = None) -> None:
        from torch.utils.tensorboard.summary import text as text_summary

        self.add_summary(text_summary(tag, text), step)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
