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

# Imported from here by the rest of sharedppo (ConfigError, the checks, Role).
from .keys import (
    ANY,
    RECORDS,
    RUN_SETTING,
    Check,
    ConfigError,
    Fused,
    Role,
    above,
    at_least,
    group,
    key,
    one_of,
    or_null,
    roles_in,
    schema_keys,
    within,
)

# OmegaConf's MISSING (a value the user must give), spelt out: this module imports no
# third-party package, so nn/ and algo/, which read the schema, do not load omegaconf.
MISSING = "???"


@dataclass
class AtariConfig:
    """The standard Atari preprocessing, each step switchable (env=atari turns it on)."""

    enabled: bool = False
    noop_max: int = key(30, at_least(0))
    frame_skip: int = key(4, at_least(1))  # repeats, max-pooling the last two frames
    episodic_life: bool = True  # a lost life ends the learner's episode, not the game
    fire_reset: bool = True
    screen_size: int = key(84, at_least(8))
    grayscale: bool = True
    clip_reward: bool = True  # sign of the reward for learning; scores are logged unclipped
    frame_stack: int = key(4, at_least(1))


@dataclass
class EnvConfig:
    id: str = key(MISSING, roles=Role.HYPERPARAMETER | Role.STRUCTURAL)
    # gymnasium: gymnasium's vector envs; envpool: EnvPool's C++ vector env (the `envpool`
    # extra) for the ids it provides, its Atari preprocessing set to env.atari's values. How
    # the env runs, but another implementation's numbers may differ: a resume must name it.
    backend: str = key("gymnasium", one_of("gymnasium", "envpool"), roles=Role.EXECUTION)
    # The env's own training budget: total_steps follows it unless given (conf/config.yaml).
    default_steps: int = key(100_000, at_least(1), roles=Role.HYPERPARAMETER | Role.RUN_CONTROL)
    num_envs: int = key(8, at_least(1), roles=Role.HYPERPARAMETER | Role.STRUCTURAL)
    # auto: the id's numpy-vectorised implementation when gymnasium has one, else sync.
    vectorization_mode: str = key(
        "auto", one_of("auto", "sync", "async", "vector_entry_point"), roles=Role.EXECUTION
    )
    max_episode_steps: int | None = key(None, or_null(at_least(1)))  # null: the id's own limit
    # The original blog's CartPole shaping: reward 1 once an episode reaches this many steps,
    # 0 otherwise; null (everywhere but experiment=seed_cartpole) keeps the env's own reward.
    reach_reward_steps: int | None = key(None, or_null(at_least(1)))
    # The return that counts as solved (mean of the last 20 episodes); null takes the id's
    # reward_threshold from gymnasium's registry. It does not change what is learnt, only
    # when stop_on_target stops and the steps-to-target metrics, so a resume may change it.
    target_return: float | None = key(None, roles=Role.HYPERPARAMETER | Role.RUN_CONTROL)
    # Running-statistics normalisation, kept in checkpoints and frozen at evaluation.
    normalize_obs: bool = False
    obs_clip: float = key(10.0, above(0))
    normalize_reward: bool = False
    reward_clip: float = key(10.0, above(0))
    atari: AtariConfig = group(AtariConfig)
    # Handed to the env's constructor (gymnasium.make's keyword arguments).
    kwargs: dict[str, Any] = key({})
    # The user's own wrappers, each {_target_: module.Wrapper, arg: value, ...}, applied in
    # order to every sub-environment (after the Atari preprocessing).
    wrappers: list[Any] = key([])


@dataclass
class NetworkConfig:
    # mlp: `depth` layers of `width`; nature_cnn: the Nature-DQN convolutions (84x84 frame
    # stacks, scaled by 1/255 inside) and one 512-unit ReLU layer: width/depth/activation unused.
    # fused=: what the hand-derived backward handles; ANY for keys that change sizes, masks,
    # starting values or memory layout, not the maths. A key without it: autograd.
    type: str = key("mlp", one_of("mlp", "nature_cnn"), fused=("mlp",))
    width: int = key(64, at_least(1), fused=ANY)
    depth: int = key(2, at_least(1), fused=ANY)
    activation: str = key(
        "tanh", one_of("tanh", "relu", "elu", "gelu", "silu"), fused=("tanh", "relu")
    )
    dropout: float = key(0.0, within(0, 1, high_open=True), fused=ANY)  # masks reused
    # orthogonal: gain sqrt(2) in the trunk, 0.01 policy head, 1 value head; xavier: uniform;
    # torch: PyTorch's own nn.Linear initialisation.
    init: str = key("orthogonal", one_of("orthogonal", "xavier", "torch"), fused=ANY)
    # false: separate policy and value trunks of the same shape, for comparison.
    shared: bool = key(True, fused=ANY)
    # Box actions: the Gaussian's starting log-std (0: std 1; rl-zoo3's MuJoCo recipes use -2).
    log_std_init: float = key(0.0, fused=ANY)
    # A recurrent core between the trunk's layers and both heads (each trunk its own when
    # shared=false); its state is reset at episode starts and carried otherwise. Updates then
    # replay whole env sequences: ppo.num_minibatches must divide env.num_envs.
    recurrent: str | None = key(None, or_null(one_of("lstm", "gru")), fused=(None,))
    recurrent_size: int = key(64, at_least(1), fused=ANY)  # the core's size, read by the heads
    # Conv trunks in channels_last (NHWC) memory, where oneDNN's convolutions are faster;
    # false: the NCHW layout, reproducing earlier results bit for bit (docs/benchmarks.md).
    # Structural too: Adam's moments sit in the parameters' memory order, so a checkpoint
    # written in one layout would continue in the other with its conv moments scrambled.
    channels_last: bool = key(True, roles=Role.EXECUTION | Role.STRUCTURAL, fused=ANY)


