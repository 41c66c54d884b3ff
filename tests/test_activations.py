"""The trunk's tanh (numpy's on CPU tensors, nn/activations.py) against torch.tanh."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.config import NetworkConfig, PPOConfig
from sharedppo.nn import activations
from sharedppo.nn.activations import HostTanh, tanh
from sharedppo.nn.actor_critic import ActorCritic

# numpy's float32 tanh is within 1.4 ulp of the exact value over the whole range (torch's 0.5),
# so the two agree to 2 ulp of the result: 1.2e-7 absolute where |tanh| approaches 1.
ULP_BOUND = 2.0
ABS_BOUND = 1.2e-7


def _inputs() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.cat(
        [
            torch.randn(200_000) * 3,
            torch.linspace(-20, 20, 400_001),
            torch.randn(10_000) * 1e-4,
            torch.tensor([0.0, -0.0, 1e-30, -1e-30, 9.0, 10.0, 50.0, -50.0]),
        ]
    )


def test_error_bound_against_float64() -> None:
    x = _inputs()
    exact = torch.tanh(x.double())
    y = tanh(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    ulp = np.spacing(np.abs(exact.float().numpy())).astype(np.float64)
    err = (y.double() - exact).abs().numpy()
    assert (err / ulp).max() <= ULP_BOUND
    assert (y - torch.tanh(x)).abs().max() <= ABS_BOUND
    assert tanh(torch.tensor([float("inf"), -float("inf")])).tolist() == [1.0, -1.0]
    assert tanh(torch.tensor([float("nan")])).isnan().all()


def test_float64_and_other_layouts() -> None:
    x = torch.randn(33, 17, dtype=torch.float64)
    torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=1e-15)
    view = torch.randn(64, 60)[:, ::3]  # not contiguous, 1,280 elements
    torch.testing.assert_close(tanh(view), torch.tanh(view), rtol=0, atol=ABS_BOUND)
    with torch.inference_mode():
        x = torch.randn(8, 64)
        torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=ABS_BOUND)


def test_torch_tanh_where_numpy_cannot() -> None:
    # bf16 (autocast) and graphs traced by torch.jit/compile/export keep torch.tanh itself.
    x = torch.randn(16, 8).bfloat16()
    assert torch.equal(tanh(x), torch.tanh(x))

    class Tanh(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return tanh(x)

    exported = torch.export.export(Tanh(), (torch.randn(64, 16),))  # numpy-sized
    assert "aten.tanh" in str(exported.graph)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_keeps_torch_tanh() -> None:
    x = torch.randn(256, 64, device="cuda", requires_grad=True)
    y = tanh(x)
    assert y.device.type == "cuda" and torch.equal(y, torch.tanh(x))


def test_autograd_backward_uses_saved_output() -> None:
    x = torch.randn(32, 16, requires_grad=True)
    y = tanh(x)
    assert type(y.grad_fn).__name__ == "HostTanhBackward"
    g = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(dx, g * (1 - y.detach() ** 2), rtol=1e-6, atol=1e-7)
    x64 = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)  # the Function itself
    assert torch.autograd.gradcheck(HostTanh.apply, (x64,))


def _update_both(fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The same 20-epoch update from the same weights and batch, with the trunk's tanh from
    numpy and from torch: the flat parameters after each."""
    torch.manual_seed(1)
    net = ActorCritic(4, gym.spaces.Discrete(2), NetworkConfig())
    reference = copy.deepcopy(net)
    reference.activation = torch.tanh  # what the trunk used before nn/activations.py
    cfg = PPOConfig(update_epochs=20, num_minibatches=4, fused=fused)
    agent, ref_agent = (
        PPOAgent(net, cfg),
        PPOAgent(reference, PPOConfig(update_epochs=20, num_minibatches=4, fused=False)),
    )
    obs = torch.randn(256, 4)
    with torch.no_grad():
        actions, logprobs, values, masks = ref_agent.act(obs)
    batch = Batch(obs, actions, logprobs, values, torch.randn(256), values + 1, masks)
    torch.manual_seed(2)
    agent.update(batch)
    torch.manual_seed(2)
    ref_agent.update(batch)
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    ref = torch.cat([p.detach().flatten() for p in reference.parameters()])
    return flat, ref


@pytest.mark.parametrize("fused", [True, False])
def test_training_update_stays_within_the_bound(fused: bool) -> None:
    # 80 Adam steps at lr 1e-3 from the same start: a 1e-7 difference in the activations
    # may move a weight by a rounding step per step, far below one step's size (lr).
    flat, ref = _update_both(fused)
    assert (flat - ref).abs().max() < 1e-4
    assert (flat - ref).abs().max() > 0 or not fused  # not the same code path in disguise


def test_numpy_path_is_taken_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = activations._host_tanh
    monkeypatch.setattr(activations, "_host_tanh", lambda x: calls.append(1) or real(x))
    net = ActorCritic(4, gym.spaces.Discrete(2), NetworkConfig())
    net(torch.randn(8, 4))
    assert len(calls) == 2  # both layers of the 64x64 trunk
    net(torch.randn(1, 4))  # one row: torch.tanh's single call is quicker
    assert len(calls) == 2


@pytest.mark.parametrize("name", ["tanh", "torch.tanh", "relu", "elu"])
@pytest.mark.parametrize("rows", [2, 256])  # under and over numpy's threshold
def test_activate_in_place_gives_the_activation_and_leaves_graphs_alone(name, rows):
    import torch.nn.functional as F

    from sharedppo.nn.activations import activate_

    fn = {"tanh": tanh, "torch.tanh": torch.tanh, "relu": F.relu, "elu": F.elu}[name]
    x = torch.randn(rows, 64, generator=torch.Generator().manual_seed(rows))
    expected = fn(x.clone())
    y = activate_(fn, x)
    torch.testing.assert_close(y, expected, atol=1.2e-7, rtol=0)
    if name != "elu":  # written over its input
        assert y.data_ptr() == x.data_ptr()
    w = torch.randn(rows, 64, requires_grad=True)
    pre = w * 1.0
    out = activate_(fn, pre)
    assert out.data_ptr() != pre.data_ptr()  # autograd's input is kept as it is
    out.sum().backward()
    assert w.grad is not None
