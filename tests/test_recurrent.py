"""The recurrent core: state resets under next-step autoreset, replay reproduces acting, the
first ratio is 1, resume carries the state, and the config, prediction and wrapper around it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import sharedppo
from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.gradient import Autograd, Fused, fused_unsupported
from sharedppo.compose import compose_checked
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig, validate
from sharedppo.envs.build import make_envs
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.run.checkpoint import load
from sharedppo.run.collect import Collector
from sharedppo.run.episodes import EpisodeTracker
from sharedppo.run.evaluate import evaluate
from sharedppo.run.memory import RolloutMemory
from sharedppo.run.session import Interrupted, train
from sharedppo.wrappers import KeepObservation
from tests.conftest import run_cli
from tests.test_config import GROUPS, options


class Ticks(gym.Env):
    """Episodes of ``length`` steps; the observation counts the steps since the reset (and a
    constant 1, so that a zero state does not stay zero)."""

    observation_space = gym.spaces.Box(0.0, 100.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int) -> None:
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t, 1.0], np.float32), 1.0, self.t >= self.length, False, {}


class Recorder:
    """Wraps ``net.step`` to keep, per call, the state after its reset and the output."""

    def __init__(self, net: ActorCritic) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        step = net.step

        def recorded(obs, masks, state, starts=None):
            out = step(obs, masks, state, starts)
            used = state if starts is None else state * (1 - starts).view(-1, 1, 1)
            self.calls.append((used.clone(), out[0].clone()))
            return out

        net.step = recorded


def _ticks_rollout(cell: str, dropout: float = 0.0, num_steps: int = 5):
    torch.manual_seed(0)
    envs = gym.vector.SyncVectorEnv([lambda: Ticks(3), lambda: Ticks(4)])
    obs, info = envs.reset(seed=0)
    net = ActorCritic(2, 2, NetworkConfig(recurrent=cell, recurrent_size=8, dropout=dropout))
    memory = RolloutMemory(
        num_steps=num_steps,
        num_envs=2,
        obs_shape=(2,),
        mask_shape=net.mask_shape if dropout > 0 else None,
        device=torch.device("cpu"),
        state_shape=net.state_shape,
    )
    rollout = Collector(envs, obs, info=info, num_actions=2, state=net.initial_state(2))
    return net, PPOAgent(net, PPOConfig()), memory, rollout


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_resets_two_steps_after_a_done_across_rollouts(cell):
    net, agent, memory, rollout = _ticks_rollout(cell)
    recorder = Recorder(net)
    starts, obs, dones, used, outs = [], [], [], [], []
    step = 0
    for _ in range(4):  # episode boundaries fall on and across rollout boundaries
        recorder.calls.clear()
        step = rollout.collect(agent, memory, EpisodeTracker(2), step)
        starts.append(memory.starts.clone())
        obs.append(memory.obs[..., 0].clone())
        dones.append(memory.dones.clone())
        used += [c[0] for c in recorder.calls[: memory.num_steps]]  # the last is the bootstrap
        outs += [c[1] for c in recorder.calls[: memory.num_steps]]
    starts, obs, dones = torch.cat(starts), torch.cat(obs), torch.cat(dones)

    # The first step, then two steps after each done (the step after a done acts on the
    # final observation with the old episode's state: its value is that episode's bootstrap).
    expected = torch.zeros_like(starts)
    expected[0] = 1
    expected[2:] = dones[:-2]
    assert torch.equal(starts, expected)
    # A start is exactly a step that acts on a reset observation (Ticks resets to 0).
    assert torch.equal(starts.bool(), obs == 0)
    for t, state in enumerate(used):
        for env in range(2):
            zero = bool((state[env] == 0).all())
            assert zero == bool(starts[t, env]), (t, env)
    # Same reset observation, zeroed state: the same output at every episode start.
    first = {env: outs[0][env] for env in range(2)}
    for t, out in enumerate(outs):
        for env in range(2):
            if starts[t, env]:
                assert torch.equal(out[env], first[env])


@pytest.mark.parametrize(("cell", "dropout"), [("lstm", 0.0), ("gru", 0.0), ("lstm", 0.3)])
def test_replaying_a_stored_rollout_gives_what_acting_computed(cell, dropout):
    net, agent, memory, rollout = _ticks_rollout(cell, dropout, num_steps=7)
    recorder = Recorder(net)
    for _ in range(3):  # later rollouts start from a carried, non-zero state
        recorder.calls.clear()
        rollout.collect(agent, memory, EpisodeTracker(2), 0)
        acted = torch.stack([c[1] for c in recorder.calls[: memory.num_steps]])
        out, values = net.forward_sequence(memory.obs, memory.masks, memory.state0, memory.starts)
        torch.testing.assert_close(out, acted, rtol=0, atol=1e-6)
        torch.testing.assert_close(values, memory.values, rtol=0, atol=1e-6)
    assert memory.state0.abs().sum() > 0


@pytest.mark.parametrize(
    "overrides",
    [
        ["network.recurrent=lstm"],
        ["network.recurrent=gru", "ppo.num_minibatches=4"],
        ["network.recurrent=lstm", "network.dropout=0.2", "ppo.num_minibatches=4"],
        ["network.recurrent=gru", "network.dropout=0.2", "network.shared=false"],
        ["env=pendulum", "network.recurrent=lstm", "ppo.num_minibatches=4"],  # Gaussian draws
    ],
    ids=lambda o: ",".join(x.split(".")[-1] for x in o),
)
def test_ratio_is_one_at_the_first_minibatch(cfg_factory, tmp_path, overrides, first_ratios):
    cfg = cfg_factory(*overrides, "total_steps=512", "checkpoint.every_steps=null")
    agent = train(cfg, tmp_path).agent
    assert type(agent.gradient) is Autograd  # ppo.fused=true is the default
    assert first_ratios and all(len(ratio) > 0 for ratio in first_ratios)
    assert (torch.cat(first_ratios) - 1).abs().max().item() < 1e-6


def test_minibatches_are_groups_of_whole_env_sequences():
    net, agent, memory, rollout = _ticks_rollout("lstm", num_steps=6)
    rollout.collect(agent, memory, EpisodeTracker(2), 0)
    batch = memory.batch()
    assert batch.sequence is not None and len(batch) == int(memory.valid.sum())
    group = batch.sequence.select(torch.tensor([1])).batch()
    assert group.sequence.obs.shape == (6, 1, 2) and group.sequence.state0.shape[0] == 1
    valid = memory.valid[:, 1].bool()
    assert torch.equal(group.obs[:, 0], memory.obs[:, 1, 0][valid])
    assert torch.equal(group.advantages, memory.advantages[:, 1][valid])
    with pytest.raises(TypeError, match="split"):
        batch[torch.tensor([0])]


def test_recurrent_networks_use_autograd():
    net = ActorCritic(4, 2, NetworkConfig(recurrent="gru"))
    assert fused_unsupported(net) == "network.recurrent=gru"
    assert type(PPOAgent(net, PPOConfig(fused=True)).gradient) is Autograd
    plain = ActorCritic(4, 2, NetworkConfig(recurrent_size=16))
    assert isinstance(PPOAgent(plain, PPOConfig()).gradient, Fused)
    with pytest.raises(TypeError, match="step"):
        net(torch.zeros(1, 4))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cells_compute_what_torch_cells_compute(cell):
    torch.manual_seed(0)
    net = ActorCritic(3, 2, NetworkConfig(recurrent=cell, recurrent_size=5, depth=1, width=4))
    x, state = torch.randn(6, 3), torch.randn(6, *net.state_shape)
    _, _, new = net.step(x, None, state)
    features = torch.tanh(net.trunks[0][0](x))
    if cell == "lstm":
        h, c = net.cores[0](features, (state[:, 0], state[:, 1]))
        expected = torch.stack([h, c], 1)
    else:
        expected = net.cores[0](features, state[:, 0]).unsqueeze(1)
    torch.testing.assert_close(new, expected)


@pytest.mark.parametrize(("cell", "shared"), [("lstm", True), ("gru", True), ("lstm", False)])
def test_hand_derived_backward_through_time_matches_autograd(cell, shared):
    torch.manual_seed(1)
    cfg = NetworkConfig(recurrent=cell, recurrent_size=6, width=5, shared=shared, dropout=0.2)
    net = ActorCritic(3, 4, cfg).double()
    steps, n = 7, 3
    obs, starts = torch.randn(steps, n, 3, dtype=torch.float64), torch.zeros(steps, n)
    starts[[2, 4, 5], [0, 1, 0]] = 1
    starts = starts.double()
    masks = net.sample_masks(steps * n, obs.device).double().view(steps, n, *net.mask_shape)
    weights = torch.randn(steps, n, 4, dtype=torch.float64)

    def grads(replay: bool) -> list[torch.Tensor]:
        state0 = torch.randn(n, *net.state_shape, generator=torch.Generator().manual_seed(2))
        state0 = state0.double().requires_grad_()
        if replay:
            out, values = net.forward_sequence(obs, masks, state0, starts)
        else:  # autograd through the step-by-step ops acting uses
            outs, state, values = [], state0, []
            for t in range(steps):
                out_t, value_t, state = net.step(obs[t], masks[t], state, starts[t])
                outs.append(out_t)
                values.append(value_t)
            out, values = torch.stack(outs), torch.stack(values)
        loss = (out * weights).sum() + values.square().sum()
        return torch.autograd.grad(loss, [*net.parameters(), state0])

    for mine, reference in zip(grads(True), grads(False), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_group_option_composes_with_a_recurrent_core(cfg_factory, override):
    cfg = cfg_factory(override, "network.recurrent=lstm")
    if cfg.env.num_envs % cfg.ppo.num_minibatches == 0:
        validate(cfg)
    else:  # a minibatch is a group of envs: too many minibatches for the envs is one line
        with pytest.raises(ConfigError) as err:
            validate(cfg)
        message = str(err.value)
        assert message.startswith("ppo.num_minibatches=") and "env.num_envs" in message
        assert "\n" not in message
    validate(cfg_factory(override, "network.recurrent=gru", "ppo.num_minibatches=1"))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["network.recurrent=lstm", "ppo.num_minibatches=16"], "ppo.num_minibatches"),
        (["network.recurrent=rnn"], "network.recurrent"),
        (["network.recurrent=lstm", "network.recurrent_size=0"], "network.recurrent_size"),
    ],
)
def test_bad_recurrent_input_is_one_line(overrides, key):
    with pytest.raises(ConfigError) as err:
        compose_checked(overrides)
    message = str(err.value)
    assert message.startswith(key) and "\n" not in message


def test_bad_recurrent_input_on_the_command_line_exits_2(tmp_path):
    proc = run_cli("network.recurrent=lstm", "ppo.num_minibatches=16", cwd=tmp_path)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "must divide env.num_envs=8" in line


def test_resume_carries_the_state_exactly(cfg_factory, tmp_path):
    overrides = (
        "network.recurrent=lstm",
        "network.dropout=0.1",
        "ppo.num_minibatches=2",
        "ppo.update_epochs=2",
        "total_steps=2048",
        "checkpoint.every_steps=1024",
    )
    full = train(cfg_factory(*overrides), tmp_path / "full")
    job = tmp_path / "job"
    with pytest.raises(Interrupted):
        train(cfg_factory(*overrides), job, on_update=lambda step, _: step >= 1024)
    saved = load(job / "checkpoints" / "last.pt")["env"]
    assert saved["recurrent_state"].shape == (8, 2, 64) and saved["recurrent_state"].abs().sum() > 0
    resumed = train(cfg_factory(*overrides, f"resume={job}"), job)
    assert resumed.global_step == full.global_step == 2048
    a, b = full.agent.net.state_dict(), resumed.agent.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_predict_and_evaluate_carry_the_state(cfg_factory, tmp_path):
    cfg = cfg_factory("network.recurrent=gru", "total_steps=512", "env.normalize_obs=true")
    train(cfg, tmp_path)
    policy = sharedppo.load(tmp_path)
    assert policy.state_shape == (1, 64)
    envs, obs, _ = make_envs(OmegaConf.to_object(cfg_factory()).env, seed=3, num_envs=2)
    envs.close()
    x = obs.astype(np.float32)
    action, state = policy.predict(x[0])
    assert state.shape == (1, 64) and int(action) in (0, 1)
    # None is an episode start: the same as zeros.
    again = policy.predict(x[0], np.zeros((1, 64), np.float32))
    np.testing.assert_array_equal(again[1], state)
    # One step of a batch is the same as each row on its own, and the state goes on.
    actions, states = policy.predict(x, np.stack([state, np.zeros_like(state)]))
    assert actions.shape == (2,) and states.shape == (2, 1, 64)
    np.testing.assert_allclose(states[0], policy.predict(x[0], state)[1], atol=1e-6)
    np.testing.assert_allclose(states[1], policy.predict(x[1])[1], atol=1e-6)
    assert not np.allclose(states[0], state)
    with pytest.raises(ValueError, match="needs"):
        policy.predict(x[0], np.zeros(64, np.float32))

    returns, lengths = evaluate(
        policy.net, policy.config.env, 4, True, 0, torch.device("cpu"), obs_norm=policy.obs_norm
    )
    assert len(returns) == 4 and (lengths > 0).all()


def test_a_plain_policy_refuses_a_state(cfg_factory, tmp_path):
    train(cfg_factory("total_steps=256"), tmp_path)
    policy = sharedppo.load(tmp_path)
    assert policy.state_shape is None
    with pytest.raises(ValueError, match="not recurrent"):
        policy.predict(np.zeros(4, np.float32), np.zeros((1, 64), np.float32))


def test_recurrent_core_after_cnn_and_dict_encoders(cfg_factory, tmp_path, first_ratios):
    from tests.test_dict_obs import DICT_ID
    from tests.test_export import FRAMES_ID

    for name, overrides in {
        "cnn": [f"env.id={FRAMES_ID}", "network=nature_cnn", "env.num_envs=2", "ppo.num_steps=8"],
        "dict": [f"env.id={DICT_ID}", "ppo.num_minibatches=2"],
    }.items():
        cfg = cfg_factory(
            *overrides, "network.recurrent=lstm", "total_steps=256", "checkpoint.every_steps=null"
        )
        first_ratios.clear()
        train(cfg, tmp_path / name)
        assert (torch.cat(first_ratios) - 1).abs().max().item() < 1e-6


def test_hidden_velocity_cartpole(cfg_factory):
    envs, obs, _ = make_envs(OmegaConf.to_object(cfg_factory("env=cartpole_novel")).env, seed=0)
    assert envs.single_observation_space.shape == (2,) and obs.shape == (8, 2)
    full = gym.make("CartPole-v1")
    first, _ = full.reset(seed=5)
    kept, _ = KeepObservation(gym.make("CartPole-v1"), [0, 2]).reset(seed=5)
    np.testing.assert_array_equal(kept, first[[0, 2]])
    envs.close()
    with pytest.raises(ValueError, match="indices"):
        KeepObservation(full, [4])
