"""Records what a process (and the processes it forks) writes under a folder, through Python's
audit hooks: opening a file to write, making, removing or renaming a path. Active where
WRITE_AUDIT_ROOT (the folder watched) and WRITE_AUDIT_LOG (the record, outside it) are set; a
path containing WRITE_AUDIT_SKIP is not recorded; ``%t`` in WRITE_AUDIT_LOG is the process's
SLURM task. tests/fake_slurm.py puts this folder first on a task's PYTHONPATH, where Python
imports it at start-up (on a real SLURM, PYTHONPATH=tests/write_audit before sbatch does)."""

from __future__ import annotations

import os
import sys

ROOT = os.environ.get("WRITE_AUDIT_ROOT", "")
# %t: the SLURM task (rank) of the process, under tests/fake_slurm.py or a real SLURM.
TASK = os.environ.get("FAKE_SLURM_TASK", os.environ.get("SLURM_PROCID", ""))
LOG = os.environ.get("WRITE_AUDIT_LOG", "").replace("%t", TASK)
SKIP = os.environ.get("WRITE_AUDIT_SKIP") or None
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Audit events that change a path, and how many of their first arguments are paths.
CHANGES = {
    "os.mkdir": 1,
    "os.remove": 1,
    "os.rmdir": 1,
    "os.rename": 2,
    "os.truncate": 1,
    "os.link": 2,
    "os.symlink": 2,
    "shutil.rmtree": 1,
}
# Where those events carry a dir_fd: a relative path is relative to it (shutil.rmtree's own
# unlinks), not to the working folder, and rmtree's own event names the folder it removes.
DIR_FDS = {"os.mkdir": (2,), "os.remove": (1,), "os.rmdir": (1,), "os.rename": (2, 3)}
_busy: list[int] = []


def _paths(event: str, args: tuple) -> list[object]:
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else flags & WRITE_FLAGS
        return [path] if writes else []
    paths = list(args[: CHANGES.get(event, 0)])
    if any(args[i] is not None for i in DIR_FDS.get(event, ())):
        paths = [p for p in paths if os.path.isabs(os.fsdecode(p))]
    return paths


def _hook(event: str, args: tuple) -> None:
    if _busy or (event != "open" and event not in CHANGES):
        return
    for path in _paths(event, args):
        if not isinstance(path, (str, bytes, os.PathLike)):
            continue  # a file descriptor
        name = os.path.abspath(os.fsdecode(path))
        if not name.startswith(ROOT + os.sep) or (SKIP and SKIP in name):
            continue
        _busy.append(1)
        try:
            with open(LOG, "a") as record:
                record.write(f"{event} {name}\n")
        finally:
            _busy.pop()


if ROOT and LOG:
    sys.addaudithook(_hook)
