"""A search space for sharedppo-tune: its file, its parameters, its sampler and its pruner."""

from __future__ import annotations

import itertools
import math
import random
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..compose import compose_checked
from ..config import ConfigError

SPACE_KEYS = (
    "study_name", "direction", "n_trials", "seed", "seeds", "overrides", "pruner", "params"
)  # fmt: skip
PARAM_TYPES = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}


def load_space(search: str) -> DictConfig:
    """A YAML file, or a name in conf/hparams_search/ composed through Hydra."""
    path = Path(search)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--search {search!r}: no such file")
        space = OmegaConf.load(path)
    else:
        space = compose_checked([f"hparams_search={search}"]).hparams_search
    if space is None:  # an optional group skips a missing option silently
        folder = files("sharedppo.conf") / "hparams_search"
        names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise ConfigError(
            f"--search {search!r} is not allowed: a .yaml file or one of " + ", ".join(names)
        )
    check_space(space)
    return space


def check_space(space: DictConfig) -> None:
    """One line for a misspelt key or an incomplete parameter, before any trial runs."""
    for key in space:
        if key not in SPACE_KEYS:
            raise ConfigError(f"search space key {key!r} is not allowed: " + ", ".join(SPACE_KEYS))
    if not space.get("study_name"):
        raise ConfigError("search space: study_name is missing")
    if space.get("direction", "maximize") not in ("maximize", "minimize"):
        raise ConfigError(f"direction={space.direction!r} is not allowed: maximize or minimize")
    if not space.get("params"):
        raise ConfigError("search space: params is missing (at least one key to search)")
    for name, spec in space.params.items():
        kind = spec.get("type") if isinstance(spec, DictConfig) else None
        if kind not in PARAM_TYPES:
            raise ConfigError(
                f"params.{name}.type={kind!r} is not allowed: float, int or categorical"
            )
        for needed in PARAM_TYPES[kind]:
            if spec.get(needed) is None:
                raise ConfigError(f"params.{name}.{needed} is missing ({kind} needs it)")


def suggest(trial: Any, name: str, spec: DictConfig) -> Any:
    if spec.type == "float":
        return trial.suggest_float(name, spec.low, spec.high, log=bool(spec.get("log", False)))
    if spec.type == "int":
        return trial.suggest_int(name, spec.low, spec.high, log=bool(spec.get("log", False)))
    return trial.suggest_categorical(name, list(spec.choices))


def space_size(params: DictConfig) -> int | None:
    """How many parameter sets the space holds; None where a float makes it continuous."""
    sizes = []
    for spec in params.values():
        if spec.type == "float":
            return None
        sizes.append(len(spec.choices) if spec.type == "categorical" else spec.high - spec.low + 1)
    return math.prod(sizes)


def values(spec: DictConfig) -> list[Any]:
    """Every value of a categorical or int parameter."""
    if spec.type == "categorical":
        return list(spec.choices)
    return list(range(spec.low, spec.high + 1))


def untried_set(params: DictConfig, tried: set[frozenset], seed: int) -> dict[str, Any] | None:
    """A parameter set of a small finite space that no trial has, picked at random: where the
    sampler keeps proposing tried sets (TPE does, once it is sure), the study still moves on."""
    size = space_size(params)
    if size is None or size > 10_000:
        return None
    names = list(params)
    combos = itertools.product(*map(values, params.values()))
    sets = (dict(zip(names, combo, strict=True)) for combo in combos)
    left = [s for s in sets if frozenset(s.items()) not in tried]
    return random.Random(seed).choice(left) if left else None


def make_sampler(space: DictConfig, trials_so_far: int, worker: int) -> Any:
    """TPE, seeded from the search's seed, the study's size and the worker's index.

    A sampler reseeded identically on every run would propose its first sets again when a
    study is continued, and every worker of a parallel study would propose the same ones.
    """
    import optuna

    seed = space.get("seed")
    if seed is not None:
        seed = int(np.random.SeedSequence([int(seed), trials_so_far, worker]).generate_state(1)[0])
    # constant_liar: a running trial counts as a poor result, so workers spread out.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(spec: DictConfig) -> Any:
    import optuna

    kind = spec.get("type", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.get("n_startup_trials", 5),
            n_warmup_steps=spec.get("n_warmup_steps", 0),
        )
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner.type={kind!r} is not allowed: median, successive_halving or none")
