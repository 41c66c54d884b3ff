"""Data-parallel PPO (run/distributed.py, algo/reduce.py): N ranks are one PPO run.

The spawned tests cost a few seconds each (process start-up and gloo's rendezvous), so they
are few and each checks several things."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.reduce import share_gradient
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.heads import sample_categorical
from sharedppo.nn.normalize import RunningMeanStd
from sharedppo.nn.precision import Precision
from sharedppo.run.checkpoint import read
from sharedppo.run.distributed import AllReduce, Ranks, StatsSync
from sharedppo.run.session import TrainingError, train
from sharedppo.run.signals import Interrupted, stop_requests

from .conftest import compose_config

STEPS, ENVS, RANKS = 16, 8, 2
# fp32 with each gradient; bf16 with the autograd one (the fused gradient is fp32 maths).
VARIANTS = [("fp32", True), ("fp32", False), ("bf16", False)]


def _net() -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(4, 2, NetworkConfig())


def _rollout() -> Batch:
    """STEPS x ENVS transitions, flattened time-major (row t * ENVS + i) as the memory does."""
    torch.manual_seed(1)
    n = STEPS * ENVS
    obs = torch.randn(n, 4)
    with torch.no_grad():
        logits, values = _net()(obs)
    actions, logprobs = sample_categorical(logits)
    advantages, returns = torch.randn(n), values + torch.randn(n)
    return Batch(obs, actions, logprobs, values, advantages, returns, None)


def _rank_part(batch: Batch, rank: int) -> Batch:
    """The rows of rank ``rank``'s envs (ENVS // RANKS of them), in the same time-major order."""
    per = ENVS // RANKS
    rows = torch.arange(STEPS * ENVS).view(STEPS, ENVS)[:, rank * per : (rank + 1) * per]
    return batch[rows.flatten()]


def _update(batch: Batch, precision: str, fused: bool, reducer=None) -> torch.Tensor:
    """One update from the same weights, without shuffling (so the ranks' minibatches are
    together the one process's), with every global quantity in play."""
    cfg = PPOConfig(num_minibatches=2, update_epochs=2, target_kl=1.0, fused=fused)
    args = (_net(), cfg, Precision(precision, "cpu"))
    agent = PPOAgent(*args) if reducer is None else PPOAgent(*args, reducer=reducer)
    agent.update(batch)
    return agent.optimizer.flat.clone()


def _identity_order(n: int, device=None) -> torch.Tensor:
    return torch.arange(n, device=device)


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=RANKS)
    torch.randperm = _identity_order  # this process only
    reducer = AllReduce(RANKS)
    part = _rank_part(_rollout(), rank)
    result = {v: _update(part, *v, reducer=reducer) for v in VARIANTS}
    # The normalisers' statistics: each rank saw its own data after a common start.
    ranks = Ranks(rank, RANKS, rank, reducer)
    stats = RunningMeanStd((3,))
    stats.update(np.arange(12.0).reshape(4, 3))  # the common start
    sync = StatsSync([stats], ranks)
    sync.begin()
    stats.update(np.random.default_rng(rank).normal(size=(5 + rank, 3)))
    sync.end()
    result["stats"] = (stats.mean, stats.var, stats.count)
    result["agree"] = (ranks.agree(rank == 1), ranks.agree(False))
    torch.save(result, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_are_one_process_with_the_global_batch(tmp_path: Path, monkeypatch):
    mp.spawn(_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=RANKS)
    got = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(RANKS)]
    monkeypatch.setattr(torch, "randperm", _identity_order)
    batch = _rollout()
    for variant in VARIANTS:
        want = _update(batch, *variant)
        assert not torch.equal(want, _net().state_dict()["policy_head.weight"].flatten())
        tol = 1e-5 if variant[0] == "fp32" else 2e-3
        for r in range(RANKS):
            assert torch.allclose(got[r][variant], want, atol=tol), (variant, r)
        assert torch.equal(got[0][variant], got[1][variant])  # identical weights on every rank
    one = RunningMeanStd((3,))
    one.update(np.arange(12.0).reshape(4, 3))
    for r in range(RANKS):
        one.update(np.random.default_rng(r).normal(size=(5 + r, 3)))
    for r in range(RANKS):
        mean, var, count = got[r]["stats"]
        assert np.allclose(mean, one.mean) and np.allclose(var, one.var) and count == one.count
        assert got[r]["agree"] == (True, False)


class _OtherRank:
    """A stand-in reducer of two ranks: the other rank's values, one per call."""

    world_size = 2

    def __init__(self, *values: torch.Tensor) -> None:
        self.values = list(values)

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        return x.add_(self.values.pop(0).to(x.dtype))


