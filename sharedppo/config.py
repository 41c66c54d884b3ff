"""The config schema: dataclasses registered in Hydra's ConfigStore, plus range checks.

The YAML files under ``conf/`` are merged onto these dataclasses, so a misspelt key or a
string where a number belongs is rejected by OmegaConf before any training starts. Ranges
and choices that a type cannot express are checked by :func:`validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")
NETWORK_TYPES = ("mlp", "nature_cnn")
INITS = ("orthogonal", "xavier", "torch")
DEVICES = ("auto", "cpu", "cuda")
VECTORIZATION_MODES = ("auto", "sync", "async", "vector_entry_point")


@dataclass
class AtariConfig:
    """The standard Atari preprocessing, each step switchable (env=atari turns it on)."""

    enabled: bool = False
    noop_max: int = 30
    frame_skip: int = 4  # repeats with max-pooling of the last two frames
    episodic_life: bool = True  # a lost life ends the learner's episode, not the game
    fire_reset: bool = True
    screen_size: int = 84
    grayscale: bool = True
    clip_reward: bool = True  # sign of the reward for learning; scores are logged unclipped
    frame_stack: int = 4


@dataclass
class EnvConfig:
    id: str = MISSING
    num_envs: int = 8
    # auto: the id's numpy-vectorised implementation when gymnasium has one, else sync.
    vectorization_mode: str = "auto"
    max_episode_steps: int | None = None
    # The original blog's CartPole shaping: reward 1 once an episode reaches this many steps,
    # 0 otherwise. null (the default everywhere but experiment=seed_cartpole) keeps the
    # environment's own reward.
    reach_reward_steps: int | None = None
    # The return that counts as solved (mean of the last 20 episodes); null takes the id's
    # reward_threshold from gymnasium's registry.
    target_return: float | None = None
    # Running-statistics normalisation, kept in checkpoints and frozen at evaluation.
    normalize_obs: bool = False
    obs_clip: float = 10.0
    normalize_reward: bool = False
    reward_clip: float = 10.0
    atari: AtariConfig = field(default_factory=AtariConfig)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class NetworkConfig:
    # mlp: `depth` layers of `width`; nature_cnn: the Nature-DQN convolutional trunk (84x84
    # frame stacks, scaled by 1/255 inside) with one 512-unit layer; width/depth unused.
    type: str = "mlp"
    width: int = 64
    depth: int = 2
    activation: str = "tanh"
    dropout: float = 0.0
    # orthogonal: gain sqrt(2) in the trunk, 0.01 policy head, 1 value head; xavier: uniform;
    # torch: PyTorch's own nn.Linear initialisation.
    init: str = "orthogonal"
    # false: separate policy and value trunks of the same shape, for comparison.
    shared: bool = True
    # Box actions: the Gaussian's starting log-std (0: std 1; rl-zoo3's MuJoCo recipes use -2).
    log_std_init: float = 0.0


@dataclass
class PPOConfig:
    lr: float = 1e-3
    anneal_lr: bool = True
    num_steps: int = 32
    gamma: float = 0.98
    lam: float = 0.8
    update_epochs: int = 20
    num_minibatches: int = 1
    clip_ratio: float = 0.2
    anneal_clip: bool = False
    clip_vloss: bool = False
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    # Early stop of an update's epochs once the k3 estimate of KL(old || new) on a
    # minibatch exceeds 1.5 x target_kl (the factor Spinning Up and SB3 use); null disables.
    target_kl: float | None = None
    adam_eps: float = 1e-5
    # Hand-derived gradients for MLP trunks (tanh/relu) with Discrete or Box heads, checked
    # against autograd in the tests; false, or any other network, uses autograd.
    fused: bool = True


@dataclass
class CheckpointConfig:
    # Write checkpoints/last.pt every this many env steps (and always at the end); null: end only.
    every_steps: int | None = 25_000
    # Periodic snapshots (checkpoints/step_*.pt) kept besides last.pt and best.pt.
    keep: int = 3


@dataclass
class EvalConfig:
    # Evaluate on a separate env instance every this many env steps; null: never during training.
    every_steps: int | None = None
    episodes: int = 10
    # true: argmax action; false: sample from the policy.
    deterministic: bool = True
    # Record evaluation episodes to MP4 in the job folder (needs the `video` extra).
    video: bool = False


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # A job folder to continue: same folder, same curves, total_steps is the job's total.
    resume: str | None = None
    # A search space for sharedppo-tune (conf/hparams_search/); training ignores it.
    hparams_search: Any = None
    seed: int = 0
    total_steps: int = 100_000
    device: str = "auto"
    # Small networks run fastest on one thread; 0 leaves torch's own choice.
    torch_threads: int = 1
    # Stop as soon as the mean return of the last 20 finished episodes reaches
    # env.target_return instead of training for total_steps.
    stop_on_target: bool = False
    log_every_updates: int = 1


class ConfigError(ValueError):
    """A user's config mistake; the message is one line naming the key and what is allowed."""


def register_configs() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, value, "choose one of " + ", ".join(choices))


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


