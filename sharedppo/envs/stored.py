"""Configs read back from files are data: what their ``env.wrappers`` may ask for.

A checkpoint's config and a job folder's ``.hydra/`` files may come from anyone (a shared
folder, a download), and a checkpoint passing ``torch.load(weights_only=True)`` says nothing
about its config. ``env.wrappers`` entries go to Hydra's ``instantiate``, which calls any
``_target_`` and builds nested ones (``{_target_: builtins.open, ...}`` as an argument opens a
file), so a stored config may only name gymnasium wrapper classes with plain arguments. The
user's own command line is not checked here: it is as free as Hydra makes it.
"""

from __future__ import annotations

import importlib
from typing import Any, NoReturn

import gymnasium as gym
from omegaconf import OmegaConf

from ..config import ConfigError
from ..extras import first_line
from .build import _importable_from_cwd

# Keys that make Hydra's instantiate call or reshape something, at any depth.
HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
ENTRY = "a stored config's wrapper is {_target_: module.WrapperClass, name: value, ...}"
CLASS = "a stored config's wrapper must name a gymnasium.Wrapper class"
RESOLVED = "a stored config's values are resolved, with no ${...} interpolation"
PLAIN = (
    "a stored config's wrapper arguments must be plain values (null, booleans, numbers, "
    "strings, and lists and mappings of them)"
)


def check_stored_wrappers(entries: Any, source: str) -> None:
    """Refuse, in one line naming the key, stored ``env.wrappers`` that would do more than
    wrap the env. ``entries``: the list (plain or OmegaConf); ``source``: where the config was
    read, for the message."""
    if OmegaConf.is_config(entries):
        # Unresolved: resolving would already call the resolvers a stored ${...} names.
        entries = OmegaConf.to_container(entries, resolve=False)
    for i, entry in enumerate(entries):
        name = f"env.wrappers[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("_target_"), str):
            _refuse(source, f"{name}={_short(entry)}", ENTRY)
        _check_class(source, f"{name}._target_", entry["_target_"])
        _check_plain(source, name, {k: v for k, v in entry.items() if k != "_target_"})


def check_no_interpolation(value: Any, source: str, name: str = "") -> None:
    """A checkpoint stores its config resolved, so a ``${...}`` in it was put there by hand:
    refused before anything resolves it (``oc.env`` would read the environment into it)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_no_interpolation(item, source, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list):
        for j, item in enumerate(value):
            check_no_interpolation(item, source, f"{name}[{j}]")
    elif isinstance(value, str) and "${" in value:
        _refuse(source, f"{name}={_short(value)}", RESOLVED)


def _check_class(source: str, name: str, target: str) -> None:
    """``target`` must be ``module.Class`` with Class a gymnasium.Wrapper. Importing the
    module is as far as naming it goes (as ``env.id``'s ``module:EnvId`` does), from the
    working directory too, as when the wrappers are built."""
    module, _, attr = target.rpartition(".")
    if not module or "${" in target:
        _refuse(source, f"{name}={target!r}", CLASS)
    _importable_from_cwd()
    try:
        found = getattr(importlib.import_module(module), attr, None)
    except Exception as err:
        why = (
            f"{CLASS}; module {module!r} fails to import ({type(err).__name__}: {first_line(err)})"
        )
        _refuse(source, f"{name}={target!r}", why)
    if not (isinstance(found, type) and issubclass(found, gym.Wrapper)):
        _refuse(source, f"{name}={target!r}", CLASS)


def _check_plain(source: str, name: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key in HYDRA_KEYS:
                hydra = ", ".join(HYDRA_KEYS)
                _refuse(source, f"{name}.{key}", f"{PLAIN}, with no Hydra key ({hydra})")
            _check_plain(source, f"{name}.{key}", item)
    elif isinstance(value, list):
        for j, item in enumerate(value):
            _check_plain(source, f"{name}[{j}]", item)
    elif isinstance(value, str):
        # Hydra resolves a string's ${...} again when it instantiates: no resolver calls.
        if "${" in value:
            _refuse(source, f"{name}={_short(value)}", f"{PLAIN}, with no ${{...}} interpolation")
    elif value is not None and not isinstance(value, (bool, int, float)):
        _refuse(source, f"{name}={_short(value)}", PLAIN)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(source: str, what: str, allowed: str) -> NoReturn:
    raise ConfigError(f"{source}: {what} is not allowed: {allowed}")
