"""Beyond discrete CartPole: Gaussian and multi-categorical heads, normalisation, presets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal

from sharedppo.compose import compose_checked
from sharedppo.config import ConfigError, NetworkConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.heads import Gaussian, MultiCategorical, make_distribution
from sharedppo.nn.normalize import ObsNormalizer, RewardScaler, RunningMeanStd
from sharedppo.run.checkpoint import load
from sharedppo.run.evaluate import evaluate, load_policy
from sharedppo.run.session import train


def test_gaussian_log_prob_and_entropy_match_torch():
    torch.manual_seed(0)
    space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
    dist = Gaussian(space)
    with torch.no_grad():
        dist.log_std.copy_(torch.tensor([-0.5, 0.0, 0.7]))
    mean = torch.randn(64, 3)
    actions = torch.randn(64, 3) * 2
    ref = Normal(mean, dist.log_std.exp())
    assert torch.allclose(dist.log_prob(mean, actions), ref.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(dist.entropy(mean), ref.entropy().sum(-1), atol=1e-5)
    sampled, logp = dist.sample(mean)
    assert torch.allclose(logp, ref.log_prob(sampled).sum(-1), atol=1e-5)


class _Recorded(gym.Wrapper):
    def __init__(self, env: gym.Env, seen: list) -> None:
        super().__init__(env)
        self.seen = seen

    def step(self, action):
        self.seen.append(np.array(action))
        return self.env.step(action)


def test_gaussian_clips_for_the_env_but_stores_the_sample(cfg_factory, tmp_path):
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    dist = Gaussian(space)
    raw = np.array([[-5.0], [0.5], [3.0]], dtype=np.float32)
    assert dist.to_env(raw).tolist() == [[-2.0], [0.5], [2.0]]

    # A wide policy on Pendulum: stored actions leave the bounds the env saw.
    from sharedppo.algo.agent import PPOAgent
    from sharedppo.config import PPOConfig
    from sharedppo.run.collect import Collector
    from sharedppo.run.episodes import EpisodeTracker
    from sharedppo.run.memory import RolloutMemory

    torch.manual_seed(0)
    seen: list[np.ndarray] = []
    envs = gym.make_vec(
        "Pendulum-v1", 4, vectorization_mode="sync", wrappers=[lambda e: _Recorded(e, seen)]
    )
    obs, _ = envs.reset(seed=0)
    net = ActorCritic(3, envs.single_action_space, NetworkConfig())
    with torch.no_grad():
        net.dist.log_std.fill_(2.0)
    memory = RolloutMemory(
        num_steps=16,
        num_envs=4,
        obs_shape=(3,),
        device=torch.device("cpu"),
        action_shape=(1,),
        action_dtype=torch.float32,
    )
    Collector(envs, obs).collect(PPOAgent(net, PPOConfig()), memory, EpisodeTracker(4), 0)
    assert memory.actions.abs().max() > 2.0
    stored = memory.actions.flatten(0, 1)  # step by step, env by env: the order stepped
    assert np.array_equal(np.concatenate(seen), np.clip(stored.numpy(), -2.0, 2.0).ravel())
    # The log-probs and values stored are those of the stored (unclipped) actions.
    with torch.no_grad():
        means, values = net(memory.obs.flatten(0, 1))
    assert torch.allclose(memory.logprobs.flatten(), net.dist.log_prob(means, stored), atol=1e-5)
    assert torch.allclose(memory.values.flatten(), values, atol=1e-6)
    envs.close()


def test_a_gaussian_rollout_samples_from_its_draws(monkeypatch):
    from sharedppo.algo.agent import PPOAgent
    from sharedppo.config import PPOConfig
    from sharedppo.nn.heads import GaussianDraws
    from sharedppo.run.collect import Collector
    from sharedppo.run.episodes import EpisodeTracker
    from sharedppo.run.memory import RolloutMemory

    calls = []
    sample = GaussianDraws.sample
    monkeypatch.setattr(
        GaussianDraws, "sample", lambda self, out: calls.append(1) or sample(self, out)
    )
    monkeypatch.setattr(Gaussian, "sample", None)  # the per-step path is not taken
    envs = gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=0)
    net = ActorCritic(3, envs.single_action_space, NetworkConfig())
    memory = RolloutMemory(
        num_steps=8,
        num_envs=2,
        obs_shape=(3,),
        device=torch.device("cpu"),
        action_shape=(1,),
        action_dtype=torch.float32,
    )
    Collector(envs, obs).collect(PPOAgent(net, PPOConfig()), memory, EpisodeTracker(2), 0)
    assert len(calls) == 8
    envs.close()


def test_gaussian_draws_are_a_normal_sample_written_into_the_rows():
    torch.manual_seed(0)
    dist = Gaussian(gym.spaces.Box(-2.0, 2.0, (2,), np.float32))
    with torch.no_grad():
        dist.log_std.copy_(torch.tensor([-0.5, 0.7]))
    rows = torch.zeros(3, 4, 2)  # [T, N, d], as the rollout memory holds them
    draws = dist.draws(rows)
    means = torch.randn(3, 4, 2)
    for t in range(3):
        actions = draws.sample(means[t])
        assert actions.data_ptr() == rows[t].data_ptr()
        assert torch.allclose(actions, means[t] + dist.log_std.exp() * draws.noise[t])
    ref = Normal(means, dist.log_std.exp()).log_prob(rows).sum(-1)
    assert draws.log_probs().shape == (3, 4)
    assert torch.allclose(draws.log_probs(), ref, atol=1e-5)
    # Scoring the stored actions again, as the update does, gives the same log-probs.
    assert torch.allclose(dist.log_prob(means, rows), draws.log_probs(), atol=1e-5)


def test_multidiscrete_is_independent_categoricals():
    torch.manual_seed(0)
    dist = make_distribution(gym.spaces.MultiDiscrete([3, 2]))
    assert isinstance(dist, MultiCategorical) and dist.num_outputs == 5
    out = torch.randn(10, 5)
    actions, logp = dist.sample(out)
    assert actions.shape == (10, 2)
    a, b = TorchCategorical(logits=out[:, :3]), TorchCategorical(logits=out[:, 3:])
    ref = a.log_prob(actions[:, 0]) + b.log_prob(actions[:, 1])
    assert torch.allclose(logp, ref, atol=1e-6)
    assert torch.allclose(dist.log_prob(out, actions), ref, atol=1e-6)
    assert torch.allclose(dist.entropy(out), a.entropy() + b.entropy(), atol=1e-6)


def test_unsupported_action_space_names_it():
    with pytest.raises(ConfigError, match="Dict"):
        make_distribution(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 2))
    rms = RunningMeanStd((2,))
    for chunk in np.array_split(data, 7):
        rms.update(chunk)
    assert np.allclose(rms.mean, data.mean(0), atol=1e-3)
    assert np.allclose(rms.var, data.var(0), atol=1e-3)
    scaler = RewardScaler(2, 0.9, enabled=True)
    scaled = scaler(np.array([1.0, 2.0]), np.array([False, True]))
    assert scaled.shape == (2,) and scaler.returns[1] == 0.0


def _chan_reference(rms_mean, rms_var, count, batch):
    # The textbook merge with numpy's own mean and var: the fast update must give these bits.
    b_mean, b_var, n = batch.mean(0), batch.var(0), batch.shape[0]
    delta, total = b_mean - rms_mean, count + n
    mean = rms_mean + delta * n / total
    m2 = rms_var * count + b_var * n + delta**2 * count * n / total
    return mean, m2 / total, total


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64])
def test_running_stats_match_numpy_bit_for_bit(rows, dtype):
    data = np.random.default_rng(1).normal(3.0, 2.0, (40, rows, 4)).astype(dtype)
    scalar = RunningMeanStd(())  # the reward scaler's: one statistic over a 1-D batch
    mean, var, count = scalar.mean.copy(), scalar.var.copy(), scalar.count
    for batch in data[:, :, 0]:
        scalar.update(batch)
        mean, var, count = _chan_reference(mean, var, count, batch)
        assert np.array_equal(scalar.mean, mean) and np.array_equal(scalar.var, var)
    rms = RunningMeanStd((4,))
    mean, var, count = rms.mean.copy(), rms.var.copy(), rms.count
    for batch in data:
        rms.update(batch)
        mean, var, count = _chan_reference(mean, var, count, batch)
        assert np.array_equal(rms.mean, mean) and np.array_equal(rms.var, var)
    norm = ObsNormalizer((4,), enabled=True, clip=1.5)
    norm.rms = rms
    x = data[-1].astype(np.float64) * 3
    expected = np.clip((x - rms.mean) / np.sqrt(rms.var + 1e-8), -1.5, 1.5).astype(np.float32)
    assert np.array_equal(norm(x, update=False), expected)
    nan = norm(np.full((1, 4), np.nan), update=False)
    assert np.isnan(nan).all()


def test_normalisation_survives_checkpoint_and_is_frozen_at_eval(cfg_factory, tmp_path):
    train(cfg_factory("experiment=pendulum", "total_steps=4096"), tmp_path)
    state = load(tmp_path / "checkpoints" / "last.pt")
    assert state["obs_norm"]["count"] > 4000
    net, cfg, _, obs_norm = load_policy(tmp_path, torch.device("cpu"))
    assert np.allclose(obs_norm.rms.mean, state["obs_norm"]["mean"].numpy())
    before = obs_norm.rms.mean.copy(), obs_norm.rms.count
    evaluate(net, cfg.env, 2, True, 0, torch.device("cpu"), obs_norm=obs_norm)
    assert np.array_equal(obs_norm.rms.mean, before[0]) and obs_norm.rms.count == before[1]

    fresh = ObsNormalizer((3,), enabled=True)
    fresh.load_state_dict(obs_norm.state_dict())
    x = np.ones((1, 3))
    assert np.allclose(fresh(x, update=False), obs_norm(x, update=False))


@pytest.mark.parametrize("preset", ["experiment=pendulum", "experiment=mountaincar_continuous"])
def test_continuous_presets_run(cfg_factory, tmp_path, preset):
    # Two envs, 2048 steps each: MountainCarContinuous episodes last 999 steps.
    result = train(cfg_factory(preset, "env.num_envs=2", "total_steps=4096"), tmp_path)
    assert result.global_step >= 4096 and result.episodes >= 2


@pytest.mark.parametrize("preset", ["experiment=lunarlander", "experiment=lunarlander_continuous"])
def test_box2d_presets_run(cfg_factory, tmp_path, preset):
    pytest.importorskip("Box2D", reason="the box2d extra is not installed")
    cfg = cfg_factory(
        preset, "env.num_envs=2", "ppo.num_steps=128", "ppo.num_minibatches=4", "total_steps=1024"
    )
    result = train(cfg, tmp_path)
    assert result.global_step >= 1024
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert {"charts/SPS", "losses/policy_loss"} <= set(acc.Tags()["scalars"])


@pytest.mark.parametrize(
    "preset",
    [
        "experiment=halfcheetah",
        "experiment=halfcheetah_zoo",
        "experiment=hopper",
        "experiment=walker2d",
    ],
)
def test_mujoco_presets_run(cfg_factory, tmp_path, preset):
    pytest.importorskip("mujoco", reason="the mujoco extra is not installed")
    cfg = cfg_factory(preset, "ppo.num_steps=128", "ppo.num_minibatches=4", "total_steps=256")
    result = train(cfg, tmp_path)
    assert result.global_step >= 256
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_log_std_init_and_torch_init():
    box = gym.spaces.Box(-1.0, 1.0, (3,))
    net = ActorCritic(5, box, NetworkConfig(log_std_init=-2.0, init="torch"))
    assert torch.equal(net.dist.log_std.detach(), torch.full((3,), -2.0))
    # PyTorch's own init leaves the policy head at its fan-in scale, not the 0.01 gain.
    assert net.policy_head.weight.abs().max() > 0.05
    assert ActorCritic(5, box, NetworkConfig()).policy_head.weight.abs().max() < 0.05
    with pytest.raises(ConfigError, match="network.init") as err:
        compose_checked(["network.init=kaiming"])
    assert "torch" in str(err.value)  # the allowed values are listed
