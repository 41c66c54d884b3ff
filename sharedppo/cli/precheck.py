"""The ``sharedppo`` command line, checked before Hydra gets it.

A single run, and every job of a sweep, is composed and validated here, and the packages it
needs are checked, so a mistake reads as one line and no job trains. A ``resume=JOB``'s stored
overrides are checked as data first (``check_stored_overrides``). The command line is read
with Hydra's own argument parser, so every flag combination Hydra accepts (``-m -cd DIR``,
``--cfg job``, ``-cn NAME``) is checked alike; only the flags that print and exit
(``--help``, ``--info``, ...) go to Hydra unchecked.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import NoReturn

import torch
from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..compose import (
    DEFAULT,
    Source,
    compose_checked,
    compose_with_hydra,
    hydra_context,
    open_mapping_overrides,
)
from ..config import ConfigError, validate
from ..envs.requirements import check_extras
from ..envs.stored import check_stored_wrappers
from ..extras import check_launcher, first_line
from ..jobdir import HYDRA, JobDir
from ..overrides import key_of, register_resolvers
from ..run.budget import check_fits
from ..run.checkpoint import read
from ..run.resume import check_resume
from ..run.session import resolve_device
from .swept import SweptValues

# Flags after which Hydra prints something and exits without running a job.
PRINT_ONLY = ("help", "hydra_help", "info", "shell_completion")
_LAUNCHER = re.compile(r"^[+~]*hydra/launcher=(.*)$")


def config_overrides(args: list[str]) -> list[str]:
    """The overrides that shape the job's config: Hydra's own settings (run dirs, launcher
    options) are Hydra's to check, except the search path, which adds config options."""
    return [
        a
        for a in args
        if not a.lstrip("+~").startswith("hydra.") or a.lstrip("+~").startswith("hydra.searchpath")
    ]


def expand_sweep(
    overrides: list[str], source: Source = DEFAULT
) -> tuple[list[list[str]], set[str]]:
    """Each job's overrides in Hydra's job order, as the basic sweeper expands them, and the
    keys that are swept."""
    try:
        with hydra_context(source):
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


def check_stored_overrides(stored: list[str], given: list[str], source: str) -> None:
    """A resumed job's own overrides are data read from its folder: the wrappers they compose
    to are checked as any stored config's (``envs.stored``), unless this command line gives
    ``env.wrappers`` itself, which replaces them. ``given``'s search path is used, so that a
    preset the job was trained with is found."""
    if any(key_of(o) == "env.wrappers" for o in given):
        return
    searchpath = [o for o in given if key_of(o).startswith("hydra.searchpath")]
    cfg = compose_checked(config_overrides([*searchpath, *stored]))
    try:
        check_stored_wrappers(cfg.env.wrappers, source)
    except ConfigError as err:
        raise ConfigError(
            f"{err}; to resume with other wrappers, give env.wrappers=[...]"
        ) from None


def _refuse(message: str) -> NoReturn:
    if message.startswith("unrecognized arguments"):  # a flag after the overrides
        message += " (Hydra's flags, such as --cfg job or -cn NAME, go before the overrides)"
    raise ConfigError(message)


MULTIRUN = ("-m", "--multirun")


def multirun_first(args: list[str]) -> list[str]:
    """``sharedppo seed=0,1 -m`` as ``sharedppo -m seed=0,1``: Hydra's parser takes its flags
    before the overrides only, and refused the first form with 'unrecognized arguments'
    naming the overrides rather than the flag's place."""
    if not any(a in MULTIRUN for a in args):
        return args
    return ["-m", *(a for a in args if a not in MULTIRUN)]


def parse_command(args: list[str]) -> argparse.Namespace:
    """The command line as ``@hydra.main`` reads it: flags, and the overrides after them."""
    parser = get_args_parser()
    parser.error = _refuse  # type: ignore[method-assign]  # one line, not usage + error
    return parser.parse_args(args)


def check_device(cfg: DictConfig) -> torch.device:
    """The device a job asks for exists here (a sweep's device=cpu,cuda on a CPU machine is
    refused before job 0 trains, not when job 1 starts)."""
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ConfigError(
                f"device={cfg.device!r} is not allowed: this machine has {count} CUDA "
                f"device(s): cuda:0 to cuda:{count - 1}"
            )
    return device


def check_hydra(hydra_cfg: DictConfig) -> None:
    """Hydra settings a job folder depends on: the job writes its config and overrides under
    .hydra/ itself once it owns the folder (jobdir.JobDir.write_job), where resume=,
    sharedppo-eval and the sweep report read them; Hydra writing them too, before, could
    overwrite the files of a job another process is training there."""
    subdir = hydra_cfg.get("output_subdir")
    if subdir is not None:
        raise ConfigError(
            f"hydra.output_subdir={subdir!r} is not allowed: must be null (the job writes its "
            f"config to {HYDRA}/ itself once it owns its folder)"
        )
    check_packed(hydra_cfg.launcher)
    check_tasks(hydra_cfg.launcher)


