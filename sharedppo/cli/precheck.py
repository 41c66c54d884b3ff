"""The ``sharedppo`` command line, checked before Hydra gets it.

A single run, and every job of a sweep, is composed and validated here, and the packages it
needs are checked, so a mistake reads as one line and no job trains. Flags other than
``-m``/``--multirun`` (``--help``, ``--cfg``, ...) go to Hydra unchecked.
"""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..compose import compose_checked, hydra_context, open_mapping_overrides
from ..config import ConfigError
from ..envs.requirements import check_extras
from ..extras import check_launcher, first_line
from ..jobdir import JobDir
from ..overrides import register_resolvers
from ..run.checkpoint import read
from ..run.resume import check_resume

MULTIRUN_FLAGS = ("-m", "--multirun")
_LAUNCHER = re.compile(r"^[+~]*hydra/launcher=(.*)$")


def config_overrides(args: list[str]) -> list[str]:
    """The overrides that shape the job's config: Hydra's own settings (run dirs, launcher
    options) are Hydra's to check, except the search path, which adds config options."""
    return [
        a
        for a in args
        if not a.lstrip("+~").startswith("hydra.") or a.lstrip("+~").startswith("hydra.searchpath")
    ]


def expand_sweep(overrides: list[str]) -> tuple[list[list[str]], set[str]]:
    """Each job's overrides in Hydra's job order, as the basic sweeper expands them, and the
    keys that are swept."""
    try:
        with hydra_context():
            # glob() sweeps list a group's options, so the parser needs the config loader.
            parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
            parsed = parser.parse_overrides(open_mapping_overrides(overrides))
            batches = BasicSweeper.split_arguments(parsed, None)
    except OverrideParseException as err:
        raise ConfigError(f"{err.override} cannot be parsed: {first_line(err)}") from None
    except HydraException as err:
        raise ConfigError(first_line(err)) from None
    keys = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    return [job for batch in batches for job in batch], keys


def check_resume_allowed(cfg: DictConfig) -> None:
    """A resume is refused before Hydra rewrites the job's .hydra/ (see resume.check_resume)."""
    if cfg.resume is not None:
        job = Path(cfg.resume)
        config = OmegaConf.to_container(cfg, resolve=True)
        JobDir(job).repair_summary()  # a finished job killed before its summary gets it back
        check_resume(read(JobDir(job).last), config, job)


def run_dir(args: list[str]) -> JobDir | None:
    """The folder a single run trains in, with ``${now:}`` resolved once, here: the command
    owns it before Hydra starts and passes it on as hydra.run.dir, so both name the same
    folder. None for a sweep (each job owns its own folder) and for flags that start no run
    (``--cfg``, ``--help``, ...)."""
    if any(a.startswith("-") for a in args):
        return None
    register_resolvers()
    try:
        with hydra_context():
            overrides = open_mapping_overrides(args)
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        return JobDir(Path(str(cfg.hydra.run.dir)).absolute())
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"hydra.run.dir cannot be resolved: {first_line(err)}") from None


def check_command(args: list[str]) -> None:
    """Raise ConfigError (one line) if any run the command would start is bad or lacks a package."""
    launchers = [m.group(1) for m in map(_LAUNCHER.match, args) if m]
    if launchers:
        check_launcher(launchers[-1])
    flags = [a for a in args if a.startswith("-")]
    if any(f not in MULTIRUN_FLAGS for f in flags):
        return
    overrides = [a for a in args if not a.startswith("-")]
    if not flags:
        cfg = compose_checked(config_overrides(overrides))
        check_extras(cfg)
        check_resume_allowed(cfg)
        return
    if any(o.lstrip("+~").startswith("hydra/sweeper=") for o in overrides):
        return  # another sweeper expands the jobs its own way
    jobs, keys = expand_sweep(overrides)
    for num, job in enumerate(jobs):
        try:
            check_extras(compose_checked(config_overrides(job)))
        except ConfigError as err:
            named = [o for o in job if o.split("=", 1)[0] in keys] or config_overrides(job)
            raise ConfigError(f"job {num} ({' '.join(named)}): {err}") from None
