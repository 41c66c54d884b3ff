"""Job folder names that say what varied, so TensorBoard's run list tells runs apart.

A sweep job is named from the overrides that differ across the sweep's jobs
(``clip_ratio=0.1,shared=false,seed=1``), made filesystem-safe, bounded in length and unique.
A single run's folder carries all of its overrides after the time. TensorBoard's run list
cuts long names at the end, so a name is short and what tells runs apart comes first: the
keys in the order they were given, the seed last, each key by its last part
(``clip_ratio`` for ``ppo.clip_ratio``) unless another key in the name ends the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

MAX_NAME = 100  # characters; longer names keep their start and gain a hash of the whole
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+\-@%~\[\]]")
_EXCLUDED = ("resume=", "hydra.", "hydra/")


def parse(override: str) -> Any:
    """One override string as Hydra's parser reads it (key, value, sweep or not)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0]


def key_of(override: str) -> str:
    """``ppo.clip_ratio`` of ``ppo.clip_ratio=0.1``, ``foo`` of ``+foo=1`` or ``~foo``."""
    return override.split("=", 1)[0].lstrip("+~")


# expand_sweep's answers by multirun.yaml (path, mtime, size): every job's folder name asks,
# and reading and replaying the file took about 35 ms a job (0.6 s of a 16-job sweep's start).
_EXPANDED: dict[tuple[str, int, int], list[list[str]] | None] = {}


def expand_sweep(sweep_dir: Path) -> list[list[str]] | None:
    """Every job's overrides, in job order, as Hydra's basic sweeper expands the sweep.

    Read from the ``multirun.yaml`` the sweeper writes before the first job starts; None where
    there is none, or where another sweeper ran it (its sweep syntax is not a grid).
    """
    path = Path(sweep_dir) / "multirun.yaml"
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path.absolute()), stat.st_mtime_ns, stat.st_size)
    if key not in _EXPANDED:
        _EXPANDED[key] = _replay(path)
    jobs = _EXPANDED[key]
    return None if jobs is None else [list(job) for job in jobs]


def _replay(path: Path) -> list[list[str]] | None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        saved = OmegaConf.load(path)
        hydra = saved.hydra
        if "BasicSweeper" not in str(hydra.sweeper.get("_target_", "")):
            return None
        params = hydra.sweeper.get("params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        return BasicSweeper.split_arguments(overrides, None)[0]
    except Exception:  # a sweep this module cannot replay is named by job number instead
        return None


def varied_keys(jobs: Sequence[Sequence[str]]) -> list[str]:
    """Keys whose value is not the same in every job, in the order they were given."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            values.setdefault(key_of(override), set()).add(override)
    present = [set(map(key_of, job)) for job in jobs]
    return [
        key
        for key, seen in values.items()
        if len(seen) > 1 or any(key not in keys for keys in present)
    ]


def _short(overrides: list[str]) -> list[str]:
    """Each ``key=value`` with its key's last part, where no other key here ends the same."""
    parts = [o.lstrip("+~").partition("=") for o in overrides]
    leaves = [key.rsplit(".", 1)[-1] for key, _, _ in parts]
    out = []
    for override, (key, eq, value), leaf in zip(overrides, parts, leaves, strict=True):
        sign = override[: len(override) - len(override.lstrip("+~"))]
        short = leaf if eq and "@" not in key and leaves.count(leaf) == 1 else key
        out.append(f"{sign}{short}{eq}{value}")
    return out


def safe_name(overrides: Sequence[str]) -> str:
    """``key=value`` in the order given (the seed last, keys shortened: see the module's
    docstring) joined by commas, unsafe characters replaced, length bounded."""
    # "++" is how env.kwargs.NAME=V reaches Hydra (compose.open_mapping_overrides), not
    # what the user typed.
    shown = [o.removeprefix("++") for o in overrides if not o.startswith(_EXCLUDED)]
    shown.sort(key=lambda o: key_of(o) == "seed")  # stable: the rest keep their order
    raw = ",".join(_short(shown))
    name = _UNSAFE.sub("_", raw)
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return name


def job_name(sweep_dir: str, num: int, overrides: Sequence[str]) -> str:
    """The folder of sweep job ``num``: its values of the keys the sweep varies.

    Two jobs that would get the same name (``seed=0,0``, or a name cut short) both get
    ``~jobN`` added; where the sweep cannot be replayed, every name carries it.
    """
    num = int(num)
    overrides = [str(o) for o in overrides]
    jobs = expand_sweep(Path(sweep_dir))
    if jobs is None or num >= len(jobs) or list(jobs[num]) != overrides:
        return f"{safe_name(overrides) or 'job'}~job{num}"
    keys = set(varied_keys(jobs))

    def name(job: Sequence[str]) -> str:
        return safe_name([o for o in job if key_of(o) in keys]) or safe_name(job)

    mine = name(overrides)
    if not mine:
        return str(num)
    if sum(name(job) == mine for job in jobs) > 1:
        return f"{mine}~job{num}"
    return mine


def run_suffix(overrides: Sequence[str]) -> str:
    """``_key=value,...`` after a single run's time stamp; empty without overrides."""
    name = safe_name([str(o) for o in overrides])
    return f"_{name}" if name else ""


def quoted(value: str) -> str:
    """A value Hydra's override parser reads back verbatim (paths with ``=`` and ``,``)."""
    return "'" + value.replace("'", "\\'") + "'"


def register_resolvers() -> None:
    """``${sharedppo.job_name:...}`` and ``${sharedppo.run_suffix:...}`` for conf/config.yaml."""
    OmegaConf.register_new_resolver("sharedppo.job_name", job_name, replace=True)
    OmegaConf.register_new_resolver("sharedppo.run_suffix", run_suffix, replace=True)
