"""Each key's roles live on the key in the schema; the lists resume, the dashboard, tuned
presets and the fused gradient use are derived from them. The literals below are the lists
as they were written by hand before, so a derived list that drifts from them is seen."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sharedppo.config import (
    ANY,
    Config,
    ConfigError,
    Role,
    fused_allowed,
    keys_with,
    roles_of,
    schema_keys,
)
from sharedppo.keys import KINDS, RECORDS
from sharedppo.run.checkpoint import CheckpointError, check_resumable
from sharedppo.run.resume import check_resume
from sharedppo.tb.dashboard import select_hparams
from sharedppo.tune.preset import run_only

KEYS = schema_keys(Config)


def _specs(schema: type, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for spec in dataclasses.fields(schema):
        sub = spec.default_factory
        if isinstance(sub, type) and dataclasses.is_dataclass(sub):
            out += _specs(sub, f"{prefix}{spec.name}.")
        else:
            out.append((prefix + spec.name, spec))
    return out


def _matching(prefixes: tuple[str, ...]) -> set[str]:
    return {k for k in KEYS if k.startswith(prefixes)}


def test_every_key_has_exactly_one_kind():
    for key in KEYS:
        kinds = [
            r for r in (Role.HYPERPARAMETER, Role.EXECUTION, Role.BOOKKEEPING) if r in roles_of(key)
        ]
        assert len(kinds) == 1, f"{key}: {roles_of(key)!r}"
    assert all(roles_of(k) & KINDS for k in KEYS)


def test_roles_do_not_contradict_each_other():
    for key in KEYS:
        roles = roles_of(key)
        # A resume cannot both refuse a change and allow it freely.
        assert not (Role.STRUCTURAL in roles and Role.RUN_CONTROL in roles), key
        # Housekeeping never changes what is learnt: resumes may change it, presets drop it.
        assert Role.BOOKKEEPING not in roles or RECORDS in roles, key


def test_resume_run_control_is_as_before():
    old = (
        "total_steps",
        "checkpoint.",
        "eval.",
        "log_every_updates",
        "device",
        "torch_threads",
        "resume",
        "resume_allow",
        "retry_failed",  # added with sweeps that continue: how a sweep is rerun
        "hparams_search",
        "stop_on_target",
        "env.target_return",
        "env.default_steps",
    )
    assert set(keys_with(Role.RUN_CONTROL)) == _matching(old)


def test_structural_keys_are_as_before():
    # checkpoint.check_resumable compared the whole network, env.id, env.num_envs and
    # ppo.num_steps.
    old = _matching(("network.",)) | {"env.id", "env.num_envs", "ppo.num_steps"}
    assert set(keys_with(Role.STRUCTURAL)) == old
    # A network key added later is structural until someone decides otherwise.
    assert Role.STRUCTURAL in roles_of("network.some_future_key")


def test_tuned_preset_run_only_keys_are_as_before():
    # total_steps is no longer dropped: the schedules anneal over it, so the tuned recipe is
    # the trial's budget (issue 22). env.default_steps, the default it replaces, is dropped.
    old = (
        "seed",
        "stop_on_target",
        "device",
        "torch_threads",
        "log_every_updates",
        "checkpoint",
        "eval",
        "resume",
        "resume_allow",
        "retry_failed",
        "hparams_search",
    )  # and "hydra", which is Hydra's, outside the schema
    assert set(keys_with(Role.RUN_ONLY)) == {k for k in KEYS if k.split(".")[0] in old} | {
        "env.default_steps"
    }
    # The overrides a trial may carry, as preset.run_only judged them by their top-level key.
    others = ["checkpoint", "env", "experiment", "hydra/launcher", "hydra.run.dir", "~seed"]
    for key in [*KEYS, *others, "+checkpoint.keep", "+env.kwargs.render_mode"]:
        top = key.lstrip("+~").replace("/", ".").split(".")[0]
        expected = top in (*old, "hydra") or key == "env.default_steps"
        assert run_only(key) == expected, key


def test_fused_allow_list_is_as_strict_as_before():
    values = {"type": ("mlp",), "activation": ("tanh", "relu"), "recurrent": (None,)}
    indifferent = {
        "width",
        "depth",
        "dropout",
        "init",
        "shared",
        "log_std_init",
        "recurrent_size",
        "channels_last",
    }
    allowed = fused_allowed()
    assert {k: v for k, v in allowed.items() if v is not ANY} == values
    assert {k for k, v in allowed.items() if v is ANY} == indifferent
    # fused_allowed reads the network group only: a `fused=` anywhere else would be ignored.
    assert [k for k, spec in _specs(Config) if spec.metadata.get("fused")] == [
        f"network.{k}" for k in allowed
    ]


def test_dashboard_classes_are_as_before_but_torch_threads():
    bookkeeping = ("checkpoint.", "eval.", "log_every_updates", "resume", "torch_threads")
    if_overridden = (
        "device",
        "precision",
        "stop_on_target",
        "ppo.fused",
        "env.vectorization_mode",
        "env.backend",
        "network.channels_last",
    )
    core = ("seed", "total_steps", "ppo.", "network.", "env.")
    old_never = _matching(bookkeeping) | {"hparams_search", "retry_failed"}
    old_always = _matching(core) - _matching(if_overridden)
    old_if_set = set(KEYS) - old_never - old_always
    # The changes: torch_threads is how a run executes, like device, so it is listed when
    # the user set it (it was never listed); env.default_steps is never listed, as
    # total_steps, which follows it, is (issue 22: a column nobody set).
    budget = {"env.default_steps"}
    assert set(keys_with(Role.BOOKKEEPING)) == old_never - {"torch_threads"} | budget
    assert set(keys_with(Role.EXECUTION)) == old_if_set | {"torch_threads"}
    assert set(keys_with(Role.HYPERPARAMETER)) == old_always - budget


def test_keys_the_schema_does_not_list_take_their_nearest_known_ancestors_roles():
    assert roles_of("env.kwargs.render_mode") == Role.HYPERPARAMETER
    assert roles_of("env.atari.frame_skip") == Role.HYPERPARAMETER  # the env group's default
    assert roles_of("hparams_search.params.ppo.lr") == RECORDS
    assert roles_of("hydra.run.dir") == Role(0)
    assert roles_of("experiment") == Role(0)


def test_the_schema_and_what_reads_it_load_no_omegaconf():
    code = (
        "import sys, sharedppo.config, sharedppo.nn.actor_critic, sharedppo.algo.agent;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('omegaconf', 'hydra')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _config(**changes: Any) -> dict[str, Any]:
    cfg = dataclasses.asdict(Config())
    cfg["env"]["id"] = "CartPole-v1"
    for dotted_key, value in changes.items():
        *groups, name = dotted_key.split(".")
        node = cfg
        for group in groups:
            node = node[group]
        node[name] = value
    return cfg


def _resume(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list]:
    saved = {"config": old, "progress": {"updates": 1, "global_step": 256}}
    return check_resume(saved, new, Path("JOB"))


def test_resume_follows_the_roles():
    old = _config()
    # Run control: free. Execution that changes the numbers: named. Structural: refused.
    assert _resume(old, _config(device="cpu", torch_threads=2, **{"eval.episodes": 3})) == {}
    with pytest.raises(ConfigError, match=r"resume_allow=\[precision\]"):
        _resume(old, _config(precision="bf16"))
    allowed = _config(precision="bf16", resume_allow=["precision"])
    assert _resume(old, allowed) == {"precision": ["fp32", "bf16"]}
    for key, value in [("network.channels_last", False), ("env.num_envs", 4)]:
        new = _config(resume_allow=[key], **{key: value})
        with pytest.raises(CheckpointError, match=rf"{key}=\S+ in the checkpoint"):
            _resume(old, new)


def test_structural_check_counts_a_new_key_as_its_default_and_a_removed_one_as_a_change():
    old, new = _config(), _config()
    del old["network"]["log_std_init"]  # written before the key existed
    check_resumable(old, new, Path("JOB"))
    old["network"]["layer_norm"] = True  # a key this sharedppo no longer has
    with pytest.raises(CheckpointError, match="network.layer_norm=True in the checkpoint"):
        check_resumable(old, new, Path("JOB"))


def test_dashboard_lists_by_kind():
    config = _config(torch_threads=2, precision="bf16")
    params, chosen = select_hparams(config, ["torch_threads=2", "eval.episodes=3"])
    assert chosen == ["torch_threads"]  # execution, set by the user; bookkeeping never
    assert {"seed", "total_steps", "ppo.lr", "env.target_return"} <= set(params)
    assert not {"precision", "device", "ppo.fused", "network.channels_last"} & set(params)
    assert not [k for k in params if k.startswith(("checkpoint.", "eval.", "resume"))]
