"""A bare env.id trains with the general-purpose recipe and budget (conf/env/generic.yaml,
conf/ppo/generic.yaml), and says so; the env options keep their tuned ones."""

from __future__ import annotations

from sharedppo.compose import bare_env_id, compose_checked, recipe_line


def test_a_bare_env_id_gets_the_general_recipe_and_budget():
    overrides = bare_env_id(["env.id=Taxi-v4"])
    assert overrides == ["env.id=Taxi-v4", "env=generic"]
    assert bare_env_id(["-m", "env.id=A-v0,B-v0"]) == ["-m", "env.id=A-v0,B-v0", "env=generic"]
    cfg = compose_checked(overrides)
    assert cfg.env.id == "Taxi-v4" and cfg.total_steps == 500_000
    assert cfg.ppo.ent_coef == 0.01 and cfg.ppo.gamma == 0.98 and cfg.ppo.update_epochs == 10
    assert not cfg.ppo.norm_adv and cfg.ppo.num_steps == 128
    line = recipe_line(overrides, cfg.total_steps)
    assert "ppo=generic" in line and "500,000" in line and "ppo=NAME" in line


def test_named_choices_keep_their_recipes():
    for given in (
        [],
        ["env=acrobot"],
        ["env=cartpole", "env.id=CartPole-v1"],
        ["experiment=breakout", "env.id=ALE/Pong-v5"],
        ["resume=runs/job", "env.id=Taxi-v4"],
    ):
        assert bare_env_id(given) == given
    cfg = compose_checked(bare_env_id([]))  # a bare `sharedppo`: CartPole's tuned recipe
    assert cfg.env.id == "CartPole-v1" and cfg.ppo.gamma == 0.98 and cfg.total_steps == 100_000
    assert "ppo=cartpole" in recipe_line([], cfg.total_steps)
    named = compose_checked(bare_env_id(["env.id=Taxi-v4", "ppo=default", "total_steps=9"]))
    assert named.ppo.gamma == 0.98 and named.total_steps == 9


def test_blackjack_has_its_own_recipe_and_the_bare_id_keeps_the_general_one():
    cfg = compose_checked(bare_env_id(["env=blackjack"]))
    assert cfg.env.id == "Blackjack-v1" and cfg.total_steps == 1_000_000
    assert cfg.ppo.gamma == 1.0 and cfg.ppo.ent_coef == 0.0 and cfg.ppo.num_steps == 512
    assert "ppo=blackjack" in recipe_line(["env=blackjack"], cfg.total_steps)
    bare = compose_checked(bare_env_id(["env.id=Blackjack-v1"]))
    assert bare.ppo.gamma == 0.98 and bare.ppo.ent_coef == 0.01 and bare.total_steps == 500_000
