"""The checks a schema key's value must pass, beyond its type, and the error they raise.

Each check carries its own one-line description of what is allowed, so the error names the
key, the value and the rule. ``config.key`` attaches one to a key; ``config.validate`` runs
them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def one_of(*choices: str) -> Check:
    return Check(lambda v: v in choices, "choose one of " + ", ".join(choices))


def or_null(check: Check) -> Check:
    return Check(lambda v: v is None or check.test(v), f"must be null or {check.allowed[8:]}")
