"""The foreach Adam and gradient clipping agree with torch's own."""

from __future__ import annotations

import torch

from sharedppo.algo.optim import Adam


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in ((5, 3), (3,), (1,))]


def test_adam_matches_torch_adam():
    ours, ref = _params(0), _params(0)
    opt, ref_opt = Adam(ours, lr=3e-3, eps=1e-5), torch.optim.Adam(ref, lr=3e-3, eps=1e-5)
    assert all(p.grad is not None and p.grad.data_ptr() != 0 for p in ours)
    for step in range(25):
        for group, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            loss = sum((p * (step + 1)).sin().sum() + p.square().sum() for p in group)
            loss.backward()
            o.step()
    for a, b in zip(ours, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_adam_state_round_trip():
    params = _params(1)
    opt = Adam(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    opt.step()
    restored = Adam(_params(1), lr=0.5)
    restored.load_state_dict(opt.state_dict())
    assert restored.step_count == 1 and restored.lr == 1e-3
    assert torch.equal(restored.exp_avg, opt.exp_avg)


def test_clip_grad_norm_matches_torch():
    ours, ref = _params(2), _params(2)
    opt = Adam(ours, lr=1e-3)
    for group in (ours, ref):
        sum((p * 10).square().sum() for p in group).backward()
    norm = opt.clip_grad_norm(0.5)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, 0.5)
    assert torch.allclose(norm, ref_norm)
    for a, b in zip(ours, ref, strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)
