"""GAE and returns against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from sharedppo.algo.gae import compute_gae
from sharedppo.run.memory import RolloutMemory


def col(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32).unsqueeze(1)


def test_gae_truncated_and_terminated_in_one_rollout():
    # Step 1 is cut by a time limit (bootstraps from V(final obs) = 2.0), step 3 terminates.
    rewards = col(1, 1, 1, 1)
    values = col(0.5, 0.6, 0.7, 0.8)
    next_values = col(0.6, 2.0, 0.8, 0.9)
    terminated = col(0, 0, 0, 1)
    dones = col(0, 1, 0, 1)
    adv, ret = compute_gae(rewards, values, next_values, terminated, dones, gamma=0.9, lam=0.8)
    # deltas: 1+.9*.6-.5=1.04, 1+.9*2-.6=2.2, 1+.9*.8-.7=1.02, 1-.8=0.2
    # A3=.2, A2=1.02+.72*.2=1.164, A1=2.2 (episode boundary), A0=1.04+.72*2.2=2.624
    assert adv.squeeze(1).tolist() == pytest.approx([2.624, 2.2, 1.164, 0.2], abs=1e-5)
    assert ret.squeeze(1).tolist() == pytest.approx([3.124, 2.8, 1.864, 1.0], abs=1e-5)


def test_gae_lambda_one_is_discounted_return_minus_value():
    rewards = col(1, 2, 3)
    values = col(0.0, 0.0, 0.0)
    next_values = col(0.0, 0.0, 10.0)
    zeros = col(0, 0, 0)
    adv, ret = compute_gae(rewards, values, next_values, zeros, zeros, gamma=0.5, lam=1.0)
    # G2 = 3 + .5*10 = 8, G1 = 2 + .5*8 = 6, G0 = 1 + .5*6 = 4
    assert ret.squeeze(1).tolist() == pytest.approx([4.0, 6.0, 8.0])
    assert torch.equal(adv, ret)


def test_gae_columns_are_independent_envs():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 5.0]])
    values = torch.zeros(2, 2)
    next_values = torch.zeros(2, 2)
    terminated = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    adv, _ = compute_gae(rewards, values, next_values, terminated, terminated, 1.0, 1.0)
    assert adv[:, 0].tolist() == [2.0, 1.0]
    assert adv[:, 1].tolist() == [0.0, 5.0]


def test_memory_bootstraps_from_next_row_and_drops_reset_steps():
    mem = RolloutMemory(num_steps=3, num_envs=1, obs_shape=(1,), device=torch.device("cpu"))
    mem.values[:, 0] = torch.tensor([1.0, 3.0, 0.5])
    mem.rewards[:, 0] = torch.tensor([1.0, 0.0, 1.0])
    # Step 0 is truncated; step 1 is gymnasium's reset step, whose value is V(final obs).
    mem.dones[:, 0] = torch.tensor([1.0, 0.0, 0.0])
    mem.close(torch.tensor([2.0]))
    mem.set_advantages(*compute_gae(**mem.gae_inputs(), gamma=0.5, lam=1.0))
    assert mem.valid[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert mem.returns[0, 0].item() == pytest.approx(1 + 0.5 * 3.0)
    assert mem.returns[2, 0].item() == pytest.approx(1 + 0.5 * 2.0)
    batch = mem.batch()
    assert len(batch) == 2
    assert batch.returns.tolist() == pytest.approx([2.5, 2.0])


def test_chunks_of_the_shuffled_batch_are_the_indexed_minibatches():
    from sharedppo.algo.batch import Batch

    torch.manual_seed(0)
    n = 11  # not a multiple of the minibatch count: tensor_split's uneven sizes
    batch = Batch(
        torch.randn(n, 3), torch.randn(n, 2), *(torch.randn(n) for _ in range(4)), None, None
    )
    order = torch.randperm(n)
    want = [batch[i] for i in order.tensor_split(4)]
    got = batch[order].chunks(4)
    assert [len(mb) for mb in got] == [3, 3, 3, 2]
    for a, b in zip(want, got, strict=True):
        for field in ("obs", "actions", "logprobs", "values", "advantages", "returns"):
            assert torch.equal(getattr(a, field), getattr(b, field))
        assert b.masks is None and b.action_mask is None