def _check_known_keys(cfg: DictConfig, schema: Any, prefix: str = "") -> None:
    # `+key=value` appends past the schema's struct flag; catch it here.
    names = {f.name: f for f in fields(schema)}
    for key in cfg:
        if key not in names:
            raise ConfigError(unknown_key_message(f"{prefix}{key}"))
        sub = names[key].default_factory
        if callable(sub) and is_dataclass(sub):
            _check_known_keys(cfg[key], sub, f"{prefix}{key}.")


def validate(cfg: Any) -> None:
    """Raise ConfigError on the first unknown key or value out of range."""
    _check_known_keys(cfg, Config)
    env, net, ppo = cfg.env, cfg.network, cfg.ppo
    _check(env.num_envs >= 1, "env.num_envs", env.num_envs, "must be an integer >= 1")
    _choice("env.vectorization_mode", env.vectorization_mode, VECTORIZATION_MODES)
    for key in ("max_episode_steps", "reach_reward_steps"):
        value = getattr(env, key)
        _check(value is None or value >= 1, f"env.{key}", value, "must be null or >= 1")

    for key in ("obs_clip", "reward_clip"):
        _check(getattr(env, key) > 0, f"env.{key}", getattr(env, key), "must be > 0")
    _check(net.width >= 1, "network.width", net.width, "must be an integer >= 1")
    _check(net.depth >= 1, "network.depth", net.depth, "must be an integer >= 1")
    _check(0.0 <= net.dropout < 1.0, "network.dropout", net.dropout, "must be in [0, 1)")
    _choice("network.activation", net.activation, ACTIVATIONS)
    _choice("network.type", net.type, NETWORK_TYPES)
    _choice("network.init", net.init, INITS)

    _check(ppo.lr > 0, "ppo.lr", ppo.lr, "must be > 0")
    _check(0.0 < ppo.clip_ratio < 1.0, "ppo.clip_ratio", ppo.clip_ratio, "must be in (0, 1)")
    _check(0.0 < ppo.gamma <= 1.0, "ppo.gamma", ppo.gamma, "must be in (0, 1]")
    _check(0.0 <= ppo.lam <= 1.0, "ppo.lam", ppo.lam, "must be in [0, 1]")
    _check(ppo.num_steps >= 1, "ppo.num_steps", ppo.num_steps, "must be an integer >= 1")
    _check(ppo.update_epochs >= 1, "ppo.update_epochs", ppo.update_epochs, "must be >= 1")
    _check(ppo.num_minibatches >= 1, "ppo.num_minibatches", ppo.num_minibatches, "must be >= 1")
    batch = ppo.num_steps * env.num_envs
    _check(
        batch % ppo.num_minibatches == 0,
        "ppo.num_minibatches",
        ppo.num_minibatches,
        f"must divide the batch ppo.num_steps x env.num_envs = {ppo.num_steps} x "
        f"{env.num_envs} = {batch}",
    )
    _check(ppo.vf_coef >= 0, "ppo.vf_coef", ppo.vf_coef, "must be >= 0")
    _check(ppo.ent_coef >= 0, "ppo.ent_coef", ppo.ent_coef, "must be >= 0 (it is a bonus)")
    _check(ppo.max_grad_norm > 0, "ppo.max_grad_norm", ppo.max_grad_norm, "must be > 0")
    _check(
        ppo.target_kl is None or ppo.target_kl > 0,
        "ppo.target_kl",
        ppo.target_kl,
        "must be null or > 0",
    )

    ckpt, ev = cfg.checkpoint, cfg.eval
    for key, every in (
        ("checkpoint.every_steps", ckpt.every_steps),
        ("eval.every_steps", ev.every_steps),
    ):
        _check(every is None or every >= 1, key, every, "must be null or >= 1")
    _check(ckpt.keep >= 0, "checkpoint.keep", ckpt.keep, "must be >= 0")
    _check(ev.episodes >= 1, "eval.episodes", ev.episodes, "must be >= 1")
    _check(cfg.total_steps >= 1, "total_steps", cfg.total_steps, "must be an integer >= 1")
    _check(cfg.seed >= 0, "seed", cfg.seed, "must be an integer >= 0")
    _check(cfg.torch_threads >= 0, "torch_threads", cfg.torch_threads, "must be >= 0")
    _check(cfg.log_every_updates >= 1, "log_every_updates", cfg.log_every_updates, "must be >= 1")
    device = str(cfg.device)
    _check(
        device in DEVICES or device.startswith("cuda:"),
        "device",
        device,
        "choose one of auto, cpu, cuda, cuda:N",
    )


def compose_checked(overrides: list[str]) -> DictConfig:
    """Compose and validate the config for these overrides; any mistake is one ConfigError line.

    The CLI calls this before handing over to Hydra, so a user's typo gets one line instead of
    Hydra's multi-line report.
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_module("sharedppo.conf", version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except MissingConfigException as err:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        options = ", ".join(err.options or [])
        raise ConfigError(f"{group}={name} is not allowed: choose one of {options}") from None
    except HydraException as err:
        cause = err.__cause__
        key = getattr(cause, "full_key", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
            raise ConfigError(unknown_key_message(key)) from None
        if isinstance(cause, OmegaConfBaseException) and key:
            detail = str(cause).strip().splitlines()[0]
            raise ConfigError(f"{key} is not allowed: {detail}") from None
        raise ConfigError(str(err).strip().splitlines()[0]) from None
    validate(cfg)
    return cfg
