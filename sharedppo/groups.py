"""The schema's groups of keys: env (with its Atari preprocessing), network, ppo, checkpoint
and eval. Each key is declared with ``keys.key``: its default, the check its value must pass,
its roles, and its help text (``sharedppo --help`` and docs/configuration.md show it).
``config.Config`` puts them together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .keys import (
    ANY,
    MISSING,
    RECORDS,
    Check,
    Role,
    above,
    at_least,
    group,
    key,
    one_of,
    or_null,
    upto,
    within,
)


@dataclass
class AtariConfig:
    """The standard Atari preprocessing, each step switchable (env=atari turns it on)."""

    enabled: bool = key(False, help="Apply the Atari preprocessing below (env=atari: true).")
    noop_max: int = key(30, upto(0, 100_000), help="Up to this many no-op actions after a reset.")
    frame_skip: int = key(
        4, upto(1, 1000), help="Repeat each action this many times, max-pooling the last 2 frames."
    )
    episodic_life: bool = key(True, help="A lost life ends the learner's episode, not the game's.")
    fire_reset: bool = key(True, help="Press FIRE after a reset in games that need it.")
    screen_size: int = key(84, upto(8, 4096), help="Frames are resized to this many pixels square.")
    grayscale: bool = key(True, help="Grey frames; false keeps colour (gymnasium backend only).")
    clip_reward: bool = key(True, help="Learn from the reward's sign; scores are logged unclipped.")
    frame_stack: int = key(4, upto(1, 1024), help="Stack this many frames as one observation.")


@dataclass
class EnvConfig:
    id: str = key(
        MISSING,
        roles=Role.HYPERPARAMETER | Role.STRUCTURAL,
        help="The gymnasium id (module:EnvId imports module first).",
    )
    # How the env runs, but another implementation's numbers may differ: a resume must name it.
    backend: str = key(
        "gymnasium",
        one_of("gymnasium", "envpool"),
        roles=Role.EXECUTION,
        help="gymnasium's vector envs, or EnvPool's C++ ones for the ids it provides "
        "(the envpool extra; Atari preprocessing set to env.atari's values).",
    )
    # Not a hyperparameter on the dashboard: total_steps, which follows it, is.
    default_steps: int = key(
        100_000,
        at_least(1),
        roles=RECORDS,
        help="The env's own training budget: total_steps follows it unless given.",
    )
    num_envs: int = key(
        8,
        upto(1, 65_536),
        roles=Role.HYPERPARAMETER | Role.STRUCTURAL,
        help="Parallel copies of the env; a rollout is ppo.num_steps of each.",
    )
    vectorization_mode: str = key(
        "auto",
        one_of("auto", "sync", "async", "vector_entry_point"),
        roles=Role.EXECUTION,
        help="auto: the id's numpy-vectorised implementation when gymnasium has one, else sync.",
    )
    max_episode_steps: int | None = key(
        None, or_null(at_least(1)), help="Time limit per episode; null: the id's own."
    )
    reach_reward_steps: int | None = key(
        None,
        or_null(at_least(1)),
        help="The original blog's CartPole shaping: reward 1 once an episode reaches this many "
        "steps, 0 otherwise; null keeps the env's own reward.",
    )
    # It does not change what is learnt, so a resume may change it.
    target_return: float | None = key(
        None,
        roles=Role.HYPERPARAMETER | Role.RUN_CONTROL,
        help="The 20-episode mean return that counts as solved (stop_on_target, steps to "
        "target); null: the id's reward_threshold.",
    )
    normalize_obs: bool = key(
        False, help="Normalise observations by running mean and std (kept in checkpoints)."
    )
    obs_clip: float = key(10.0, above(0), help="Clip normalised observations to +-this.")
    normalize_reward: bool = key(
        False, help="Divide rewards by the running std of the discounted return."
    )
    reward_clip: float = key(10.0, above(0), help="Clip normalised rewards to +-this.")
    atari: AtariConfig = group(AtariConfig)
    kwargs: dict[str, Any] = key(
        {}, help="Keyword arguments for the env's constructor: env.kwargs.NAME=VALUE."
    )
    wrappers: list[Any] = key(
        [],
        help="Your gymnasium wrappers, each {_target_: module.Wrapper, arg: value}, applied "
        "in order to every sub-environment (after the Atari preprocessing).",
    )


@dataclass
class NetworkConfig:
    # fused=: what the hand-derived backward handles; ANY for keys that change sizes, masks,
    # starting values or memory layout, not the maths. A key without it: autograd.
    type: str = key(
        "mlp",
        one_of("mlp", "nature_cnn"),
        fused=("mlp",),
        help="mlp: depth layers of width; nature_cnn: the Nature-DQN convolutions (84x84 "
        "frame stacks) and a 512-unit layer, width/depth/activation unused.",
    )
    width: int = key(64, upto(1, 1_000_000), fused=ANY, help="Units per MLP layer.")
    depth: int = key(2, upto(1, 1000), fused=ANY, help="MLP layers in the trunk.")
    activation: str = key(
        "tanh",
        one_of("tanh", "relu", "elu", "gelu", "silu"),
        fused=("tanh", "relu"),
        help="The trunk's activation.",
    )
    dropout: float = key(
        0.0,
        within(0, 1, high_open=True),
        fused=ANY,
        help="Dropout in the trunk; masks drawn when acting are reused when learning.",
    )
    init: str = key(
        "orthogonal",
        one_of("orthogonal", "xavier", "torch"),
        fused=ANY,
        help="orthogonal: gain sqrt(2) in the trunk, 0.01 policy head, 1 value head; xavier: "
        "uniform; torch: PyTorch's own nn.Linear initialisation.",
    )
    shared: bool = key(
        True,
        fused=ANY,
        help="One trunk for both heads; false: separate policy and value trunks.",
    )
    log_std_init: float = key(
        0.0,
        within(-20, 20),
        fused=ANY,
        help="Box actions: the Gaussian's starting log-std (0: std 1).",
    )
    recurrent: str | None = key(
        None,
        or_null(one_of("lstm", "gru")),
        fused=(None,),
        help="A recurrent core between the trunk and both heads, reset at episode starts; "
        "ppo.num_minibatches must then divide env.num_envs.",
    )
    recurrent_size: int = key(
        64, upto(1, 1_000_000), fused=ANY, help="The recurrent core's size, read by the heads."
    )
    # Structural too: Adam's moments sit in the parameters' memory order, so a checkpoint
    # written in one layout would continue in the other with its conv moments scrambled.
    channels_last: bool = key(
        True,
        roles=Role.EXECUTION | Role.STRUCTURAL,
        fused=ANY,
        help="Conv trunks in channels_last (NHWC) memory, faster on oneDNN; false: NCHW, "
        "reproducing earlier results bit for bit.",
    )


@dataclass
class PPOConfig:
    lr: float = key(1e-3, above(0), help="Adam's learning rate.")
    anneal_lr: bool = key(True, help="Anneal the learning rate linearly to 0 over total_steps.")
    num_steps: int = key(
        32,
        at_least(1),
        roles=Role.HYPERPARAMETER | Role.STRUCTURAL,
        help="Rollout length per env: a batch is num_steps x env.num_envs.",
    )
    gamma: float = key(0.98, within(0, 1, low_open=True), help="Discount factor.")
    lam: float = key(0.8, within(0, 1), help="GAE's lambda.")
    update_epochs: int = key(20, upto(1, 10_000), help="Passes over each batch.")
    num_minibatches: int = key(
        1,
        at_least(1),
        help="Minibatches per epoch; must divide num_steps x env.num_envs (recurrent: "
        "env.num_envs).",
    )
    clip_ratio: float = key(
        0.2,
        within(0, 1, low_open=True, high_open=True),
        help="The surrogate's clip range on the probability ratio.",
    )
    anneal_clip: bool = key(False, help="Anneal clip_ratio linearly to 0 over total_steps.")
    clip_vloss: float | None = key(
        None,
        or_null(above(0)),
        help="How far the value may move from the rollout's (SB3's clip_range_vf, in the "
        "value's units); null: no value clipping.",
    )
    vf_coef: float = key(0.5, at_least(0), help="Weight of the value loss.")
    ent_coef: float = key(
        0.0,
        Check(lambda v: v >= 0, "must be >= 0 (it is a bonus)"),
        help="Weight of the entropy bonus.",
    )
    max_grad_norm: float = key(0.5, above(0), help="Clip the global gradient norm to this.")
    norm_adv: bool = key(True, help="Standardise advantages per minibatch.")
    target_kl: float | None = key(
        None,
        or_null(above(0)),
        help="Stop an update's epochs once the k3 KL estimate exceeds 1.5 x this; null: never.",
    )
    adam_eps: float = key(1e-5, above(0), help="Adam's epsilon.")
    fused: bool = key(
        True,
        roles=Role.EXECUTION,
        help="Hand-derived gradients for networks on their allow-list (the same gradient up to "
        "rounding, faster); false, or any other network: autograd.",
    )


@dataclass
class CheckpointConfig:
    every_steps: int | None = key(
        25_000,
        or_null(at_least(1)),
        help="Write the resumable checkpoint this often in env steps (and at the end); null: "
        "at the end only.",
    )
    keep: int = key(
        3, at_least(0), help="Periodic snapshots kept besides the last and the best checkpoint."
    )


@dataclass
class EvalConfig:
    every_steps: int | None = key(
        None,
        or_null(at_least(1)),
        help="Evaluate on a separate env this often in env steps (in TensorBoard, the job's "
        "summary, the closing line, the report); null: never during training.",
    )
    episodes: int = key(10, upto(1, 1_000_000), help="Episodes per evaluation.")
    deterministic: bool = key(
        True, help="Evaluate with the argmax (or mean) action; false samples."
    )
    video: bool = key(
        False, help="Record an evaluation episode at the end (MP4s in videos/; the video extra)."
    )
