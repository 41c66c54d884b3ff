"""The training loop's parts keep to their own: the trainer's build fails on one path, the
memory stores without knowing GAE, the agent snapshots its weights, the logger names tags."""

from __future__ import annotations

import pytest
import torch

from sharedppo.run.memory import RolloutMemory


def test_the_memory_takes_its_shape_by_name_and_no_gae_parameters():
    with pytest.raises(TypeError):
        RolloutMemory(4, 2, (3,), torch.device("cpu"))
    with pytest.raises(TypeError):
        RolloutMemory(num_steps=4, num_envs=2, obs_shape=(3,), device="cpu", gamma=0.9)