def test_ranks_gradients_are_weighted_by_their_rows():
    """Ranks whose minibatches differ in size (reset steps are no rows): the shared gradient
    is the mean over all rows, not the mean of the ranks' means."""
    mine, theirs = torch.tensor([1.0, 2.0]), torch.tensor([5.0, 6.0])
    grad = mine.clone()
    share_gradient(grad, 3, torch.tensor(8.0, dtype=torch.float64), _OtherRank(theirs * 5 / 8))
    assert torch.allclose(grad, (mine * 3 + theirs * 5) / 8)


OVERRIDES = (
    "env=pendulum",  # both normalisers on, a Gaussian head
    "env.num_envs=2",
    "ppo.num_steps=128",
    "ppo.update_epochs=2",
    "total_steps=2048",
    "checkpoint.every_steps=1024",  # every other update: every rank must save at the same one
)


def _train_worker(rank: int, port: int, root: str) -> None:
    """Rank ``rank`` of a 2-rank torchrun-like launch: a full run, a run stopped halfway, its
    resume; and a resume refused for a different world size (faked in the checkpoint)."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(RANKS),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        SHAREDPPO_TIMEOUT_S="60",  # a rank left waiting fails the test, not hangs it
    )
    torch.set_num_threads(1)
    base = Path(root)
    overrides = OVERRIDES
    out = {}
    out["full"] = train(compose_config(*overrides), base / f"full{rank}").agent.optimizer.flat
    job = base / "job"  # one folder: rank 0 writes it; the other ranks must not touch it
    try:
        train(compose_config(*overrides), job, on_update=lambda step, _: step >= 1024)
    except Interrupted:
        out["interrupted"] = True
    resumed = train(compose_config(*overrides, "total_steps=2048", f"resume={job}"), job)
    out["resumed"] = resumed.agent.optimizer.flat
    out["step"] = resumed.global_step
    torch.save(out, base / f"out{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_train_one_job_that_resumes_exactly(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_train_worker, args=(port, str(tmp_path)), nprocs=RANKS)
    got = [torch.load(tmp_path / f"out{r}.pt") for r in range(RANKS)]
    for r in range(RANKS):
        assert got[r]["interrupted"] and got[r]["step"] == 2048  # global steps: 2 ranks x 2 envs
        assert torch.equal(got[r]["full"], got[r]["resumed"])  # the resume is exact
        assert torch.equal(got[r]["full"], got[0]["full"])  # every rank holds the same weights
    assert not (tmp_path / "full1").exists()  # rank 1 wrote no folder
    job = tmp_path / "job"
    state = read(job / "checkpoints" / "last.pt")
    assert state["world_size"] == RANKS and len(state["ranks"]) == RANKS
    assert state["progress"]["global_step"] == 2048
    assert not torch.equal(state["ranks"][0]["env"]["obs"], state["ranks"][1]["env"]["obs"])
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 2048
    # Another number of processes is refused in one line (here: one process).
    with pytest.raises(ConfigError, match="trained by 2 process"):
        train(compose_config(*OVERRIDES, "total_steps=4096", f"resume={job}"), job)


def test_a_signal_echoed_by_the_launcher_is_one_request():
    """Under torchrun, Ctrl-C reaches a rank from the terminal and again from the launcher:
    within ``echo_s`` the second is the same request (a checkpoint, then the stop); without
    it, a second Ctrl-C stops at once."""
    with stop_requests(echo_s=60.0) as requested:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    assert requested == [signal.SIGINT, signal.SIGINT]
    with pytest.raises(KeyboardInterrupt), stop_requests() as requested:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def _dying_worker(rank: int, port: int, root: str) -> None:
    """Rank 1 dies (as a killed process does: no exception, no clean-up) at its 3rd update;
    rank 0 records what it got."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(RANKS),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        SHAREDPPO_TIMEOUT_S="60",
    )
    torch.set_num_threads(1)
    if rank == 1:
        update, calls = PPOAgent.update, []

        def dying(agent, batch):
            calls.append(1)
            if len(calls) == 3:
                os._exit(9)
            return update(agent, batch)

        PPOAgent.update = dying
    try:
        train(compose_config(*OVERRIDES), Path(root) / "job")
    except TrainingError as err:
        (Path(root) / "error.txt").write_text(str(err))


def test_a_rank_that_dies_ends_the_run_on_every_rank(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spawn = mp.get_context("spawn")
    ranks = [spawn.Process(target=_dying_worker, args=(r, port, str(tmp_path))) for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(120)
    assert [p.exitcode for p in ranks] == [0, 9]
    error = (tmp_path / "error.txt").read_text()
    assert error.startswith("another process of this run has stopped") and "\n" not in error
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["status"] == "failed" and "another process" in summary["error"]
    assert summary["updates"] == 2