@dataclass
class PPOConfig:
    lr: float = key(1e-3, above(0))
    anneal_lr: bool = True
    # Rollout length per env; the memory a checkpoint carries into the next rollout is this long.
    num_steps: int = key(32, at_least(1), roles=Role.HYPERPARAMETER | Role.STRUCTURAL)
    gamma: float = key(0.98, within(0, 1, low_open=True))
    lam: float = key(0.8, within(0, 1))
    update_epochs: int = key(20, at_least(1))
    # Must divide num_steps x env.num_envs (a recurrent network: env.num_envs).
    num_minibatches: int = key(1, at_least(1))
    clip_ratio: float = key(0.2, within(0, 1, low_open=True, high_open=True))
    anneal_clip: bool = False
    # Value-function clipping range around the rollout's values (SB3's clip_range_vf);
    # null: no value clipping. It is in the value's own units, unlike clip_ratio.
    clip_vloss: float | None = key(None, or_null(above(0)))
    vf_coef: float = key(0.5, at_least(0))
    ent_coef: float = key(0.0, Check(lambda v: v >= 0, "must be >= 0 (it is a bonus)"))
    max_grad_norm: float = key(0.5, above(0))
    norm_adv: bool = True
    # Early stop of an update's epochs once the k3 estimate of KL(old || new) on a
    # minibatch exceeds 1.5 x target_kl (the factor Spinning Up and SB3 use); null disables.
    target_kl: float | None = key(None, or_null(above(0)))
    adam_eps: float = key(1e-5, above(0))
    # Hand-derived gradients where the network is on their allow-list (algo/gradient.py);
    # false, or any other network, uses autograd. The same gradient up to rounding.
    fused: bool = key(True, roles=Role.EXECUTION)


@dataclass
class CheckpointConfig:
    # Write checkpoints/last.pt every this many env steps (and always at the end); null: end only.
    every_steps: int | None = key(25_000, or_null(at_least(1)))
    # Periodic snapshots (checkpoints/step_*.pt) kept besides last.pt and best.pt.
    keep: int = key(3, at_least(0))


@dataclass
class EvalConfig:
    # Evaluate on a separate env instance every this many env steps; null: never during training.
    every_steps: int | None = key(None, or_null(at_least(1)))
    episodes: int = key(10, at_least(1))
    deterministic: bool = True  # true: argmax (or mean) action; false: sample from the policy
    video: bool = False  # MP4s of evaluation episodes in the job folder (the `video` extra)


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
    # A job folder to continue: same folder, same curves, total_steps is the job's total.
    resume: str | None = key(None, roles=RECORDS)
    # Hyperparameters a resume may change (e.g. [ppo.lr]); any other change is refused.
    resume_allow: list[str] = key([], roles=RECORDS)
    # A sweep rerun into its own folder (hydra.sweep.dir=...) keeps its completed jobs and
    # resumes its interrupted ones; its failed ones it reruns only when this is true.
    retry_failed: bool = key(False, roles=RECORDS)
    # A search space for sharedppo-tune (conf/hparams_search/); training ignores it.
    hparams_search: Any = key(None, roles=RECORDS)
    # Which replicate of the experiment: listed, but a tuned preset takes no trial's seed.
    seed: int = key(
        0,
        Check(lambda v: v >= 0, "must be an integer >= 0"),
        roles=Role.HYPERPARAMETER | Role.RUN_ONLY,
    )
    # The budget: a resume may extend it; a preset leaves out a trial's short one.
    total_steps: int = key(
        100_000,
        Check(lambda v: v >= 1, "must be an integer >= 1"),
        roles=Role.HYPERPARAMETER | Role.RUN_CONTROL | Role.RUN_ONLY,
    )
    # The machine: a resume may move to another (whose rounding differs), a preset has none.
    device: str = key(
        "auto", Check(_is_device, "choose one of auto, cpu, cuda, cuda:N"), roles=RUN_SETTING
    )
    # The network's forward passes under autocast (bf16: CPUs with bf16 support or CUDA;
    # fp16: CUDA, with loss scaling); parameters, optimizer and loss stay fp32. It changes
    # the numbers, so a resume must name it, and a preset keeps it as part of the recipe.
    precision: str = key("fp32", one_of("fp32", "bf16", "fp16"), roles=Role.EXECUTION)
    # Small networks run fastest on one thread; 0 leaves torch's own choice.
    torch_threads: int = key(1, at_least(0), roles=RUN_SETTING)
    # Stop as soon as the mean return of the last 20 finished episodes reaches
    # env.target_return instead of training for total_steps.
    stop_on_target: bool = key(False, roles=RUN_SETTING)
    log_every_updates: int = key(1, at_least(1), roles=RECORDS)


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
        elif spec.metadata.get("check") is not None:
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
