"""Data-parallel PPO (run/distributed.py, algo/reduce.py): N ranks are one PPO run.

The spawned tests cost a few seconds each (process start-up and gloo's rendezvous), so they
are few and each checks several things."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.reduce import share_gradient
from sharedppo.config import NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.heads import sample_categorical
from sharedppo.nn.normalize import RunningMeanStd
from sharedppo.nn.precision import Precision
from sharedppo.run.distributed import AllReduce, Ranks, StatsSync

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
    share_gradient(grad, 3, _OtherRank(torch.tensor([5.0]), theirs * 5 / 8))
    assert torch.allclose(grad, (mine * 3 + theirs * 5) / 8)
