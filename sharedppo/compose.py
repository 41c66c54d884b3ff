"""Composing the Hydra config outside ``@hydra.main``: the CLI's pre-check, tuning, the API.

This is the one place Hydra is initialised on sharedppo's ``conf/`` (``hydra_context``); the
command line's ``@hydra.main`` reads the same two constants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .config import Config, ConfigError, unknown_key_message, validate

CONFIG_MODULE = "sharedppo.conf"
VERSION_BASE = "1.3"


def register_configs() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


@contextmanager
def hydra_context() -> Iterator[None]:
    """Hydra initialised on sharedppo's config tree, the schema registered, for ``compose``."""
    register_configs()
    with initialize_config_module(CONFIG_MODULE, version_base=VERSION_BASE):
        yield


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


def compose_checked(overrides: list[str]) -> DictConfig:
    """Compose and validate the config for these overrides; any mistake is one ConfigError line.

    The CLI calls this before handing over to Hydra, so a user's typo gets one line instead of
    Hydra's multi-line report.
    """
    try:
        with hydra_context():
            cfg = compose("config", overrides=open_mapping_overrides(overrides))
    except MissingConfigException as err:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        options = ", ".join(err.options or [])
        raise ConfigError(f"{group}={name} is not allowed: choose one of {options}") from None
    except HydraException as err:
        cause = err.__cause__
        key = getattr(cause, "full_key", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
            raise ConfigError(unknown_key_message(key)) from None
        if isinstance(cause, OmegaConfBaseException) and key:
            detail = str(cause).strip().splitlines()[0]
            raise ConfigError(f"{key} is not allowed: {detail}") from None
        raise ConfigError(str(err).strip().splitlines()[0]) from None
    validate(cfg)
    return cfg
