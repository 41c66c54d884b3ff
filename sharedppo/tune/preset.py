"""The best trial as an experiment preset: the keys that define the experiment, nothing else.

A preset is a starting point for a real run, so the keys that only describe how a trial was
run (its seed, where and how it logged: ``Role.RUN_ONLY`` in the schema) are left out, as is
Hydra's own ``hydra.*``. The budget stays: the learning rate (and clip) anneal over
``total_steps``, so the recipe that was tuned is the one at the trial's budget.

Trials that tie on the objective (several at CartPole's ceiling of 500) are told apart by the
area under their learning curve: the one that got there sooner is best.
"""

from __future__ import annotations

import math
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..config import Role, has_role


def run_only(key: str) -> bool:
    """Whether an override's key (``seed``, ``+checkpoint.keep``, ``hydra/launcher``) only
    describes the trial's run."""
    name = key.lstrip("+~").replace("/", ".")
    return name.split(".")[0] == "hydra" or has_role(name, Role.RUN_ONLY)


def is_group(key: str) -> bool:
    return "." not in key and (files("sharedppo.conf") / key).is_dir()


def preset_text(overrides: list[str], note: str) -> str:
    """A ``@package _global_`` preset from a trial's overrides: config groups as defaults,
    values as YAML, run-only keys left out (named in a comment)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    defaults: list[Any] = []
    body = OmegaConf.create({})
    left_out: dict[str, str] = {}  # by key: the command line's value after the search's
    for text, override in zip(
        overrides, OverridesParser.create().parse_overrides(overrides), strict=True
    ):
        key = override.key_or_group
        if run_only(key) or override.is_delete():
            left_out.pop(key, None)
            left_out[key] = text
        elif key == "experiment":  # another preset: included, then overridden by this one
            defaults.insert(0, f"/experiment/{override.value()}")
        elif is_group(key):
            defaults.append({f"override /{key}": override.value()})
        else:
            OmegaConf.update(body, key, override.value(), force_add=True)
    lines = ["# @package _global_", f"# {note}"]
    if left_out:
        run_only_keys = " ".join(left_out.values())
        lines.append(f"# left out, as they only describe the trial's run: {run_only_keys}")
    head = OmegaConf.to_yaml({"defaults": [*defaults, "_self_"]}) if defaults else ""
    return "\n".join(lines) + "\n" + head + (OmegaConf.to_yaml(body) if len(body) else "")


def best_trial(study: Any) -> Any:
    """The completed trial with the best value; among equals, the highest mean AUC return
    (``auc`` in its user attributes), then the earliest."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
    return max(
        done,
        key=lambda t: (sign * t.value, t.user_attrs.get("auc", -math.inf), -t.number),
    )


def write_best_preset(study: Any, fallback: list[str], folder: Path) -> Path:
    """``folder/experiment/STUDY_best.yaml`` from the best trial, usable as experiment=..."""
    best = best_trial(study)
    overrides = best.user_attrs.get("overrides")
    if overrides is None:  # a trial from before trials recorded their overrides
        overrides = [*fallback, *(f"{k}={v}" for k, v in best.params.items())]
    seeds = best.user_attrs.get("seed_returns")
    over = f" over {len(seeds)} seeds" if seeds and len(seeds) > 1 else ""
    auc = best.user_attrs.get("auc")
    area = f", AUC {auc:.2f}" if auc is not None else ""
    note = (
        f"best trial {best.number} of study {study.study_name!r} "
        f"(mean return {best.value:.2f}{area}{over}), written by sharedppo-tune"
    )
    path = folder / "experiment" / f"{study.study_name}_best.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Workers on several machines may each write it at their end: whole files only.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(preset_text(list(overrides), note))
    partial.replace(path)
    return path