def check_tasks(launcher: DictConfig) -> None:
    """Hydra's own submitit launchers run the whole job in each task of it: more than one task
    would train it as many times over (all but one refused its folder). ``hydra/launcher=slurm``
    runs a job across its tasks (``cli/tasks.py``)."""
    target = str(launcher.get("_target_", ""))
    if "hydra_submitit_launcher" not in target:
        return
    tasks = (launcher.get("tasks_per_node") or 1) * (launcher.get("nodes") or 1)
    if tasks > 1:
        name = "submitit_local" if target.endswith("LocalLauncher") else "submitit_slurm"
        raise ConfigError(
            f"hydra.launcher.tasks_per_node x nodes = {tasks} is not allowed with "
            f"hydra/launcher={name}: each task would run the whole job; hydra/launcher=slurm "
            "runs each job across its tasks, as one data-parallel run"
        )


def check_packed(launcher: DictConfig) -> None:
    """``hydra/launcher=packed``'s settings (sharedppo/cli/packed.py)."""
    if not str(launcher.get("_target_", "")).endswith(".PackedLauncher"):
        return
    if launcher.max_pack < 1:
        raise ConfigError(
            f"hydra.launcher.max_pack={launcher.max_pack} is not allowed: must be at least 1 "
            "(the most jobs one pack trains)"
        )
    if launcher.n_jobs < 0:
        raise ConfigError(
            f"hydra.launcher.n_jobs={launcher.n_jobs} is not allowed: must be at least 0 "
            "(packs at once; 0: one per CPU)"
        )


def check_job(
    overrides: list[str], source: Source = DEFAULT, swept: SweptValues | None = None
) -> DictConfig:
    """One job: its config composed and validated (Hydra's own keys too, where it sets any),
    the packages it needs, its device, and whether it fits in the machine's memory. In a
    sweep, ``swept`` gives the config of a job that differs from the first only in values."""
    cfg = None if swept is None else swept.config(overrides)
    if cfg is not None:
        validate(cfg)
    elif source != DEFAULT or any(key_of(o).startswith("hydra") for o in overrides):
        cfg, hydra_cfg = compose_with_hydra(overrides, source)
        check_hydra(hydra_cfg)
    else:
        cfg = compose_checked(overrides)
    if swept is not None:
        swept.remember(cfg, overrides)
    check_extras(cfg)
    check_fits(cfg, check_device(cfg), initialise=False)  # the job checks its GPU itself
    return cfg


def run_dir(args: list[str]) -> JobDir | None:
    """The folder a single run trains in, with ``${now:}`` resolved once, here: the command
    owns it before Hydra starts and passes it on as hydra.run.dir, so both name the same
    folder. None for a sweep (each job owns its own folder) and for flags that start no run
    (``--cfg``, ``--help``, ...)."""
    if any(a.startswith("-") or a.lstrip("+") == "hydra.mode=MULTIRUN" for a in args):
        return None
    register_resolvers()
    try:
        with hydra_context():
            overrides = open_mapping_overrides(args)
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        return JobDir(Path(str(cfg.hydra.run.dir)).absolute())
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"hydra.run.dir cannot be resolved: {first_line(err)}") from None


def is_sweep(args: list[str]) -> bool:
    """Whether the command runs a sweep (``-m``, ``--multirun`` or ``hydra.mode=MULTIRUN``)."""
    parsed = parse_command(args)
    return bool(parsed.multirun) or any(
        o.lstrip("+") == "hydra.mode=MULTIRUN" for o in parsed.overrides
    )


def check_command(args: list[str]) -> None:
    """Raise ConfigError (one line) if any run the command would start is bad or lacks a package."""
    parsed = parse_command(args)
    if any(getattr(parsed, flag) for flag in PRINT_ONLY):
        return
    overrides = list(parsed.overrides)
    launchers = [m.group(1) for m in map(_LAUNCHER.match, overrides) if m]
    if launchers:
        check_launcher(launchers[-1])
    source = Source(parsed.config_name or "config", parsed.config_path, parsed.config_dir)
    # hydra.mode=MULTIRUN on the command line sweeps as -m does.
    multirun = parsed.multirun or any(o.lstrip("+") == "hydra.mode=MULTIRUN" for o in overrides)
    if not multirun:
        check_resume_allowed(check_job(overrides, source))
        return
    if any(o.lstrip("+~").startswith("hydra/sweeper=") for o in overrides):
        return  # another sweeper expands the jobs its own way
    jobs, keys = expand_sweep(overrides, source)
    swept = SweptValues(enabled=source == DEFAULT)
    for num, job in enumerate(jobs):
        try:
            check_job(job, source, swept)
        except ConfigError as err:
            if num == 0 and _shared_by(jobs[-1], err, source):
                raise  # every job's mistake (hydra.launcher.n_jobs=-1): no job's own label
            named = [o for o in job if o.split("=", 1)[0] in keys] or config_overrides(job)
            raise ConfigError(f"job {num} ({' '.join(named)}): {err}") from None


def _shared_by(last: list[str], err: ConfigError, source: Source) -> bool:
    """Whether the sweep's last job, which differs from the first in every swept key, is
    refused in the same words: the mistake is in what the jobs share, not in job 0's values."""
    try:
        check_job(last, source)
    except ConfigError as other:
        return str(other) == str(err)
    return False
