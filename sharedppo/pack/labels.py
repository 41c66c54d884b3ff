"""Which job of a pack a log line is about, so that the launcher can write it to that job's
log file and label it on the terminal.

A line logged inside ``with member(label)``, or with ``extra={"member": label}``, is the job's
whose :class:`~sharedppo.pack.train.Member` has that label; so is a line whose first argument
is a job's label or folder, as the pack's trainer logs a run's own lines
(``log.info("%s done: %s", label, ...)``). Any other line a pack logs is the pack's, and goes
to every member's log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

_CURRENT: ContextVar[str | None] = ContextVar("sharedppo_pack_member", default=None)


@contextmanager
def member(label: str) -> Iterator[None]:
    """The lines logged in this block are the job ``label``'s."""
    token = _CURRENT.set(label)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def member_of(record: logging.LogRecord, owners: Mapping[str, str] | None = None) -> str | None:
    """The label of the job a log line is about; None for a line about the whole pack.
    ``owners``: each job's label and folder (as text) to its label."""
    label = getattr(record, "member", None)
    if isinstance(label, str):
        return label
    current = _CURRENT.get()
    if current is None and owners and isinstance(record.args, tuple) and record.args:
        return owners.get(str(record.args[0]))
    return current
