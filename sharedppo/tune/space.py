"""A search space for sharedppo-tune: its file, its parameters, its sampler and its pruner."""

from __future__ import annotations

import itertools
import math
import random
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from ..compose import compose_checked
from ..config import ConfigError

SPACE_KEYS = (
    "study_name", "direction", "n_trials", "seed", "seeds", "overrides", "pruner", "params"
)  # fmt: skip
STUDY_NAME = re.compile(r"[A-Za-z0-9._-]+")
PARAM_TYPES = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}


def load_space(search: str) -> DictConfig:
    """A YAML file, or a name in conf/hparams_search/ composed through Hydra."""
    path = Path(search)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--search {search!r}: no such file")
        try:
            space = OmegaConf.load(path)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ConfigError(f"--search {search}{line} is not valid YAML: {problem}") from None
        if not isinstance(space, DictConfig):
            raise ConfigError(f"--search {search} is not allowed: must be a mapping of keys")
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
    name = str(space.study_name)
    if not STUDY_NAME.fullmatch(name) or name in (".", ".."):
        # It names the study's folder and its preset file: a path would write outside --out.
        raise ConfigError(
            f"study_name={name!r} is not allowed: letters, digits, '.', '_' and '-' only"
        )
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
        check_param(name, kind, spec)


def check_param(name: str, kind: str, spec: DictConfig) -> None:
    """A parameter's range or choices can be sampled: a range with low > high would leave its
    trial RUNNING forever (Optuna raises inside the worker), no choices has nothing to try."""
    if kind == "categorical":
        if not OmegaConf.is_list(spec.choices) or len(spec.choices) == 0:
            raise ConfigError(f"params.{name}.choices is not allowed: must be a non-empty list")
        return
    low, high = spec.low, spec.high
    number = int if kind == "int" else (int, float)
    for what, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            raise ConfigError(
                f"params.{name}.{what}={value!r} is not allowed: must be a finite {kind}"
            )
    if low > high:
        raise ConfigError(f"params.{name}: low={low} > high={high}; low must be <= high")
    if spec.get("log", False) and low <= 0:
        raise ConfigError(f"params.{name}.low={low} is not allowed with log: true: must be > 0")


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
