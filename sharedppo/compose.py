"""Composing the Hydra config outside ``@hydra.main``: the CLI's pre-check, tuning, the API.

This is the one place Hydra is initialised on sharedppo's ``conf/`` (``hydra_context``); the
command line's ``@hydra.main`` reads the same two constants.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import yaml
from hydra import compose, initialize_config_module, version
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.errors import HydraException, MissingConfigException
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, open_dict
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from .config import Config, ConfigError, unknown_key_message, validate, wrong_type_message
from .extras import first_line

try:  # hydra/launcher=processes (sharedppo/cli/launcher.py); absent from an older install
    from hydra_plugins.sharedppo_launcher.processes_launcher import ProcessesLauncher
except ImportError:  # pragma: no cover
    ProcessesLauncher = None
try:  # hydra/launcher=packed (sharedppo/cli/packed.py)
    from hydra_plugins.sharedppo_launcher.packed_launcher import PackedLauncher
except ImportError:  # pragma: no cover
    PackedLauncher = None
try:  # hydra/launcher=slurm (sharedppo/cli/tasks.py); a launcher only with the sweep extra
    from hydra_plugins.sharedppo_launcher.submitit_slurm import SlurmLauncher
except ImportError:  # pragma: no cover
    SlurmLauncher = None

CONFIG_MODULE = "sharedppo.conf"
VERSION_BASE = "1.3"


def register_configs() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


def register_launcher() -> None:
    """``hydra/launcher=processes``, ``packed`` and ``slurm`` as plugins Hydra can instantiate.
    Hydra finds plugins by walking the hydra_plugins package, which the import hook of an
    editable install hides from it, so the classes are named here. Called just before a sweep
    starts: registering scans every installed plugin, which the command's pre-check (one line
    per missing extra) must not do first."""
    for launcher in (ProcessesLauncher, PackedLauncher, SlurmLauncher):
        if launcher is not None and issubclass(launcher, Launcher):
            Plugins.instance().register(launcher)


@dataclass(frozen=True)
class Source:
    """Where the primary config comes from: Hydra's ``-cn``, ``-cp`` and ``-cd`` flags, so that
    the pre-check composes what ``@hydra.main`` will."""

    name: str = "config"
    path: str | None = None  # -cp: replaces conf/ (as in cli/app.py's @hydra.main)
    dir: str | None = None  # -cd: searched before conf/


DEFAULT = Source()


@contextmanager
def hydra_context(source: Source = DEFAULT) -> Iterator[None]:
    """Hydra initialised on sharedppo's config tree, the schema registered, for ``compose``."""
    register_configs()
    if source.path is None and source.dir is None:
        with initialize_config_module(CONFIG_MODULE, version_base=VERSION_BASE):
            yield
        return
    # The search path @hydra.main builds for cli/app.py (hydra._internal.utils._run_hydra).
    folder = os.path.abspath(source.dir or ".")
    if not os.path.isdir(folder):
        raise ConfigError(f"--config-dir {source.dir} is not allowed: no such folder")
    backup = get_gh_backup()
    try:
        version.setbase(VERSION_BASE)
        path = source.path or f"pkg://{CONFIG_MODULE}"
        search = create_automatic_config_search_path(None, "sharedppo.cli.app", path)
        if source.dir is not None:
            search.prepend("command-line", f"file://{folder}", SearchPathQuery(provider="schema"))
        Hydra.create_main_hydra2("sharedppo", search)
        yield
    finally:
        restore_gh_from_backup(backup)


# Mappings handed to user code as they are: any key may be set in them without Hydra's `+`.
OPEN_MAPPINGS = ("env.kwargs.",)


def open_mapping_overrides(overrides: list[str]) -> list[str]:
    """``env.kwargs.NAME=VALUE`` sets or adds the key (Hydra's ``++``), as users expect of an
    open mapping; the schema's struct flag would otherwise refuse a key it does not know."""
    return [f"++{o}" if o.startswith(OPEN_MAPPINGS) else o for o in overrides]


# The env option a bare env.id runs as: a general-purpose recipe and budget (conf/env/generic.yaml).
GENERIC_ENV = "generic"


