"""Dict observations: each key encoded (images by the CNN, vectors by a linear layer),
normalised per vector key, an action_mask key honoured."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import sharedppo
from sharedppo.algo.gradient import Fused
from sharedppo.config import ConfigError
from sharedppo.envs.spaces import FlattenDict, dict_layout, flatten
from sharedppo.nn.normalize import ObsNormalizer

DICT_ID = "SharedPPOTest/DictBandit-v0"
BAD_DICT_ID = "SharedPPOTest/BadDict-v0"


class DictBandit(gym.Env):
    """Pick the goal shown as a Discrete key (+1); a camera image and a noise vector ride
    along; one action other than the goal is masked out each step."""

    observation_space = gym.spaces.Dict(
        {
            "goal": gym.spaces.Discrete(4, start=1),
            "noise": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
            "camera": gym.spaces.Box(0, 255, (1, 36, 36), np.uint8),
            "action_mask": gym.spaces.MultiBinary(4),
        }
    )
    action_space = gym.spaces.Discrete(4)
    invalid_taken = 0

    def _obs(self) -> dict:
        self.goal = int(self.np_random.integers(4))
        self.mask = np.ones(4, np.int8)
        self.mask[(self.goal + self.np_random.integers(1, 4)) % 4] = 0
        return {
            "goal": self.goal + 1,
            "noise": self.np_random.uniform(-1, 1, 3).astype(np.float32),
            "camera": self.np_random.integers(0, 256, (1, 36, 36), dtype=np.uint8),
            "action_mask": self.mask,
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        DictBandit.invalid_taken += int(not self.mask[int(action)])
        reward = 1.0 if int(action) == self.goal else 0.0
        self.t += 1
        return self._obs(), reward, False, self.t >= 10, {}


class BadDict(DictBandit):
    observation_space = gym.spaces.Dict({"text": gym.spaces.Text(5)})


for env_id, entry in ((DICT_ID, DictBandit), (BAD_DICT_ID, BadDict)):
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry)


def test_layout_flattens_each_key():
    layout = dict_layout(DictBandit.observation_space)
    # gymnasium's Dict keeps its keys sorted; the mask is no input.
    assert [p.key for p in layout] == ["camera", "goal", "noise"]
    assert [p.image for p in layout] == [True, False, False]
    obs = {"goal": 3, "noise": np.ones(3), "camera": np.full((1, 36, 36), 255, np.uint8)}
    flat = flatten(layout, obs)
    goal = layout[1]
    assert flat.shape == (36 * 36 + 4 + 3,) and flat[goal.start : goal.end].tolist() == [0, 0, 1, 0]
    batch = flatten(layout, {k: np.stack([v, v]) for k, v in obs.items()})
    assert batch.shape == (2, flat.shape[0]) and np.array_equal(batch[1], flat)
    env = FlattenDict(DictBandit())
    _, info = env.reset(seed=0)
    assert info["action_mask"].shape == (4,)


def test_normalisation_is_per_vector_key_and_leaves_images():
    raw = np.array([False, False, True, True])
    norm = ObsNormalizer((4,), True, raw=raw)
    obs = np.array([[1.0, 5.0, 200.0, 0.0], [3.0, 7.0, 100.0, 50.0]], np.float32)
    out = norm(obs, update=True)
    assert np.array_equal(out[:, 2:], obs[:, 2:])
    assert np.allclose(out[:, :2].mean(0), 0.0, atol=1e-3)


def test_dict_env_learns_with_its_mask_and_predicts_from_raw_dicts(tmp_path):
    DictBandit.invalid_taken = 0
    overrides = [
        f"env.id={DICT_ID}",
        "ppo=default",  # the recipe this bandit was sized for (a bare env.id gets ppo=generic)
        "env.vectorization_mode=sync",
        "env.normalize_obs=true",
        "ppo.gamma=0.5",
        "ppo.update_epochs=4",
        "total_steps=12288",
        "checkpoint.every_steps=null",
    ]
    result = sharedppo.train(overrides, out_dir=tmp_path / "job")
    assert DictBandit.invalid_taken == 0
    assert not isinstance(result.agent.gradient, Fused)  # per-key encoders: autograd
    assert isinstance(result.agent.net.encoders[0].encoders[0], torch.nn.Sequential)  # CNN
    # Three valid actions, one of them right: random play scores about 3.3 of 10.
    assert result.mean_return >= 8.0, result.mean_return
    policy = sharedppo.load(tmp_path / "job")
    env = DictBandit()
    obs, _ = env.reset(seed=5)
    hits = 0
    for _ in range(20):
        action = int(policy.predict(obs))
        assert obs["action_mask"][action]
        obs, reward, *_ = env.step(action)
        hits += reward
    assert hits >= 15


def test_an_unsupported_dict_entry_is_one_line(cfg_factory, tmp_path):
    from sharedppo.run.session import train

    with pytest.raises(ConfigError, match="observation key 'text'") as err:
        train(cfg_factory(f"env.id={BAD_DICT_ID}", "env.vectorization_mode=sync"), tmp_path)
    assert "\n" not in str(err.value)


def test_box_of_any_shape_and_multibinary_actions(cfg_factory, tmp_path):
    from sharedppo.config import NetworkConfig
    from sharedppo.nn.actor_critic import ActorCritic

    net = ActorCritic((2, 3), gym.spaces.MultiBinary(5), NetworkConfig())
    out, _ = net(torch.randn(7, 2, 3))
    actions, logp = net.dist.sample(out)
    assert net.dist.to_env(actions.numpy()).dtype == np.int8 and logp.shape == (7,)
    box = ActorCritic(4, gym.spaces.Box(-1.0, 1.0, (2, 2)), NetworkConfig())
    assert box.dist.to_env(np.zeros((3, 4), np.float32)).shape == (3, 2, 2)
