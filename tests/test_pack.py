"""Packed runs: each run of a population acts and learns as its unpacked twin, and stays a job
of its own (records, failures, stops, resume)."""

from __future__ import annotations

import json
import logging
import signal

import pytest
import torch

from sharedppo.algo.gae import compute_gae
from sharedppo.jobdir import JobDir
from sharedppo.pack import population as pop_module
from sharedppo.pack.collect import collect
from sharedppo.pack.group import differing, pack_key, unpackable
from sharedppo.pack.population import Population, own_generator
from sharedppo.pack.train import Member, train_pack
from sharedppo.pack.whole import WholeSteps
from sharedppo.run.checkpoint import read
from sharedppo.run.session import open_trainer, train

from .conftest import compose_config

CARTPOLE = [[f"seed={s}", f"ppo.lr={1e-3 if s % 2 else 3e-4}"] for s in range(8)]


def _population(tmp_path, runs, *extra):
    trainers, generators = [], []
    for i, overrides in enumerate(runs):
        trainer = open_trainer(compose_config(*overrides, *extra), tmp_path / f"packed{i}")
        generators.append(own_generator(trainer.device))
        trainers.append(trainer)
    return Population(trainers, [f"job {i}" for i in range(len(runs))], generators)


def _rollout(pop: Population) -> None:
    for t in pop.trainers:
        t.agent.set_progress(1.0)
    steps = collect(pop.shape, pop.stacked, pop.lanes, pop.shared, [0] * 8, [None] * 8, pop.merged)
    for t, step in zip(pop.trainers, steps, strict=True):
        t.progress.global_step = step
        _gae(t)


def _gae(t) -> None:
    ppo = t.cfg.ppo
    t.memory.set_advantages(*compute_gae(**t.memory.gae_inputs(), gamma=ppo.gamma, lam=ppo.lam))


@pytest.mark.parametrize(
    "extra",
    [
        ("total_steps=512",),
        ("total_steps=512", "ppo.fused=false", "network.dropout=0.1", "ppo.ent_coef=0.01"),
        ("total_steps=512", "ppo.num_minibatches=4", "ppo.clip_vloss=0.2"),
        ("total_steps=512", "ppo.ent_coef=0.01"),
        ("env=pendulum", "total_steps=2048"),
        ("total_steps=512", "network.shared=false"),
    ],
    ids=["cartpole", "autograd-dropout", "minibatches", "fused-entropy", "pendulum", "separate"],
)
def test_each_run_of_a_pack_of_8_acts_and_learns_as_its_unpacked_twin(tmp_path, extra):
    pop = _population(tmp_path, CARTPOLE, *extra)
    _rollout(pop)
    pop.update.run([t.memory.batch() for t in pop.trainers], [True] * 8)
    for i, (overrides, packed) in enumerate(zip(CARTPOLE, pop.trainers, strict=True)):
        twin = open_trainer(compose_config(*overrides, *extra), tmp_path / f"alone{i}")
        twin.agent.set_progress(1.0)
        twin.collector.collect(twin.agent, twin.memory, twin.tracker, 0, None)
        _gae(twin)
        if packed.memory.actions.dtype == torch.long:  # the same choices
            assert torch.equal(packed.memory.actions, twin.memory.actions), f"run {i}"
        else:  # mean + std x the same noise: equal up to the mean's rounding
            torch.testing.assert_close(packed.memory.actions, twin.memory.actions)
        torch.testing.assert_close(packed.memory.logprobs, twin.memory.logprobs)
        torch.testing.assert_close(packed.memory.values, twin.memory.values)
        twin.agent.update(twin.memory.batch())
        torch.testing.assert_close(
            packed.agent.optimizer.flat, twin.agent.optimizer.flat, atol=2e-6, rtol=1e-5
        )
        assert packed.agent.optimizer.step_count == twin.agent.optimizer.step_count
        twin.close()
    for t in pop.trainers:
        t.close()


def test_fused_and_autograd_give_a_pack_the_same_update(tmp_path):
    flats = []
    for fused in ("true", "false"):
        pop = _population(tmp_path / fused, CARTPOLE, "total_steps=512", f"ppo.fused={fused}")
        _rollout(pop)
        pop.update.run([t.memory.batch() for t in pop.trainers], [True] * 8)
        flats.append(pop.stacked.flat.clone())
        for t in pop.trainers:
            t.close()
    torch.testing.assert_close(flats[0], flats[1], atol=1e-5, rtol=1e-5)


