"""What a schema key is declared with: the check its value must pass and its roles.

A check carries its own one-line description of what is allowed, so the error names the key,
the value and the rule; ``config.validate`` runs them all. A key's roles say how the parts
that treat keys differently (resume, the HParams dashboard, tuned presets, the fused
gradient) treat it; ``config`` derives their lists from the schema.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import EllipsisType
from typing import Any


class ConfigError(ValueError):
    """A user's config mistake; the message is one line naming the key and what is allowed."""


@dataclass(frozen=True)
class Check:
    test: Callable[[Any], bool]
    allowed: str

    def __call__(self, key: str, value: Any) -> None:
        if not self.test(value):
            raise ConfigError(f"{key}={value!r} is not allowed: {self.allowed}")


def at_least(low: float) -> Check:
    return Check(lambda v: v >= low, f"must be >= {low}")


def above(low: float) -> Check:
    return Check(lambda v: v > low, f"must be > {low}")


def within(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    left, right = "(" if low_open else "[", ")" if high_open else "]"

    def test(v: float) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return Check(test, f"must be in {left}{low:g}, {high:g}{right}")


def upto(low: float, high: float) -> Check:
    """A count with a ceiling: a value past it hangs or exhausts the machine, not a choice."""
    return Check(lambda v: low <= v <= high, f"must be in [{low:g}, {high:g}]")


# The largest integer any key takes: torch and numpy hold counts in int64.
INT_LIMIT = 2**63 - 1


def check_number(key: str, value: Any) -> None:
    """Every number in a config is finite and fits an int64: inf, nan and 1e400 are typos, and
    a check like ``>= 0`` would pass inf (nan passes no comparison, but says nothing)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} is not allowed: must be a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        raise ConfigError(f"{key}={value!r} is not allowed: must be at most {INT_LIMIT} in size")


def one_of(*choices: str) -> Check:
    return Check(lambda v: v in choices, "choose one of " + ", ".join(choices))


def or_null(check: Check) -> Check:
    rule = check.allowed.removeprefix("must be ").replace("choose one of", "one of", 1)
    return Check(lambda v: v is None or check.test(v), f"must be null or {rule}")


class Role(enum.Flag):
    """What a key is to the parts that treat keys differently. Each key has exactly one kind
    (HYPERPARAMETER, EXECUTION or BOOKKEEPING: the dashboard's rule) and any of the rest.
    The fused gradient's allow-list is not a role but values: a network key's ``fused=``."""

    # Defines the experiment: what is learnt, from what, for how long (the learning rate
    # anneals over total_steps), toward which target. Always on the HParams dashboard.
    HYPERPARAMETER = enum.auto()
    # How the run computes or when it stops, not what it sets out to learn: on the dashboard
    # only when the user set it.
    EXECUTION = enum.auto()
    # The job's own housekeeping (checkpoints, evaluation, logging, resuming, the search
    # space, the env's default budget that total_steps stands for): never a hyperparameter
    # on the dashboard.
    BOOKKEEPING = enum.auto()
    # What a checkpoint holds is shaped by it (the parameters and Adam's moments, the rollout
    # memory, the env copies): a resume refuses a change, even one named in resume_allow.
    STRUCTURAL = enum.auto()
    # How long, where and with what records a job runs: a resume may change it freely. Any
    # other change that is not STRUCTURAL must be named in resume_allow, so it is recorded.
    RUN_CONTROL = enum.auto()
    # Describes how a tuning trial ran, not the experiment: left out of a tuned best preset.
    RUN_ONLY = enum.auto()


# OmegaConf's MISSING (a value the user must give), spelt out: the schema imports no
# third-party package, so nn/ and algo/, which read the schema, do not load omegaconf.
MISSING = "???"
# A key has exactly one of these (tests/test_roles.py holds the schema to it).
KINDS = Role.HYPERPARAMETER | Role.EXECUTION | Role.BOOKKEEPING
# Housekeeping does not change what is learnt: a resume may change it, a preset drops it.
RECORDS = Role.BOOKKEEPING | Role.RUN_CONTROL | Role.RUN_ONLY
# How and where this run goes (the machine, when to stop): not part of the experiment.
RUN_SETTING = Role.EXECUTION | Role.RUN_CONTROL | Role.RUN_ONLY
# `fused=ANY`: the fused gradient handles every value of the key.
ANY = ...
# A key's `fused=`: the values the fused gradient handles, ANY, or None (not on its list).
Fused = tuple[Any, ...] | EllipsisType | None


def key(
    default: Any,
    check: Check | None = None,
    *,
    roles: Role | None = None,
    fused: Fused = None,
    help: str = "",
) -> Any:
    """A schema field: its default, the check its value must pass, its roles (None: its
    group's), for a network key the values the fused gradient supports (None: it falls
    back to autograd for any value, the safe default for a new key), and what it does
    (``help``: one or two sentences, shown by ``sharedppo --help`` and the docs)."""
    meta = {"check": check, "roles": roles, "fused": fused, "help": help}
    if isinstance(default, (list, dict)):  # a mutable default: each config gets its own copy
        return field(default_factory=default.copy, metadata=meta)
    return field(default=default, metadata=meta)


def group(cls: type, roles: Role | None = None) -> Any:
    """A group of keys; its roles are those of each key below it that names none."""
    return field(default_factory=cls, metadata={"roles": roles})


# Reading a schema back: its keys, their roles, and configs by dotted key.


def _group_of(spec: Any) -> type | None:
    sub = spec.default_factory
    return sub if isinstance(sub, type) and is_dataclass(sub) else None


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    """Every key of a schema, dotted, in schema order (a group's keys in its place)."""
    out: list[str] = []
    for spec in fields(schema):
        sub = _group_of(spec)
        out += schema_keys(sub, f"{prefix}{spec.name}.") if sub else [prefix + spec.name]
    return out


def roles_in(schema: type, key: str) -> Role:
    """A dotted key's roles: its own, else those of the nearest group above it that gives
    some. A key the schema does not list (an entry of env.kwargs, a network key removed since
    a checkpoint was written) has its nearest listed ancestor's; outside it (hydra.*), none."""
    roles, node = Role(0), schema
    for part in key.split("."):
        spec = next((f for f in fields(node) if f.name == part), None) if node else None
        if spec is None:
            break
        roles = spec.metadata.get("roles") or roles
        node = _group_of(spec)
    return roles


def dotted(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value}. An empty mapping is a value (env.kwargs={}),
    so a change from it to a full one is seen."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(dotted(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out
