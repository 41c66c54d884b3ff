"""What TensorBoard shows beyond the curves: the HParams experiment and a Custom Scalars layout.

HParams: the keys that define the experiment, the swept keys first (TensorBoard lists
hyperparameters marked ``differs`` first and shows the first five), categorical values (and
the seed, an identifier rather than a quantity) as discrete domains, and the metrics,
written as scalars at each checkpoint and when the run ends. TensorBoard's Parallel
Coordinates and Scatter views leave out a run that lacks any declared metric, so only
metrics every run has are declared: whether the target was reached (0 or 1), not the steps
to it, which a run that never reached it does not have (those go to ``target/``). Which keys are
listed is each key's kind in the schema (``config.Role``): a HYPERPARAMETER always, an
EXECUTION key (how the run computes) only when the user set it, BOOKKEEPING (checkpointing,
evaluation, logging, resume) never.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard.summary import custom_scalars

from ..config import Config, Role, has_role
from ..overrides import expand_sweep, key_of, parse

_ONE_OF = "choose one of "
# Final metrics: Logger.final_metrics(key -> value) writes each as the scalar hparams/KEY.
# key: (column title, description). Every run has each of them (reached_target: once the run
# has a target), so no run drops out of a view.
METRICS = {
    "final_return": ("final return", "mean return of the last 20 episodes"),
    "best_return": (
        "best return",
        "highest mean of 20 consecutive episodes (of all, before the 20th)",
    ),
    "auc_return": ("AUC return", "area under the 20-episode mean, divided by the steps"),
    "reached_target": (
        "reached target",
        "1 if the 20-episode mean reached env.target_return, else 0",
    ),
}
# Only a run that reached the target has these: scalars, not HParams metrics.
TARGET_SCALARS = {"target_step": "target/step", "target_seconds": "target/seconds"}
RETURN_MEAN = "charts/mean_return"  # the 20-episode mean, every update
RETURN_MIN, RETURN_MAX = "charts/return_window_min", "charts/return_window_max"
# An identifier, not a quantity: shown as text ("3", not "3.0000"), one check box per value.
AS_TEXT = frozenset({"seed"})


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@cache
def schema_choices(schema: type = Config, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """The named choices of the schema's string keys (``network.activation``: tanh, relu,
    ...), read from their checks; placeholders such as ``cuda:N`` fail their own check."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        check = f.metadata.get("check")
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            out.update(schema_choices(f.default_factory, name + "."))
        elif check is not None and check.allowed.startswith(_ONE_OF):
            names = check.allowed[len(_ONE_OF) :].split(", ")
            out[name] = tuple(n for n in names if check.test(n))
    return out


def sweep_values(job: Path) -> dict[str, list[str]]:
    """Each swept key's values across the sweep the job belongs to; {} outside a sweep."""
    jobs = expand_sweep(Path(job).parent) or []
    values: dict[str, list[str]] = {}
    for overrides in jobs:
        for override in overrides:
            seen = values.setdefault(key_of(override), [])
            value = override.split("=", 1)[1] if "=" in override else ""
            if value not in seen:
                seen.append(value)
    return values


def _bookkeeping(key: str) -> bool:
    return has_role(key, Role.BOOKKEEPING)


def select_hparams(
    config: Mapping[str, Any], overrides: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """(hyperparameters in display order, the keys the user chose) for one run.

    An override of a config group (``env=acrobot``, ``experiment=pendulum``) is logged as the
    option's name under the group's key.
    """
    flat = flatten(config)
    chosen: dict[str, Any] = {}
    for override in overrides:
        if override.startswith(("~", "hydra.", "hydra/")):
            continue
        key = key_of(override)
        if _bookkeeping(key):
            continue
        if key in flat:
            chosen[key] = flat[key]
            continue
        below = [k for k in flat if k.startswith(key + ".") and not _bookkeeping(k)]
        value = parse(override).value()
        if isinstance(value, Mapping) and below:
            chosen.update({k: flat[k] for k in below})
        else:
            chosen[key] = value if isinstance(value, (bool, int, float)) else str(value)
    atari = bool(flat.get("env.atari.enabled", False))
    rest = {
        k: v
        for k, v in flat.items()
        if has_role(k, Role.HYPERPARAMETER)
        and (atari or not k.startswith("env.atari."))
        and k not in chosen
    }
    return {**chosen, **rest}, list(chosen)


def _value(v: Any) -> struct_pb2.Value:
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, (int, float)):
        return struct_pb2.Value(number_value=float(v))
    if v is None:
        return struct_pb2.Value(string_value="null")
    if isinstance(v, str):
        return struct_pb2.Value(string_value=v)
    return struct_pb2.Value(string_value=json.dumps(v, default=str))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def hparam_info(key: str, value: Any, differs: bool, swept: Sequence[str]) -> api_pb2.HParamInfo:
    """Type and domain of one hyperparameter; ``differs`` marks the keys that tell runs apart."""
    # TensorBoard sorts hyperparameters with differs=true first and displays the first five,
    # so marking the swept keys (a single run: the user's own) puts them in front.
    info = api_pb2.HParamInfo(name=key, differs=differs)
    own = _value(str(value) if key in AS_TEXT else value)
    kind = own.WhichOneof("kind")
    if kind == "bool_value":
        info.type = api_pb2.DATA_TYPE_BOOL
        info.domain_discrete.extend([False, True])
    elif kind == "number_value":
        info.type = api_pb2.DATA_TYPE_FLOAT64
        numbers = [_number(s) for s in swept]
        # A numeric sweep over a few values filters best as check boxes; otherwise the
        # dashboard offers a min/max interval, which needs no domain.
        if len(numbers) > 1 and None not in numbers:
            values = sorted(set(numbers) | {own.number_value})
            info.domain_discrete.extend(values)
    else:
        info.type = api_pb2.DATA_TYPE_STRING
        names = [*schema_choices().get(key, ()), own.string_value, *swept]
        unique = list(dict.fromkeys(n for n in names if n))
        info.domain_discrete.extend(unique)
    return info


