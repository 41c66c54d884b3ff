"""The config schema: each key's type, default, allowed values, roles and meaning, in one place.

The YAML files under ``conf/`` are merged onto these dataclasses (registered in Hydra's
ConfigStore), so a misspelt key or a string where a number belongs is rejected by OmegaConf
before any training starts. Ranges and choices a type cannot express sit beside the default, as
the field's check; :func:`validate` runs them all, then the few checks that span several keys.

Each key also carries its roles (:class:`Role`), which say how a resume, the HParams dashboard
and a tuned preset treat it, and, for a network key, the values the fused gradient supports.
The lists those parts use are derived from them (:func:`has_role`, :func:`keys_with`,
:func:`fused_allowed`), so a new key is placed by its own line in the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from typing import Any

from .groups import (
    AtariConfig,
    CheckpointConfig,
    EnvConfig,
    EvalConfig,
    NetworkConfig,
    PPOConfig,
)

# Imported from here by the rest of sharedppo (ConfigError, the checks, Role).
from .keys import (
    ANY,
    MISSING,
    RECORDS,
    RUN_SETTING,
    Check,
    ConfigError,
    Fused,
    Role,
    at_least,
    check_number,
    group,
    key,
    one_of,
    roles_in,
    schema_keys,
    upto,
)

__all__ = [
    "ANY",
    "MISSING",
    "AtariConfig",
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "NetworkConfig",
    "PPOConfig",
    "Role",
    "schema_keys",
]


def _is_device(name: str) -> bool:
    return name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())


@dataclass
class Config:
    # Groups give their roles to the keys below them that name none.
    env: EnvConfig = group(EnvConfig, Role.HYPERPARAMETER)
    # A checkpoint continues only the network it holds: every network key is structural,
    # a new one too until it is shown to be safe to change.
    network: NetworkConfig = group(NetworkConfig, Role.HYPERPARAMETER | Role.STRUCTURAL)
    ppo: PPOConfig = group(PPOConfig, Role.HYPERPARAMETER)
    checkpoint: CheckpointConfig = group(CheckpointConfig, RECORDS)
    eval: EvalConfig = group(EvalConfig, RECORDS)
    resume: str | None = key(
        None,
        roles=RECORDS,
        help="A job folder to continue: same folder, same curves; total_steps is the job's total.",
    )
    resume_allow: list[str] = key(
        [], roles=RECORDS, help="Hyperparameters a resume may change, e.g. [ppo.lr]."
    )
    retry_failed: bool = key(
        False,
        roles=RECORDS,
        help="A sweep rerun into its own folder (hydra.sweep.dir=...) keeps its completed jobs "
        "and resumes its interrupted ones; true: its failed ones run again too.",
    )
    hparams_search: Any = key(
        None, roles=RECORDS, help="A search space for sharedppo-tune; training ignores it."
    )
    # Listed, but a tuned preset takes no trial's seed.
    seed: int = key(
        0,
        Check(lambda v: 0 <= v < 2**32, "must be an integer in [0, 2^32 - 1]"),  # numpy's
        roles=Role.HYPERPARAMETER | Role.RUN_ONLY,
        help="Which replicate of the experiment.",
    )
    # A resume may extend it; a tuned preset keeps it, as the schedules anneal over it.
    total_steps: int = key(
        100_000,
        Check(lambda v: v >= 1, "must be an integer >= 1"),
        roles=Role.HYPERPARAMETER | Role.RUN_CONTROL,
        help="The budget in env steps (whole rollouts); default: env.default_steps.",
    )
    # A resume may move to another machine (whose rounding differs), a preset has none.
    device: str = key(
        "auto",
        Check(_is_device, "choose one of auto, cpu, cuda, cuda:N"),
        roles=RUN_SETTING,
        help="auto: CUDA when there is one, else the CPU.",
    )
    # It changes the numbers, so a resume must name it, and a preset keeps it.
    precision: str = key(
        "fp32",
        one_of("fp32", "bf16", "fp16"),
        roles=Role.EXECUTION,
        help="The network's forward passes under autocast (bf16: CUDA or a CPU with bf16; "
        "fp16: CUDA, with loss scaling); parameters, optimizer and loss stay fp32.",
    )
    torch_threads: int = key(
        1,
        upto(0, 1024),
        roles=RUN_SETTING,
        help="Threads for torch: small networks run fastest on one; 0 leaves torch's choice.",
    )
    stop_on_target: bool = key(
        False,
        roles=RUN_SETTING,
        help="Stop once the 20-episode mean reaches env.target_return.",
    )
    log_every_updates: int = key(
        1, at_least(1), roles=RECORDS, help="Write the update's stats to TensorBoard this often."
    )


def _check_fields(node: Any, schema: type, prefix: str = "") -> None:
    # `+key=value` appends past the schema's struct flag, so unknown keys are caught here too.
    known = {f.name: f for f in fields(schema)}
    for name in node:
        if name not in known:
            raise ConfigError(unknown_key_message(f"{prefix}{name}"))
        spec, value = known[name], node[name]
        sub = spec.default_factory
        if callable(sub) and is_dataclass(sub):
            _check_fields(value, sub, f"{prefix}{name}.")
            continue
        check_number(f"{prefix}{name}", value)
        if spec.metadata.get("check") is not None:
            spec.metadata["check"](f"{prefix}{name}", value)


def validate(cfg: Any) -> None:
    """Raise ConfigError on the first unknown key or value out of range (cfg: a DictConfig)."""
    _check_fields(cfg, Config)
    ppo, env = cfg.ppo, cfg.env
    batch = ppo.num_steps * env.num_envs
    if batch % ppo.num_minibatches:
        raise ConfigError(
            f"ppo.num_minibatches={ppo.num_minibatches!r} is not allowed: must divide the batch "
            f"ppo.num_steps x env.num_envs = {ppo.num_steps} x {env.num_envs} = {batch}"
        )
    recurrent = cfg.network.recurrent
    if recurrent is not None and env.num_envs % ppo.num_minibatches:
        # A minibatch replays whole env sequences through the core: a group of envs.
        raise ConfigError(
            f"ppo.num_minibatches={ppo.num_minibatches!r} is not allowed with "
            f"network.recurrent={recurrent}: must divide env.num_envs={env.num_envs} (each "
            "minibatch is a group of whole env sequences)"
        )


def _schema_at(path: str) -> Any:
    node: Any = Config
    for part in filter(None, path.split(".")):
        match = [f for f in fields(node) if f.name == part] if is_dataclass(node) else []
        if not match:
            return None
        node = match[0].default_factory() if callable(match[0].default_factory) else None
    return node


def unknown_key_message(full_key: str) -> str:
    parent, _, name = full_key.rpartition(".")
    schema = _schema_at(parent)
    known = ", ".join(f.name for f in fields(schema)) if is_dataclass(schema) else "none"
    where = f"in {parent}" if parent else "at the top level"
    return f"{full_key} is not a known key; allowed {where}: {known}"


# What a value of each annotated type is, in the words of a key's rule ("must be ...").
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def wrong_type_message(full_key: str, value: Any, owner: Any) -> str | None:
    """``key=value is not allowed: must be ...`` for a value OmegaConf could not convert to
    the key's type (``owner``: the schema dataclass holding it), with the key's own rule; None
    for a key the schema does not annotate with a plain type."""
    name = full_key.rpartition(".")[2]
    match = [f for f in fields(owner) if f.name == name] if is_dataclass(owner) else []
    if not match:
        return None
    annotation = str(match[0].type).replace(" ", "")
    nullable = annotation.endswith("|None")
    kind = _KINDS.get(annotation.removesuffix("|None"))
    if kind is None:
        return None
    check = match[0].metadata.get("check")
    rule = check.allowed.removeprefix("must be ") if check is not None else ""
    rule = rule.removeprefix("null or ")
    if not rule:
        rule = kind
    elif kind not in rule:  # "an integer >= 1" names the kind already
        bound = rule.startswith(("<", ">", "in "))  # "a number > 0"; any other rule kept whole
        rule = f"{kind} {rule}" if bound else f"{kind}; {rule}"
    shown = "null" if value is None else value  # as the user writes it
    return f"{full_key}={shown} is not allowed: must be {'null or ' if nullable else ''}{rule}"


# Roles: the lists that resume, the dashboard, tuned presets and the fused gradient use.


@cache
def roles_of(key: str) -> Role:
    """A dotted key's roles (keys.roles_in): its own, else its nearest group's."""
    return roles_in(Config, key)


def has_role(key: str, role: Role) -> bool:
    return role in roles_of(key)


def keys_with(role: Role) -> tuple[str, ...]:
    """The schema's keys that have ``role``, in schema order."""
    return tuple(k for k in schema_keys(Config) if has_role(k, role))


def fused_allowed() -> dict[str, Fused]:
    """The network keys on the fused gradient's allow-list, each with the values its
    backward handles (ANY: every value); any other key makes it fall back to autograd."""
    return {f.name: f.metadata["fused"] for f in fields(NetworkConfig) if f.metadata.get("fused")}
