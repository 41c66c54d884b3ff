"""Every config group option composes; the schema rejects mistakes before training."""

from __future__ import annotations

from importlib.resources import files

import pytest

from sharedppo.compose import compose_checked
from sharedppo.config import ConfigError, validate

GROUPS = ("env", "network", "ppo", "experiment")


def options(group: str) -> list[str]:
    folder = files("sharedppo.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in GROUPS for o in options(g)], ids=lambda s: s
)
def test_every_group_option_composes(cfg_factory, override):
    cfg = cfg_factory(override)
    validate(cfg)
    assert cfg.env.id and cfg.network.width >= 1 and cfg.ppo.clip_ratio > 0


def test_groups_have_the_promised_options():
    assert {"cartpole", "acrobot", "mountaincar"} <= set(options("env"))
    assert "mlp" in options("network")
    assert {"default", "seed", "mujoco"} <= set(options("ppo"))
    assert set(options("env")) <= set(options("ppo"))  # every env has its own PPO recipe
    assert "seed_cartpole" in options("experiment")


@pytest.mark.parametrize("env", options("env"))
def test_every_env_brings_its_own_ppo_settings_and_budget(cfg_factory, env):
    cfg = cfg_factory(f"env={env}")
    validate(cfg)
    assert cfg.ppo == cfg_factory(f"ppo={env}").ppo
    assert cfg.total_steps == cfg.env.default_steps
    # What the user names still wins: a value, another recipe, another budget.
    assert cfg_factory(f"env={env}", "ppo.lr=0.5").ppo.lr == 0.5
    assert cfg_factory(f"env={env}", "ppo=seed").ppo == cfg_factory("ppo=seed").ppo
    assert cfg_factory(f"env={env}", "total_steps=1234").total_steps == 1234


def test_envs_differ_where_their_recipes_do(cfg_factory):
    cartpole, acrobot = cfg_factory(), cfg_factory("env=acrobot")
    assert (cartpole.ppo.num_steps, cartpole.ppo.lam, cartpole.total_steps) == (32, 0.8, 100_000)
    assert (acrobot.ppo.num_steps, acrobot.ppo.lam) == (256, 0.94)
    assert acrobot.env.normalize_obs and acrobot.total_steps > cartpole.total_steps
    assert cfg_factory("env=lunarlander").total_steps == 1_000_000
    assert cfg_factory("env=lunarlander_continuous").ppo.ent_coef == 0.0
    assert cfg_factory("env=hopper").ppo == cfg_factory("ppo=mujoco").ppo
    # ppo=default stays the CartPole recipe users know, on any env.
    assert cfg_factory("env=acrobot", "ppo=default").ppo == cartpole.ppo


def test_atari_brings_its_network_unless_the_user_names_one(cfg_factory):
    assert cfg_factory("env=atari").network.type == "nature_cnn"
    assert cfg_factory("env=atari", "network=mlp").network.type == "mlp"
    assert cfg_factory("env=acrobot").network.type == "mlp"


@pytest.mark.parametrize(
    "name", ["pendulum", "mountaincar_continuous", "lunarlander", "lunarlander_continuous"]
)
def test_env_presets_are_their_env(cfg_factory, name):
    assert cfg_factory(f"experiment={name}") == cfg_factory(f"env={name}")


def test_defaults(cfg_factory):
    cfg = cfg_factory()
    assert cfg.env.id == "CartPole-v1"
    assert cfg.network.shared is True and cfg.network.init == "orthogonal"
    assert cfg.env.reach_reward_steps is None


def test_seed_experiment_keeps_the_blog_settings(cfg_factory):
    cfg = cfg_factory("experiment=seed_cartpole")
    assert cfg.env.reach_reward_steps == 195
    assert cfg.network.dropout > 0 and cfg.network.width == 64
    assert cfg.ppo.target_kl == 0.01 and cfg.ppo.gamma == 0.99 and cfg.ppo.lam == 0.97


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("ppo.clip_ratio=-0.1", "ppo.clip_ratio"),
        ("ppo.clip_ratio=1.0", "ppo.clip_ratio"),
        ("network.dropout=1.0", "network.dropout"),
        ("network.dropout=-0.5", "network.dropout"),
        ("network.width=0", "network.width"),
        ("network.activation=swish", "network.activation"),
        ("ppo.num_minibatches=3", "ppo.num_minibatches"),
        ("ppo.gamma=0", "ppo.gamma"),
        ("ppo.gamma=1.5", "ppo.gamma"),
        ("env=nosuch", "env"),
        ("experiment=nosuch", "experiment"),
        ("hparams_search=nosuch", "hparams_search"),
        ("foo=1", "foo"),
        ("+foo=1", "foo"),
        ("ppo.lr=fast", "ppo.lr"),
        ("network.width=wide", "network.width"),
    ],
)
def test_mistakes_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        compose_checked([override])
    message = str(err.value)
    assert key in message and "\n" not in message
