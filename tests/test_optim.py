"""The flat Adam (fused, and the six-op fallback) and gradient clipping agree with torch's own."""

from __future__ import annotations

import pytest
import torch

from sharedppo.algo import optim
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


def test_fused_step_rounds_as_the_six_ops_do(monkeypatch):
    """2,000 steps on random gradients from the same start: the fused kernel and the six ops
    differ only by fused multiply-add rounding (bounded here; 1.2e-7 measured)."""
    if optim._FUSED is None:
        pytest.skip("this torch has no fused Adam")
    g = torch.Generator().manual_seed(3)
    start = torch.randn(4610, generator=g)
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    fused, plain = Adam([a], lr=1e-3, eps=1e-5), Adam([b], lr=1e-3, eps=1e-5)
    for _ in range(2000):
        grad = 0.1 * torch.randn(4610, generator=g)
        fused.flat_grad.copy_(grad)
        plain.flat_grad.copy_(grad)
        fused.step()
        with monkeypatch.context() as m:  # as where torch has no fused Adam
            m.setattr(optim, "_FUSED", None)
            plain.step()
    assert fused.step_count == plain.step_count == 2000
    assert (a - b).abs().max() < 1e-6
    assert (a == b).float().mean() > 0.9  # most parameters bit-equal
    assert torch.equal(fused.exp_avg, plain.exp_avg)


def test_six_op_path_matches_torch_adam(monkeypatch):
    monkeypatch.setattr(optim, "_FUSED", None)
    test_adam_matches_torch_adam()


def test_fused_step_continues_from_a_loaded_state():
    """The kernel's step count comes from step_count, so a loaded optimizer's first step is
    bias-corrected as the uninterrupted one's."""
    ours, again = _params(4), _params(4)
    opt = Adam(ours, lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        sum(p.square().sum() for p in ours).backward()
        opt.step()
    resumed = Adam(again, lr=1e-2)
    resumed.load_state_dict(opt.state_dict())
    for p, q in zip(again, ours, strict=True):
        p.data.copy_(q.data)
    for o, group in ((opt, ours), (resumed, again)):
        o.zero_grad()
        sum(p.square().sum() for p in group).backward()
        o.step()
    for p, q in zip(again, ours, strict=True):
        assert torch.equal(p, q)
