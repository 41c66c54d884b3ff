"""The packages a composed config needs, checked before anything is built.

Each missing one is one line naming ``pip install "sharedppo[EXTRA]"`` (see ``extras``). It
lives with the envs because it asks each backend what its ids need.
"""

from __future__ import annotations

from typing import Any

from ..extras import ENV_MODULES, require
from .build import resolve_env_id
from .envpool import check as check_envpool


def check_env(env_id: str) -> None:
    """The id resolves (its module imported, for ``module:EnvId``) and the extra its gymnasium
    module needs is installed."""
    what = f"env.id={env_id!r}"
    spec = resolve_env_id(env_id)
    if not isinstance(spec.entry_point, str):
        return
    module = spec.entry_point.partition(":")[0]
    feature = next(
        (f for prefix, f in ENV_MODULES.items() if f"{module}.".startswith(f"{prefix}.")),
        None,
    )
    if feature is None:
        return
    # Importing the env's module also catches what it imports beyond the list (glfw, say).
    require(feature, what, module)


def check_extras(cfg: Any) -> None:
    """Everything a composed config (DictConfig or ``config.Config``) needs is installed.

    Raises ConfigError with one line naming ``pip install "sharedppo[EXTRA]"``; call it before
    building anything, so a missing package never surfaces after a training run.
    """
    if cfg.env.backend == "envpool":
        check_envpool(cfg.env)
    if cfg.env.backend == "gymnasium" or cfg.eval.video:
        check_env(cfg.env.id)  # video is recorded on the gymnasium path
    if cfg.eval.video:
        require("video", "eval.video=true")
