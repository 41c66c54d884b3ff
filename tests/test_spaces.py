"""Every observation space gymnasium defines: encoded (Discrete, MultiDiscrete, MultiBinary,
Tuple, nested Dict, Box of any rank, images H x W x C or C x H x W, small or not) or refused
in one line (Text, Graph, Sequence). Each encoded one acts, learns a trivial task,
checkpoints, resumes exactly, evaluates and exports."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import sharedppo
from sharedppo.config import ConfigError, NetworkConfig
from sharedppo.envs.spaces import FlattenObs, flatten, needs_layout, space_layout
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.encoders import DictEncoder
from sharedppo.run.session import Interrupted, train

GRID = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)  # a MiniGrid-style symbolic view
ALL = gym.spaces.Tuple(
    (
        gym.spaces.Discrete(4, start=1),  # the goal
        gym.spaces.Dict(
            {
                "grid": GRID,
                "inner": gym.spaces.Dict(
                    {"bits": gym.spaces.MultiBinary(3), "md": gym.spaces.MultiDiscrete([2, 3])}
                ),
            }
        ),
        gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32),
    )
)


class SpaceBandit(gym.Env):
    """Pick the goal the observation shows (+1), 10 steps an episode; the rest of the
    observation is noise of its space."""

    action_space = gym.spaces.Discrete(4)

    def __init__(self, space: str = "all") -> None:
        self.kind = space
        self.observation_space = {
            "all": ALL,
            "discrete": gym.spaces.Discrete(4),
            "hwc": gym.spaces.Box(0, 255, (40, 40, 3), np.uint8),
        }[space]

    def _obs(self):
        obs = self.observation_space.sample()
        if self.kind == "all":
            self.goal = int(obs[0]) - 1
        elif self.kind == "discrete":
            self.goal = int(obs)
        else:
            self.goal = 1
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.goal)
        self.t += 1
        return self._obs(), reward, False, self.t >= 10, {}


class Refused(SpaceBandit):
    def __init__(self, space: str = "text") -> None:
        self.observation_space = {
            "text": gym.spaces.Text(5),
            "graph": gym.spaces.Graph(gym.spaces.Box(0, 1, (2,)), None),
            "sequence": gym.spaces.Sequence(gym.spaces.Discrete(3)),
            "dict_text": gym.spaces.Dict({"a": gym.spaces.Discrete(2), "b": gym.spaces.Text(3)}),
        }[space]


SPACE_ID, REFUSED_ID = "SharedPPOTest/SpaceBandit-v0", "SharedPPOTest/Refused-v0"
for env_id, entry in ((SPACE_ID, SpaceBandit), (REFUSED_ID, Refused)):
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry)


def nest(layout, values):
    """Per-part values as the observation they came from (Tuple indices as dict keys)."""
    if len(layout) == 1 and not layout[0].path:
        return values[0]
    root: dict = {}
    for part, value in zip(layout, values, strict=True):
        node = root
        for name in part.path[:-1]:
            node = node.setdefault(name, {})
        node[part.path[-1]] = value
    return root


def test_each_space_has_its_parts():
    layout = space_layout(ALL)
    keys = [p.key for p in layout]
    assert keys == ["0", "1.grid", "1.inner.bits", "1.inner.md", "2"]
    goal, grid, bits, md, box = layout
    assert goal.onehot == (4,) and goal.starts == (1,) and goal.shape == (4,)
    assert grid.image and grid.hwc and grid.shape == (3, 7, 7) and grid.scale == 1 / 255
    assert bits.onehot is None and bits.shape == (3,)
    assert md.onehot == (2, 3) and md.shape == (5,)
    assert box.shape == (4,) and not box.image
    obs = ALL.sample()
    flat = flatten(layout, obs)
    assert flat.shape == (layout[-1].end,)
    assert flat[goal.start : goal.end].tolist() == np.eye(4)[obs[0] - 1].tolist()
    assert flat[md.start : md.end].sum() == 2  # one one-hot per entry
    inner = {key: np.stack([v, v]) for key, v in obs[1]["inner"].items()}
    two = (np.array([obs[0]] * 2), {"grid": np.stack([obs[1]["grid"]] * 2), "inner": inner})
    batch = flatten(layout, (*two, np.stack([obs[2]] * 2)))
    assert np.array_equal(batch[1], flat)


def test_what_needs_no_layout_keeps_its_path():
    assert not needs_layout(gym.spaces.Box(-1, 1, (4,)))
    assert not needs_layout(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))  # Atari frames
    assert needs_layout(gym.spaces.Box(0, 255, (96, 96, 3), np.uint8))  # CarRacing: H, W, C
    assert needs_layout(gym.spaces.Box(0, 255, (3, 7, 7), np.uint8))  # too small for Nature
    assert needs_layout(gym.spaces.Discrete(16))
    env = FlattenObs(gym.make("Blackjack-v1"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32 + 11 + 2,) and obs.sum() == 3


@pytest.mark.parametrize("space", ["text", "graph", "sequence", "dict_text"])
def test_text_graph_and_sequence_are_refused_in_one_line(cfg_factory, tmp_path, space):

    cfg = cfg_factory(f"env.id={REFUSED_ID}", f"+env.kwargs.space={space}", "total_steps=64")
    with pytest.raises(ConfigError, match="FilterObservation") as err:
        train(cfg, tmp_path)
    message = str(err.value)
    assert "\n" not in message and ("Text" in message or space in message.lower())
    if space == "dict_text":
        assert "observation key 'b'" in message


def test_hwc_images_are_transposed_and_scaled():
    hwc = space_layout(gym.spaces.Box(0, 255, (40, 36, 3), np.uint8))
    chw = space_layout(gym.spaces.Box(0, 255, (3, 40, 36), np.uint8))
    torch.manual_seed(0)
    a = DictEncoder(hwc, 64, torch.tanh)
    b = DictEncoder(chw, 64, torch.tanh)
    b.load_state_dict(a.state_dict())
    image = np.random.default_rng(0).integers(0, 256, (2, 3, 40, 36)).astype(np.uint8)
    as_hwc = flatten(hwc, image.transpose(0, 2, 3, 1))
    with torch.no_grad():
        out_hwc = a(torch.from_numpy(as_hwc))
        out_chw = b(torch.from_numpy(flatten(chw, image)))
        unscaled = b(torch.from_numpy(flatten(chw, image)) * 255)
    assert torch.allclose(out_hwc, out_chw, atol=1e-6) and not torch.allclose(out_chw, unscaled)


def test_small_images_get_a_conv_encoder_that_fits():
    for side in (3, 7, 20, 35):
        layout = space_layout(gym.spaces.Box(0, 255, (side, side, 3), np.uint8))
        net = ActorCritic(layout[-1].end, 4, NetworkConfig(), layout)
        conv = net.encoders[0].encoders[0]
        assert isinstance(conv[0], torch.nn.Conv2d) and conv[0].kernel_size == (3, 3)
        out, values = net(torch.rand(2, layout[-1].end))
        assert out.shape == (2, 4) and values.shape == (2,)
    big = space_layout(gym.spaces.Box(0, 255, (36, 36, 3), np.uint8))
    net = ActorCritic(big[-1].end, 4, NetworkConfig(type="nature_cnn"), big)
    assert net.encoders[0].encoders[0][0].kernel_size == (8, 8) and net.width == 512


CASES = {
    # (space, extra overrides, steps, a return it must reach: random play makes 2.5)
    "all": ([], 8192, 4.0),  # noise in every other part: learning is slower
    "discrete": ([], 12288, 7.0),
    "hwc": (["network=nature_cnn", "env.num_envs=2", "ppo.num_steps=16"], 128, None),
    "all_gru": (["network.recurrent=gru"], 512, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_space_learns_checkpoints_resumes_evaluates_and_exports(cfg_factory, tmp_path, case):

    extra, steps, bar = CASES[case]
    space = case.removesuffix("_gru")
    base = (
        f"env.id={SPACE_ID}",
        f"+env.kwargs.space={space}",
        "env.vectorization_mode=sync",
        "ppo.gamma=0.5",
        "ppo.update_epochs=4",
        *extra,
    )
    result = train(cfg_factory(*base, f"total_steps={steps}"), tmp_path / "learn")
    if bar is not None:
        assert result.mean_return >= bar, result.mean_return
    # Exact resume: stopped half way at a checkpoint, then resumed, equals one whole run.
    short = (*base, "total_steps=256", "checkpoint.every_steps=128", "ppo.num_steps=16")
    full = train(cfg_factory(*short), tmp_path / "full")
    job = tmp_path / "job"
    with pytest.raises(Interrupted):
        train(cfg_factory(*short), job, on_update=lambda step, _: step >= 128)
    resumed = train(cfg_factory(*short, f"resume={job}"), job)
    a, b = full.agent.net.state_dict(), resumed.agent.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    policy = sharedppo.load(job)
    env = SpaceBandit(space)
    obs, _ = env.reset(seed=1)
    out = policy.predict(obs)
    action = out[0] if isinstance(out, tuple) else out
    assert int(action) in range(4)
    from sharedppo.cli.eval import main as evaluate

    evaluate([str(job), "--episodes", "2"])
    _exports_match(job, tmp_path)


def _exports_match(job, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from sharedppo.cli.export import main as export
    from sharedppo.run.evaluate import load_policy
    from sharedppo.run.export import example_inputs, input_names

    out = tmp_path / "policy.onnx"
    export([str(job), "--out", str(out)])
    net, _, _, obs_norm = load_policy(job, torch.device("cpu"))
    torch.manual_seed(0)
    inputs = example_inputs(net, tuple(obs_norm.rms.mean.shape), batch=3)
    recurrent = net.state_shape is not None
    observations = [x.numpy() for x in (inputs[:-1] if recurrent else inputs)]
    raw = flatten(net.layout, nest(net.layout, observations))
    x = torch.from_numpy(obs_norm(raw.astype(np.float32), update=False))
    with torch.no_grad():
        expected = net.step(x, None, inputs[-1]) if recurrent else net(x)
    feeds = dict(zip(input_names(net), (x.numpy() for x in inputs), strict=True))
    got = ort.InferenceSession(str(out)).run(None, feeds)
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-5, atol=1e-5)