def test_the_kl_stop_is_each_runs_own(tmp_path):
    runs = [["seed=0", "ppo.target_kl=1e-6"], ["seed=1"], ["seed=2", "ppo.target_kl=1e-6"]]
    runs += [[f"seed={s}"] for s in range(3, 8)]
    pop = _population(tmp_path, runs, "total_steps=512", "ppo.lr=0.01")
    _rollout(pop)
    stats = pop.update.run([t.memory.batch() for t in pop.trainers], [True] * 8)
    steps = [s["update_steps"] for s in stats]
    assert steps[0] < 20 and steps[2] < 20, steps
    assert all(n == 20 for i, n in enumerate(steps) if i not in (0, 2)), steps
    for t in pop.trainers:
        t.close()


def _members(tmp_path, runs, *extra):
    return [
        Member(compose_config(*r, *extra), tmp_path / f"job{i}", f"job {i}")
        for i, r in enumerate(runs)
    ]


def _summary(path):
    return json.loads(JobDir(path).summary_file.read_text())


def test_a_packed_job_is_a_job_with_its_own_records_and_resumes_alone(tmp_path):
    members = _members(tmp_path, CARTPOLE[:3], "total_steps=1024")
    assert train_pack(members) == [0, 0, 0]
    for m in members:
        job = JobDir(m.out_dir)
        summary = _summary(m.out_dir)
        assert summary["status"] == "completed" and summary["global_step"] == 1024
        assert job.last.is_file() and list(job.events())
    # A packed job's checkpoint is a job's: sharedppo resume= continues it on its own.
    resumed = compose_config(*CARTPOLE[1], "total_steps=2048", f"resume={members[1].out_dir}")
    result = train(resumed, tmp_path / "resumed")
    assert result.status == "completed" and result.global_step == 2048


def test_a_run_that_goes_nan_fails_alone_and_its_pack_goes_on(tmp_path, monkeypatch):
    original = pop_module.PackUpdate.run
    calls = []

    def poisoned(self, batches, active):
        calls.append(1)
        if len(calls) == 2:
            self.stacked.flat[1].fill_(float("nan"))
        return original(self, batches, active)

    monkeypatch.setattr(pop_module.PackUpdate, "run", poisoned)
    members = _members(tmp_path, CARTPOLE[:3], "total_steps=1536")
    assert train_pack(members) == [0, 1, 0]
    failed = _summary(members[1].out_dir)
    assert failed["status"] == "failed" and "not finite" in failed["error"]
    assert JobDir(members[1].out_dir).last_good.is_file()
    assert [_summary(m.out_dir)["global_step"] for m in (members[0], members[2])] == [1536] * 2


def test_a_stop_request_checkpoints_every_job_and_the_pack_continues(tmp_path, monkeypatch, caplog):
    original = pop_module.Population.fit

    def stop_soon(self, requested):
        def stop_after_two(step, returns, lengths):  # noqa: ARG001
            if self.trainers[0].progress.updates >= 2 and not requested:
                requested.append(signal.SIGTERM)

        self.trainers[0]._on_episodes = stop_after_two
        return original(self, requested)

    monkeypatch.setattr(pop_module.Population, "fit", stop_soon)
    members = _members(tmp_path, CARTPOLE[:2], "total_steps=2048")
    with caplog.at_level(logging.WARNING, logger="sharedppo"):
        assert train_pack(members) == [128 + signal.SIGTERM] * 2
    for m in members:
        summary = _summary(m.out_dir)
        assert summary["status"] == "interrupted" and summary["resume"]
        assert summary["global_step"] < 2048
        said = f"{m.label} stopped by SIGTERM at update {summary['updates']}; checkpoint saved"
        assert said in caplog.text, caplog.text
    monkeypatch.setattr(pop_module.Population, "fit", original)
    again = [
        Member(compose_config(*r, "total_steps=2048", f"resume={m.out_dir}"), m.out_dir, m.label)
        for r, m in zip(CARTPOLE[:2], members, strict=True)
    ]
    assert train_pack(again) == [0, 0]
    for m in members:
        assert _summary(m.out_dir)["status"] == "completed"
        assert read(JobDir(m.out_dir).last)["progress"]["global_step"] == 2048


def test_jobs_a_population_cannot_hold_train_one_after_another(tmp_path, caplog):
    members = _members(
        tmp_path, CARTPOLE[:2], "total_steps=256", "network.recurrent=gru", "ppo.num_steps=16"
    )
    assert train_pack(members) == [0, 0]
    assert "one after another" in caplog.text


