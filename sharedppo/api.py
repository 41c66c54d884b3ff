"""The Python API: ``sharedppo.train`` and ``sharedppo.load``.

``train`` writes the same job folder as the command line (``.hydra/``, TensorBoard events,
checkpoints, ``summary.json``), so ``sharedppo resume=``, ``sharedppo-eval`` and
``sharedppo-report`` work on it. ``load`` gives a policy that acts on raw observations.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .compose import bare_env_id, compose_checked, recipe_line
from .envs.build import API_NAMESPACE
from .envs.spaces import MASK_KEY, flatten
from .jobdir import JobDir
from .nn.act import act_on_host
from .run.evaluate import load_policy
from .run.export import export_model
from .run.result import closing_line
from .run.session import TrainResult
from .run.session import train as _train

EnvSource = str | Callable[..., gym.Env]


def _register(env: Callable[..., gym.Env]) -> str:
    """An env class or factory made in this process, registered under an id of its name."""
    name = re.sub(r"[^A-Za-z0-9_]", "", getattr(env, "__name__", "Env")) or "Env"
    env_id = f"{API_NAMESPACE}{name}-v0"
    if env_id in gym.registry and gym.registry[env_id].entry_point is not env:
        del gym.registry[env_id]
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=env)
    return env_id


def train(
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    env: EnvSource | None = None,
) -> TrainResult:
    """Train as ``sharedppo OVERRIDES...`` would, into ``out_dir`` (default
    ``outputs/DATE/TIME``); returns the result, the trained agent as ``result.agent``.

    ``env``: an id (registered in this process, or ``module:EnvId``), or an env class or
    factory to register under ``sharedppo_api/NAME-v0``. A folder trained on a class or
    factory is read back with ``load(JOB, env=...)`` given the same class; for the command
    line (``sharedppo-eval``, ``resume=``) register the env under an id in a module and
    train with ``env.id=module:EnvId-v0`` instead. The job folder is ``result.out_dir``.
    """
    overrides = list(overrides or [])
    if env is not None:
        overrides.append(f"env.id={env if isinstance(env, str) else _register(env)}")
    overrides = bare_env_id(overrides)
    cfg = compose_checked(overrides)
    folder = Path(out_dir or time.strftime("outputs/%Y-%m-%d/%H-%M-%S"))
    job = JobDir(folder)
    if not logging.getLogger().handlers:  # a script or notebook: show the progress lines
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("sharedppo")
    log.info(recipe_line(overrides, cfg.total_steps))
    # Owned before .hydra/ is written: another job's folder is refused, not overwritten.
    with job.own():
        if cfg.resume is None:
            job.check_fresh()
        job.write_job(cfg, overrides)
        result = _train(cfg, folder)
    log.info("%s; results in %s", closing_line(result), folder)  # as the command closes
    return result


class Policy:
    """A trained policy: raw observations in (the saved normalisation applied inside),
    actions out, in the env's own action format. A recurrent policy also takes and returns
    its state (:meth:`predict`)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.source = JobDir.checkpoint_file(path)
        self.net, self.config, _, self.obs_norm = load_policy(Path(path), self.device)
        self.layout = self.net.layout
        self.net.eval()

    def predict(
        self,
        obs: Any,
        state: np.ndarray | None = None,
        deterministic: bool = True,
        action_mask: Any = None,
    ) -> Any:
        """The action for one observation, or a batch of actions for a batch of them;
        ``action_mask`` (bool per action) rules out invalid actions; a Dict observation's
        own ``action_mask`` key is used when none is given.

        A recurrent policy (``network.recurrent``) returns ``(action, state)``: pass the
        state back with the next observation of the same episode, and ``state=None`` at an
        episode start (in a batch, zero the rows of the envs that start one). Its shape is
        ``state_shape`` for one observation, with a leading batch dimension for a batch.
        """
        if self.layout is not None:
            if action_mask is None and isinstance(obs, dict) and MASK_KEY in obs:
                action_mask = obs[MASK_KEY]
            obs = flatten(self.layout, obs)
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == len(self.net_input_shape)
        batch = x[None] if single else x
        if batch.shape[1:] != self.net_input_shape:
            raise ValueError(
                f"observation has shape {x.shape}; this policy takes {self.net_input_shape} "
                f"or a batch of them"
            )
        recurrent = self.net.state_shape is not None
        if state is not None and not recurrent:
            raise ValueError("this policy is not recurrent: predict takes no state")
        if action_mask is not None:  # one per policy-head output of each row
            shape = torch.Size((len(batch), self.net.dist.num_outputs))
            action_mask = self._mask(action_mask, shape)
        state_in = self._state(state, len(batch), single) if recurrent else None
        actions, new_state = act_on_host(
            self.net, batch, self.device, self.obs_norm, action_mask, state_in, None, deterministic
        )
        if recurrent:
            new_state = new_state.cpu().numpy()
            return (actions[0], new_state[0]) if single else (actions, new_state)
        return actions[0] if single else actions

    def _mask(self, action_mask: Any, shape: torch.Size) -> torch.Tensor:
        valid = np.asarray(action_mask, dtype=bool)
        if valid.size != shape.numel():
            raise ValueError(
                f"action_mask has shape {valid.shape}; this policy needs {tuple(shape[1:])} "
                "per observation"
            )
        valid = valid.reshape(shape)
        if not valid.any(axis=-1).all():
            raise ValueError("action_mask rules out every action of an observation")
        return torch.as_tensor(valid, device=self.device)

    @property
    def state_shape(self) -> tuple[int, int] | None:
        """One observation's recurrent state, or None for a policy without a core."""
        return self.net.state_shape

    def _state(self, state: Any, batch: int, single: bool) -> torch.Tensor:
        if state is None:
            return self.net.initial_state(batch, self.device)
        x = torch.as_tensor(np.asarray(state, dtype=np.float32), device=self.device)
        x = x[None] if single else x
        expected = (batch, *self.net.state_shape)
        if tuple(x.shape) != expected:
            want = expected[1:] if single else expected
            raise ValueError(f"state has shape {tuple(np.shape(state))}; this policy needs {want}")
        return x

    @property
    def net_input_shape(self) -> tuple[int, ...]:
        return self.obs_norm.rms.mean.shape

    def export(self, path: str | Path) -> Path:
        """Write this policy as one ONNX file (the ``export`` extra), as ``sharedppo-export``
        does: raw observations in, the saved normalisation inside, (logits or mean, value)
        out. For a job trained on an env class, ``load(JOB, env=...)`` then this."""
        out = Path(path)
        export_model(self.net, self.obs_norm, out)
        return out

    def __repr__(self) -> str:
        cfg = self.config
        core = f", {cfg.network.recurrent}" if cfg.network.recurrent else ""
        trunk = "shared" if cfg.network.shared else "separate"
        return (
            f"Policy({cfg.env.id}, {cfg.network.type} {trunk} trunk{core}, "
            f"{type(self.net.dist).__name__} actions, obs {tuple(self.net_input_shape)}, "
            f"from {str(self.source)!r})"
        )


def load(path: str | Path, device: str = "cpu", env: EnvSource | None = None) -> Policy:
    """A job folder (its ``checkpoints/last.pt``) or a checkpoint file, ready to act.

    ``env``: the env class or factory a job was trained on through ``train(env=...)``,
    registered again under the same id (the job's config names only that id)."""
    if env is not None and not isinstance(env, str):
        _register(env)
    return Policy(path, device)
