"""precision (fp32 | bf16 | fp16), channels_last conv trunks and uint8 frames in the memory:
mixed precision close to fp32, fp32 untouched, the fused gradient only at fp32, one-line
refusals of what a device cannot run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.gradient import Autograd, Fused, fused_unsupported
from sharedppo.compose import compose_checked
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig
from sharedppo.nn import precision as precision_module
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.precision import LossScaler, Precision, check_precision
from sharedppo.run.memory import RolloutMemory
from sharedppo.run.session import train
from sharedppo.run.trainer import Trainer
from tests.conftest import Frames, run_cli

FRAMES_ID = "SharedPPOTest/SmallFrames-v0"
CNN = NetworkConfig(type="nature_cnn")
needs_bf16 = pytest.mark.skipif(
    not precision_module.cpu_supports_bf16(), reason="this CPU has no bf16 support in oneDNN"
)


if FRAMES_ID not in gym.registry:
    gym.register(FRAMES_ID, entry_point=Frames, max_episode_steps=16, kwargs={"size": 36})


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, 36, 36), generator=generator, dtype=torch.uint8)


def _batch(agent: PPOAgent, obs: torch.Tensor) -> Batch:
    with torch.inference_mode():
        actions, logprobs, values, masks = agent.act(obs)
    advantages = torch.randn(len(obs), generator=torch.Generator().manual_seed(1))
    values = values.clone()
    return Batch(obs, actions.clone(), logprobs.clone(), values, advantages, values + 1, masks)


def _flat_grad(agent: PPOAgent, batch: Batch, precision: Precision) -> tuple[torch.Tensor, float]:
    gradient = Autograd(agent.net, agent.optimizer, agent.cfg, precision)
    fwd = gradient.forward(batch)
    terms = gradient.backward(fwd, batch, batch.advantages, agent.cfg.clip_ratio)
    return agent.optimizer.flat_grad.clone(), terms.total.item()


@needs_bf16
@pytest.mark.parametrize("net_cfg", [NetworkConfig(), CNN], ids=["mlp", "cnn"])
def test_bf16_forward_loss_and_gradient_are_close_to_fp32(net_cfg):
    torch.manual_seed(0)
    shape = (4, 36, 36) if net_cfg.type == "nature_cnn" else (6,)
    net = ActorCritic(shape, gym.spaces.Discrete(3), net_cfg)
    agent = PPOAgent(net, PPOConfig(fused=False))
    obs = _frames(64).float() if len(shape) == 3 else torch.randn(64, *shape)
    bf16 = Precision("bf16", "cpu")

    out32, values32 = net(obs)
    out16, values16 = bf16.run(net, obs)
    assert out16.dtype == values16.dtype == torch.float32  # cast back for the loss
    assert not torch.equal(out16, out32)  # autocast did run in bf16
    torch.testing.assert_close(out16, out32, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(values16, values32, atol=2e-2, rtol=2e-2)

    batch = _batch(agent, obs)
    grad32, loss32 = _flat_grad(agent, batch, Precision())
    grad16, loss16 = _flat_grad(agent, batch, bf16)
    assert grad16.dtype == torch.float32  # parameters and gradients stay fp32
    assert loss16 == pytest.approx(loss32, rel=2e-2, abs=2e-3)
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0).item()
    assert cosine > 0.99
    assert grad16.norm().item() == pytest.approx(grad32.norm().item(), rel=5e-2)


@pytest.mark.parametrize("net_cfg", [NetworkConfig(), CNN], ids=["mlp", "cnn"])
def test_the_heads_run_in_fp32_under_autocast(net_cfg):
    """The trunk in bf16, both heads in fp32 on its output (cast up)."""
    torch.manual_seed(0)
    shape = (4, 36, 36) if net_cfg.type == "nature_cnn" else (6,)
    net = ActorCritic(shape, gym.spaces.Discrete(3), net_cfg)
    obs = _frames(8).float() if len(shape) == 3 else torch.randn(8, *shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = net._trunk(0, obs, None)
        out, values = net(obs)
    assert hidden.dtype == torch.bfloat16
    (policy_w, policy_b), (value_w, value_b) = net.heads
    assert torch.equal(out, torch.nn.functional.linear(hidden.float(), policy_w, policy_b))
    expected = torch.nn.functional.linear(hidden.float(), value_w, value_b).squeeze(-1)
    assert torch.equal(values, expected)


def test_a_recurrent_networks_heads_run_in_fp32_under_autocast():
    net = ActorCritic(6, gym.spaces.Discrete(3), NetworkConfig(recurrent="lstm"))
    obs, state = torch.randn(4, 6), net.initial_state(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, values, _ = net.step(obs, None, state)
        seq_out, seq_values = net.forward_sequence(
            obs.view(2, 2, 6), None, state[:2], torch.zeros(2, 2)
        )
    assert out.dtype == values.dtype == seq_out.dtype == seq_values.dtype == torch.float32


def test_fp32_runs_without_autocast_or_casts():
    net = ActorCritic(6, gym.spaces.Discrete(3), NetworkConfig())
    seen = []

    def spy(*args):
        seen.append(torch.is_autocast_enabled("cpu"))
        return returned

    returned = (torch.zeros(2, 3), torch.zeros(2))
    assert Precision().run(spy, None) is returned  # the very outputs: no cast, no copy
    Precision("bf16", "cpu").run(spy, None)
    assert seen == [False, True]
    agent = PPOAgent(net, PPOConfig())
    assert isinstance(agent.gradient, Fused) and fused_unsupported(net) is None


def test_mixed_precision_chooses_autograd_and_says_why():
    net = ActorCritic(6, gym.spaces.Discrete(3), NetworkConfig())
    for name in ("bf16", "fp16"):
        assert fused_unsupported(net, name).startswith(f"precision={name}")
        agent = PPOAgent(net, PPOConfig(fused=True), Precision(name, "cpu"))
        assert type(agent.gradient) is Autograd and not isinstance(agent.gradient, Fused)
        with pytest.raises(ValueError, match=f"precision={name}"):
            Fused(net, agent.optimizer, PPOConfig(), Precision(name, "cpu"))


def test_fp32_update_matches_an_agent_built_before_precision_existed():
    """The fused and autograd updates at precision=fp32 equal those of agents given no
    precision at all, the code path as it was."""
    for fused in (True, False):
        params = []
        for precision in (None, Precision("fp32", "cpu")):
            torch.manual_seed(0)
            net = ActorCritic(6, gym.spaces.Discrete(3), NetworkConfig(dropout=0.1))
            agent = PPOAgent(net, PPOConfig(fused=fused, num_minibatches=2), precision)
            agent.update(_batch(agent, torch.randn(64, 6)))
            params.append(agent.optimizer.flat.clone())
        assert torch.equal(*params)


def test_fp16_scales_the_loss_and_skips_an_overflowing_step():
    scaler = LossScaler(scale=4.0, growth_interval=2)
    grad = torch.tensor([4.0, -8.0])
    assert scaler.unscale(grad) and grad.tolist() == [1.0, -2.0]
    assert scaler.unscale(torch.ones(2)) and scaler.scale == 8.0  # two clean steps: grows
    assert not scaler.unscale(torch.tensor([float("inf"), 1.0])) and scaler.scale == 4.0

    # The fp16 update path itself (CPU autocast runs fp16 too; the config allows it on CUDA).
    torch.manual_seed(0)
    net = ActorCritic((4, 36, 36), gym.spaces.Discrete(3), CNN)
    agent = PPOAgent(net, PPOConfig(update_epochs=2), Precision("fp16", "cpu"))
    before = agent.optimizer.flat.clone()
    stats = agent.update(_batch(agent, _frames(32)))
    assert stats["update_steps"] == 2 and np.isfinite(stats["grad_norm"])
    assert not torch.equal(before, agent.optimizer.flat)
    agent.gradient.precision.scaler.scale = 2.0**120  # overflows fp32: every step is skipped
    before = agent.optimizer.flat.clone()
    stats = agent.update(_batch(agent, _frames(32)))
    assert stats["update_steps"] == 0 and torch.equal(before, agent.optimizer.flat)


@pytest.mark.parametrize(
    ("override", "allowed"),
    [("precision=fp8", "fp32, bf16, fp16"), ("network.channels_last=maybe", "channels_last")],
)
def test_a_bad_value_is_one_line(override, allowed):
    with pytest.raises(ConfigError) as err:
        compose_checked([override])
    assert allowed in str(err.value) and "\n" not in str(err.value)


def test_device_checks_are_one_line(monkeypatch):
    with pytest.raises(ConfigError, match="fp16 needs device=cuda") as err:
        check_precision("fp16", torch.device("cpu"))
    assert "\n" not in str(err.value)
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ConfigError, match="no bf16 support") as err:
        check_precision("bf16", torch.device("cpu"))
    assert "\n" not in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(ConfigError, match="use precision=fp16") as err:
        check_precision("bf16", torch.device("cuda:0"))
    assert "\n" not in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    check_precision("bf16", torch.device("cuda:0"))
    check_precision("fp16", torch.device("cuda:0"))
    check_precision("fp32", torch.device("cpu"))


def test_fp16_on_cpu_exits_2_before_training(tmp_path):
    result = run_cli("precision=fp16", "device=cpu", "total_steps=64", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "fp16 needs device=cuda" in lines[0]
    assert not list(tmp_path.rglob("events.out.tfevents*"))


@needs_bf16
@pytest.mark.parametrize(
    "overrides",
    [
        [],
        [f"env.id={FRAMES_ID}", "network=nature_cnn", "env.num_envs=2"],
        ["network.recurrent=lstm"],  # the core itself stays fp32
    ],
    ids=["cartpole", "cnn", "lstm"],
)
def test_a_short_bf16_run_trains_and_logs(cfg_factory, tmp_path, overrides, first_ratios):
    cfg = cfg_factory(
        *overrides,
        "precision=bf16",
        "ppo.num_steps=32",
        "total_steps=256" if "network=nature_cnn" in overrides else "total_steps=1024",
        "checkpoint.every_steps=null",
        "env.vectorization_mode=sync",
    )
    result = train(cfg, tmp_path / "job")
    agent = result.agent
    assert result.status == "completed" and result.episodes > 0
    assert type(agent.gradient) is Autograd and agent.precision.name == "bf16"
    assert agent.optimizer.flat.dtype == torch.float32
    assert torch.isfinite(agent.optimizer.flat).all()
    # Stored log-probs came from a bf16 forward, as did the update's first one.
    assert (torch.cat(first_ratios) - 1).abs().max().item() < 0.1
    assert list((tmp_path / "job").rglob("events.out.tfevents*"))


@pytest.mark.parametrize("channels_last", [True, False])
def test_uint8_frames_give_the_logits_of_floats(channels_last):
    torch.manual_seed(0)
    net_cfg = NetworkConfig(type="nature_cnn", channels_last=channels_last)
    net = ActorCritic((4, 36, 36), gym.spaces.Discrete(3), net_cfg)
    frames = _frames(16)
    out8, values8 = net(frames)
    out32, values32 = net(frames.float())
    assert torch.equal(out8, out32) and torch.equal(values8, values32)

    memory = RolloutMemory(
        num_steps=4,
        num_envs=4,
        obs_shape=(4, 36, 36),
        device=torch.device("cpu"),
        obs_dtype=torch.uint8,
    )
    memory.obs.copy_(frames.view(4, 4, 4, 36, 36))
    memory.close(torch.zeros(4))
    batch = memory.batch()
    assert batch.obs.dtype == torch.uint8 and torch.equal(net(batch.obs)[0], out32)


@pytest.mark.parametrize(
    ("overrides", "dtype"),
    [
        ([f"env.id={FRAMES_ID}", "network=nature_cnn"], torch.uint8),
        ([f"env.id={FRAMES_ID}", "network=nature_cnn", "env.normalize_obs=true"], torch.float32),
        ([], torch.float32),  # CartPole's vectors
    ],
    ids=["frames", "normalised_frames", "vectors"],
)
def test_the_memory_keeps_frames_uint8_and_the_rest_float(cfg_factory, tmp_path, overrides, dtype):
    cfg = OmegaConf.to_object(cfg_factory(*overrides, "env.num_envs=2"))
    trainer = Trainer(cfg, {}, tmp_path, torch.device("cpu"))
    try:
        assert trainer.memory.obs.dtype == dtype
    finally:
        trainer.collector.envs.close()


def test_channels_last_conv_weights_stay_in_the_optimizer_buffer():
    net = ActorCritic((4, 36, 36), gym.spaces.Discrete(3), CNN)
    agent = PPOAgent(net, PPOConfig())
    conv = net.convs[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    before = conv.detach().clone()
    agent.update(_batch(agent, _frames(32)))  # check_bound: every parameter in the buffer
    assert not torch.equal(before, conv)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    net.to(torch.float64)  # a move rebinds the buffer and keeps the layout
    assert net.convs[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    agent.optimizer.check_bound()