def test_grouping_keys():
    def config(*overrides):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(compose_config(*overrides), resolve=True)

    a, b = config("seed=1", "ppo.lr=0.01"), config("seed=2", "network.dropout=0.1")
    assert pack_key(a) == pack_key(b)
    assert differing([a, b]) == ["network.dropout", "ppo.lr", "seed"]
    assert pack_key(a) != pack_key(config("env.num_envs=4"))
    assert pack_key(a) != pack_key(config("network.width=32"))
    assert unpackable(config("network.recurrent=lstm")) is not None
    assert unpackable(a) is None


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "six-ops"])
def test_stacked_adam_steps_each_row_as_its_own_adam(monkeypatch, fused):
    """Rows with their own lr, eps and step counts (one left out of two steps, as a KL stop or
    a finished run leaves it) end as each run's own Adam ends."""
    from sharedppo.algo import optim
    from sharedppo.algo.optim import Adam
    from sharedppo.pack.stacked import Stacked

    if not fused:
        monkeypatch.setattr(optim, "_FUSED", None)
    cfgs = [(1e-3, 1e-5), (3e-4, 1e-8), (1e-3, 1e-5)]

    def build():
        torch.manual_seed(0)
        nets, opts = [], []
        for lr, eps in cfgs:
            net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
            nets.append(net)
            opts.append(Adam(net.parameters(), lr=lr, eps=eps))
        return nets, opts

    alone_nets, alone = build()
    nets, opts = build()
    stacked = Stacked.__new__(Stacked)  # Stacked's Adam alone: no ActorCritic needed
    monkeypatch.setattr(Stacked, "_bind", lambda self, r, net, opt: None)
    Stacked.__init__(stacked, nets, opts)
    g = torch.Generator().manual_seed(1)
    for stepping in ([True, True, True], [True, False, True], [True, True, True]):
        grads = torch.randn(stacked.grad.shape, generator=g)
        stacked.grad.copy_(grads)
        stacked.step(stepping)
        # The gathered copies follow every step (one buffer, refilled per call).
        sliced = stacked.weights(stacked.flat.clone())
        for name, w in stacked.weights().items():
            assert torch.equal(w, sliced[name])
        for r, opt in enumerate(alone):
            if stepping[r]:
                opt.flat_grad.copy_(grads[r])
                opt.step()
    for r, opt in enumerate(alone):
        torch.testing.assert_close(stacked.flat[r], opt.flat, atol=1e-7, rtol=0)
        torch.testing.assert_close(stacked.exp_avg_sq[r], opt.exp_avg_sq, atol=1e-9, rtol=0)
        assert opts[r].step_count == opt.step_count
    assert stacked.steps.tolist() == [3.0, 2.0, 3.0]


@pytest.mark.parametrize("failing", [None, 1], ids=["all-record", "a-hook-fails"])
def test_merged_runs_record_their_steps_as_each_would_alone(tmp_path, failing):
    """Three rollouts of 3 merged CartPole runs (no update between): each run's rewards,
    dones, episodes, hook calls, running counts, env state and steps equal its twin's; a run
    whose episode hook raises ends alone, the others go on."""
    runs = CARTPOLE[:3]
    pop = _population(tmp_path, runs, "total_steps=100000")
    assert WholeSteps.usable(pop.lanes, pop.merged)
    calls: list[list] = [[] for _ in runs]

    def hook(r):
        def on_episodes(step, returns, lengths):
            if r == failing:
                raise RuntimeError("hook")
            calls[r].append((step, returns.tolist(), lengths.tolist()))

        return on_episodes

    steps = [0] * 3
    for _ in range(3):
        steps = collect(pop.shape, pop.stacked, pop.lanes, pop.shared, steps,
                        [hook(r) for r in range(3)], pop.merged)  # fmt: skip
    for r, (overrides, packed) in enumerate(zip(runs, pop.trainers, strict=True)):
        if r == failing:
            assert pop.lanes[r].error is not None and not pop.lanes[r].active
            continue
        twin = open_trainer(compose_config(*overrides, "total_steps=100000"), tmp_path / f"t{r}")
        twin_calls: list = []

        def record(step, returns, lengths, into=twin_calls):
            into.append((step, returns.tolist(), lengths.tolist()))

        step = 0
        for _ in range(3):
            step = twin.collector.collect(twin.agent, twin.memory, twin.tracker, step, record)
        assert steps[r] == step and calls[r] == twin_calls and twin_calls
        for name in ("rewards", "terminated", "dones", "actions", "obs"):
            assert torch.equal(getattr(packed.memory, name), getattr(twin.memory, name)), name
        for name in ("returns", "lengths"):
            assert (getattr(packed.tracker, name) == getattr(twin.tracker, name)).all()
        assert list(packed.tracker.recent) == list(twin.tracker.recent)
        assert (packed.collector.obs == twin.collector.obs).all()
        assert (packed.collector.envs.state == twin.collector.envs.state).all()
        twin.close()
    for t in pop.trainers:
        t.close()
