"""A sweep's jobs checked on the first job's composition give what composing each gives."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sharedppo.cli import precheck
from sharedppo.cli.precheck import check_command, expand_sweep
from sharedppo.cli.swept import SweptValues
from sharedppo.compose import compose_checked, hydra_context
from sharedppo.config import ConfigError

SWEEPS = [  # (sweep, how many jobs take the first's composition)
    (["seed=0,1,2", "ppo.lr=0.001,0.01"], 5),
    (["ppo.target_kl=null,0.02", "env.num_envs=4,8", "total_steps=512"], 3),
    (["ppo.lr=1e-3,${ppo.clip_ratio}", "network.activation=tanh,relu"], 3),
    (["env=cartpole,pendulum", "seed=0,1"], 1),  # a swept group: the other env composed in full
    (["env.kwargs.max_episode_steps=100,200"], 0),  # an open mapping (++): composed in full
]


@pytest.mark.parametrize(("sweep", "expected"), SWEEPS, ids=lambda s: str(s).split("=")[0])
def test_each_jobs_config_is_its_own_composition(sweep, expected):
    jobs, _ = expand_sweep(sweep)
    swept, from_base = SweptValues(), 0
    for job in jobs:
        cfg = swept.config(job)
        from_base += cfg is not None
        full = compose_checked(job)
        swept.remember(full, job)
        if cfg is not None:
            assert OmegaConf.to_container(cfg, resolve=True) == OmegaConf.to_container(
                full, resolve=True
            ), job
    assert from_base == expected


BAD = [
    ["seed=0,1", "ppo.lr=0.001,-1"],  # out of range: the schema's check
    ["seed=0,abc"],  # not an int: Hydra's typing, from the full composition
    ["ppo.lr=0.001,0.01", "ppo.no_such_key=1"],  # unknown key: the first job says it
]


@pytest.mark.parametrize("sweep", BAD, ids=["range", "type", "unknown"])
def test_a_bad_job_is_refused_in_the_same_line(sweep, monkeypatch):
    with pytest.raises(ConfigError) as fast:
        check_command(["-m", *sweep])
    monkeypatch.setattr(precheck.SweptValues, "config", lambda self, job: None)
    with pytest.raises(ConfigError) as full:
        check_command(["-m", *sweep])
    assert str(fast.value) == str(full.value)


def test_the_packed_launchers_job_configs_are_hydras_own():
    """Each job's whole config (Hydra's node, its recorded overrides and folder name too) as
    Hydra's ``load_sweep_config`` composes it, the jobs after the first from its copy."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from sharedppo.cli.swept import remembered
    from sharedppo.overrides import register_resolvers

    register_resolvers()
    sweep = ["seed=0,1", "ppo.lr=0.001,${ppo.clip_ratio}", "env.num_envs=4,8"]
    jobs, _ = expand_sweep(sweep)
    with hydra_context():
        loader = GlobalHydra.instance().config_loader()
        hydra_overrides = ["hydra/launcher=packed", "hydra.sweep.dir=/tmp/swept"]
        master = loader.load_configuration("config", hydra_overrides + sweep, RunMode.MULTIRUN)
        calls = []

        def load(master_config, overrides):
            calls.append(overrides)
            return loader.load_sweep_config(master_config, overrides)

        fast = remembered(load)
        for job in jobs:
            want = loader.load_sweep_config(master, job)
            for _ in range(2):  # composed once, handed out as copies
                got = fast(master, job)
                assert OmegaConf.to_container(got) == OmegaConf.to_container(want), job
                assert got.hydra.job.override_dirname == want.hydra.job.override_dirname
        assert calls == [jobs[0]]