def bare_env_id(overrides: list[str]) -> list[str]:
    """``env.id=X`` without ``env=`` (nor an experiment preset, nor a resume, which bring
    their own): ``env=generic`` is added, so X trains with the general recipe and budget
    rather than those tuned for the default option's task (CartPole)."""
    keys = {o.lstrip("+~").split("=", 1)[0] for o in overrides if not o.startswith("-")}
    if "env.id" not in keys or keys & {"env", "experiment", "resume"}:
        return overrides
    # Last: a command line's flags (-m, --cfg job) come first, and Hydra applies a group choice
    # before any value whatever their order.
    return [*overrides, f"env={GENERIC_ENV}"]


def recipe_line(overrides: list[str], total_steps: int) -> str:
    """The first log line: which ppo option and budget this run uses, and how to change them."""
    choices = dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o)
    env = choices.get("env", "cartpole")
    ppo = choices.get("ppo", env)
    preset = f" with experiment={choices['experiment']}" if "experiment" in choices else ""
    steps = "given" if "total_steps" in choices else f"env={env}'s default_steps"
    return (
        f"recipe: ppo={ppo}{preset}, total_steps={total_steps:,} ({steps}); change them with "
        "ppo=NAME or ppo.KEY=VALUE, and total_steps=N"
    )


def compose_checked(overrides: list[str], source: Source = DEFAULT) -> DictConfig:
    """Compose and validate the config for these overrides; any mistake is one ConfigError line.

    The CLI calls this before handing over to Hydra, so a user's typo gets one line instead of
    Hydra's multi-line report.
    """
    cfg = _compose(overrides, source, with_hydra=False)
    validate(cfg)
    return cfg


def compose_with_hydra(
    overrides: list[str], source: Source = DEFAULT
) -> tuple[DictConfig, DictConfig]:
    """``compose_checked``, with ``hydra.*`` overrides checked against Hydra's own schema too;
    returns the job's config and Hydra's (``hydra.output_subdir``, ``hydra.run.dir``, ...)."""
    cfg = _compose(overrides, source, with_hydra=True)
    with open_dict(cfg):
        hydra_cfg = cfg.pop("hydra")
    validate(cfg)
    return cfg, hydra_cfg


def _compose(overrides: list[str], source: Source, with_hydra: bool) -> DictConfig:
    try:
        with hydra_context(source):
            return compose(
                source.name,
                overrides=open_mapping_overrides(overrides),
                return_hydra_config=with_hydra,
            )
    except yaml.YAMLError as err:
        # A user's own YAML (on hydra.searchpath, -cd): yaml names the file and the place.
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
        problem = getattr(err, "problem", None) or first_line(err)
        raise ConfigError(f"{where} is not valid YAML: {problem}") from None
    except MissingConfigException as err:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        if not group:  # the primary config itself (-cn NAME)
            raise ConfigError(
                f"--config-name {name or source.name} is not allowed: no such config in "
                f"{source.dir or source.path or 'conf/'}"
            ) from None
        options = ", ".join(err.options or [])
        raise ConfigError(f"{group}={name} is not allowed: choose one of {options}") from None
    except HydraException as err:
        cause = err.__cause__
        key = getattr(cause, "full_key", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
            raise ConfigError(_unknown(key, cause)) from None
        if isinstance(cause, OmegaConfBaseException) and key:
            typed = wrong_type_message(key, cause.value, cause.object_type)
            if isinstance(cause, ValidationError) and typed is not None:
                raise ConfigError(typed) from None
            raise ConfigError(f"{key} is not allowed: {first_line(cause)}") from None
        raise ConfigError(one_line(str(err))) from None


def one_line(message: str) -> str:
    """Hydra's message on one line, its advice kept: ``seed=0,1`` without ``-m`` is "Ambiguous
    value ...: 1. To use it as a list, ...; 3. To sweep over it, add --multirun ..."."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "Hydra refused the command line"
    first, *rest = lines
    return f"{first}: {'; '.join(rest)}" if rest else first


def _unknown(key: str, cause: OmegaConfBaseException) -> str:
    """A key outside the schema: a ``hydra.*`` one is Hydra's, whose node lists its keys."""
    if not key.startswith("hydra."):
        return unknown_key_message(key)
    parent, _, _ = key.rpartition(".")
    node = getattr(cause, "parent_node", None)
    known = ", ".join(map(str, node.keys())) if isinstance(node, DictConfig) else "see --hydra-help"
    return f"{key} is not a known key; allowed in {parent}: {known}"
