"""The event file written on the training thread (tb/events.py) reads back in TensorBoard."""

from __future__ import annotations

import os
import struct

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

from sharedppo.jobdir import JobDir
from sharedppo.tb.events import EventFile, masked_crc32c, record


def test_the_records_checksums_are_tensorboards():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 63, 64, 1000):
        data = rng.bytes(n)
        assert masked_crc32c(data) == reference(data), n
    data = os.urandom(100)
    rec = record(data)
    assert struct.unpack("<Q", rec[:8])[0] == 100
    assert struct.unpack("<I", rec[8:12])[0] == reference(rec[:8])
    assert rec[12:112] == data
    assert struct.unpack("<I", rec[112:])[0] == reference(data)


def test_scalars_text_and_a_resumes_purge_read_back(tmp_path):
    first = EventFile(tmp_path)
    for step in range(5):
        first.add_scalar("charts/x", float(step), step)
    first.add_text("resume/history", "started", 0)
    first.close()
    # A resumed session from step 3: TensorBoard drops what the first wrote at 3 and after.
    second = EventFile(tmp_path, purge_step=3)
    second.add_scalar("charts/x", 30.0, 3)
    second.close()
    assert [p.name for p in JobDir(tmp_path).events()] == sorted(
        [first.path.name, second.path.name]
    )
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("charts/x")] == [
        (0, 0.0),
        (1, 1.0),
        (2, 2.0),
        (3, 30.0),
    ]
    assert "resume/history/text_summary" in acc.Tags()["tensors"]


def test_flushed_without_close_every_flush_secs_and_on_flush(tmp_path):
    writer = EventFile(tmp_path, flush_secs=3600)
    writer.add_scalar("a", 1.0, 1)
    size = writer.path.stat().st_size
    writer.flush()
    assert writer.path.stat().st_size > size  # buffered until flushed
    writer.flush_secs = 0.0
    writer.add_scalar("a", 2.0, 2)
    acc = EventAccumulator(str(tmp_path))  # the file still open, as a live run's is
    acc.Reload()
    assert [e.value for e in acc.Scalars("a")] == [1.0, 2.0]
    writer.close()
    writer.close()  # twice is harmless (a failing run closes in cleanup too)
