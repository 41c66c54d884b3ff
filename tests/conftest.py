from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.loss import Scored
from sharedppo.compose import register_configs


def compose_config(*overrides: str) -> DictConfig:
    register_configs()
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        return compose("config", overrides=["device=cpu", *overrides])


@pytest.fixture
def cfg_factory():
    return compose_config


def run_cli(
    *args: str,
    cwd: Path,
    timeout: float = 180,
    module: str = "sharedppo",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI the way a user would, from an unrelated working directory.

    ``module``: sharedppo.report, sharedppo.tune, ... for the other commands; ``env``: extra
    environment variables.
    """
    env = dict(os.environ, HYDRA_FULL_ERROR="0", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Frames(gym.Env):
    """Random uint8 frame stacks, 4 x size x size (the Nature CNN takes 36 and up); action 1
    pays."""

    action_space = gym.spaces.Discrete(3)

    def __init__(self, size: int = 84) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (4, size, size), np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action == 1), False, False, {}


@pytest.fixture
def first_ratios(monkeypatch):
    """The PPO ratio of every update's first minibatch, read before any optimizer step of that
    update: acting and learning see the same network there, so each must be 1.

    Read from the agent's gradient as the update runs; the agent keeps no copy for tests.
    """
    ratios: list[torch.Tensor] = []
    update = PPOAgent.update

    def recording_update(agent: PPOAgent, batch: Batch) -> dict[str, float]:
        gradient = agent.gradient
        forward = gradient.forward

        def first_forward(mb: Batch) -> Scored:
            del gradient.forward  # the later minibatches run the gradient's own forward
            fwd = forward(mb)
            ratios.append(fwd.ratio.detach().clone())
            return fwd

        gradient.forward = first_forward
        try:
            return update(agent, batch)
        finally:
            gradient.__dict__.pop("forward", None)

    monkeypatch.setattr(PPOAgent, "update", recording_update)
    return ratios
