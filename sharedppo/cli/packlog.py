"""A pack's log lines: each job's to its own log file (Hydra's job logging, as Hydra would
name it for that job), the pack's own to every job's; on the terminal, labelled."""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.utils import configure_log
from omegaconf import DictConfig, OmegaConf

from ..pack.labels import member_of


class _Label(logging.Filter):
    """``[job N] `` before a job's lines, ``[pack N] `` before the pack's own."""

    def __init__(self, tags: dict[str, str], pack: str, owners: dict[str, str]) -> None:
        super().__init__()
        self.tags, self.pack, self.owners = tags, pack, owners

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_label", None):
            label = self.tags.get(member_of(record, self.owners) or "", self.pack)
            record.msg = f"[{label}] {record.msg}"
            record.job_label = label  # once, whichever handler sees it first
        return True


class _Only(logging.Filter):
    """A job's log file: its own lines and the pack's, not the other jobs'."""

    def __init__(self, label: str, owners: dict[str, str]) -> None:
        super().__init__()
        self.label, self.owners = label, owners

    def filter(self, record: logging.LogRecord) -> bool:
        return member_of(record, self.owners) in (None, self.label)


def file_handlers(job_logging: DictConfig) -> list[logging.Handler]:
    """The file handlers Hydra's job logging config names for a job (``JOB/sharedppo.log`` by
    default), with their formatters."""
    spec = OmegaConf.to_container(job_logging, resolve=True)
    assert isinstance(spec, dict)
    formatters = spec.get("formatters") or {}
    handlers: list[logging.Handler] = []
    for options in (spec.get("handlers") or {}).values():
        if "filename" not in options:
            continue
        handler = logging.FileHandler(
            options["filename"], mode=options.get("mode", "a"), encoding=options.get("encoding")
        )
        form = formatters.get(options.get("formatter"), {})
        handler.setFormatter(logging.Formatter(form.get("format"), form.get("datefmt")))
        if "level" in options:
            handler.setLevel(options["level"])
        handlers.append(handler)
    return handlers


def pack_logging(number: int, jobs: list[tuple[str, int, str, DictConfig]], verbose: Any) -> None:
    """Hydra's job logging for a pack of jobs (label, number, folder, Hydra's config for the
    job): the terminal's handlers as for one job, one set of file handlers per job."""
    configure_log(jobs[0][3].hydra.job_logging, verbose)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)  # the first job's file: opened again below, routed
        handler.close()
    owners = {name: name for name, *_ in jobs} | {folder: name for name, _, folder, _ in jobs}
    label = _Label({name: f"job {num}" for name, num, *_ in jobs}, f"pack {number}", owners)
    for handler in root.handlers:
        handler.addFilter(label)
    for name, _, _, hydra_config in jobs:
        for handler in file_handlers(hydra_config.hydra.job_logging):
            handler.addFilter(_Only(name, owners))
            handler.addFilter(label)
            root.addHandler(handler)