def _plugin_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(
        value=[
            Summary.Value(
                tag=tag,
                metadata=metadata.create_summary_metadata(data),
                tensor=metadata.NULL_TENSOR,
            )
        ]
    )


def declared_metrics(has_target: bool) -> list[str]:
    """The metrics a run declares: reached_target only where the run has a target."""
    return [k for k in METRICS if has_target or k != "reached_target"]


def hparams_summaries(
    config: Mapping[str, Any],
    overrides: Sequence[str],
    swept: Mapping[str, Sequence[str]] | None = None,
    has_target: bool = True,
) -> list[Summary]:
    """The experiment (hyperparameters, domains, metrics) and this run's session start.

    Every run writes the same experiment for its sweep (TensorBoard reads one); the metric
    values follow as ordinary scalars, so metrics written only at the end still show.
    ``swept``: each swept key's values (``sweep_values``); in a sweep, those keys differ.
    """
    params, chosen = select_hparams(config, overrides)
    swept = swept or {}
    # A sweep's multirun.yaml lists its constant overrides too (total_steps=...): only keys
    # with several values tell its runs apart.
    differs = [k for k in params if len(swept.get(k, ())) > 1] if swept else chosen
    experiment = api_pb2.Experiment(
        time_created_secs=time.time(),
        hparam_infos=[hparam_info(k, v, k in differs, swept.get(k, ())) for k, v in params.items()],
        metric_infos=[
            api_pb2.MetricInfo(
                name=api_pb2.MetricName(tag=f"hparams/{k}"),
                display_name=METRICS[k][0],
                description=METRICS[k][1],
            )
            for k in declared_metrics(has_target)
        ],
    )
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for k, v in params.items():
        start.hparams[k].CopyFrom(_value(str(v) if k in AS_TEXT else v))
    return [
        _plugin_summary(
            metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)
        ),
        _plugin_summary(
            metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
    ]


def metric_tag(key: str) -> str:
    return TARGET_SCALARS.get(key) or f"hparams/{key}"


def metric_scalars(metrics: Mapping[str, float | None]) -> list[tuple[str, float]]:
    """``hparams/KEY`` scalars of the final metrics (``target/...`` for the steps and seconds
    to the target); absent or non-finite ones are left out."""
    unknown = set(metrics) - set(METRICS) - set(TARGET_SCALARS)
    if unknown:
        raise KeyError(f"unknown final metrics {sorted(unknown)}; known: {list(METRICS)}")
    return [
        (metric_tag(k), float(v))
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    ]


def layout_summary() -> Summary:
    """The Custom Scalars dashboard, laid out for PPO."""
    return custom_scalars(
        {
            "return": {
                "episodic return: 20-episode mean, band from min to max of those episodes": [
                    "Margin",
                    [RETURN_MEAN, RETURN_MIN, RETURN_MAX],
                ],
            },
            "losses": {
                "policy loss and entropy": ["Multiline", [r"^losses/(policy_loss|entropy)$"]],
                "value loss": ["Multiline", [r"^losses/value_loss$"]],
            },
            "approximate KL and clip fraction": {
                "approximate KL (k3) and clip fraction": [
                    "Multiline",
                    [r"^losses/(approx_kl|clipfrac)$"],
                ],
            },
            "SPS and learning rate": {
                "steps per second": ["Multiline", [r"^charts/SPS$"]],
                "learning rate": ["Multiline", [r"^charts/learning_rate$"]],
            },
        }
    )


def final_metrics(result: Any) -> dict[str, float | None]:
    """The metrics of a run so far from its ``trainer.TrainResult``. Before a full window of
    20 episodes the best mean is the mean of all of them (as the sweep report has it)."""
    reached = None if result.target_return is None else float(result.target_step is not None)
    best = result.best_return if result.best_return is not None else result.mean_return
    return {
        "final_return": result.mean_return,
        "best_return": best,
        "auc_return": result.auc_return,
        "reached_target": reached,
        "target_step": result.target_step,
        "target_seconds": result.target_seconds,
    }
