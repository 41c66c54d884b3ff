"""Observation normalisation and reward scaling with running statistics.

They are part of the model, not of the environment: the collector applies them to what the env
returns, saves their statistics in checkpoints, restores them on resume, and evaluation uses
them frozen. (Gymnasium's normalising wrappers keep their statistics inside the env, where a
checkpoint cannot reach them safely.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

EPS = 1e-8
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _clip(x: np.ndarray, limit: float) -> np.ndarray:
    """np.clip(x, -limit, limit) in place, through the ufuncs: np.clip's Python wrapper cost
    more than the arithmetic on a one-env step. NaN stays NaN, as with np.clip."""
    np.maximum(x, -limit, out=x)
    return np.minimum(x, limit, out=x)


class RunningMeanStd:
    """Mean and variance of everything seen so far, merged batch by batch (Chan et al.)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        # For float32/float64, batch.mean(0) and batch.var(0) spelt out as the same ufuncs (so
        # the same bits): the wrappers' dispatch was 40% of a HalfCheetah env step's
        # normalisation cost. One finite row, the usual case at one env per step, has a
        # variance of exactly zero. Other dtypes keep numpy's wider accumulators.
        b_count = batch.shape[0]
        if batch.dtype not in _FAST_DTYPES:
            b_mean, b_var = batch.mean(0), batch.var(0)
        elif b_count == 1:
            b_mean, b_var = batch.sum(0) / b_count, 0.0
        else:
            b_mean = batch.sum(0) / b_count
            centred = batch - b_mean
            b_var = (centred * centred).sum(0) / b_count
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": torch.tensor(np.asarray(self.mean, dtype=np.float64)),
            "var": torch.tensor(np.asarray(self.var, dtype=np.float64)),
            "count": float(self.count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].numpy().copy()
        self.var = state["var"].numpy().copy()
        self.count = float(state["count"])


class ObsNormalizer:
    """(obs - mean) / std, clipped; the identity when disabled. ``raw``: elements left as
    they are (the image keys of a Dict observation)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        enabled: bool,
        clip: float = 10.0,
        raw: np.ndarray | None = None,
    ) -> None:
        self.enabled = enabled
        self.clip = clip
        self.rms = RunningMeanStd(shape)
        self.raw = raw if raw is not None and raw.any() else None

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if not self.enabled:
            return obs
        if update:
            self.rms.update(obs)
        scaled = (obs - self.rms.mean) / np.sqrt(self.rms.var + EPS)
        _clip(scaled, self.clip)
        if self.raw is not None:
            scaled = np.where(self.raw, obs, scaled)
        return scaled.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return self.rms.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rms.load_state_dict(state)


class RewardScaler:
    """Rewards divided by the running std of the discounted return, clipped.

    Only the learner sees scaled rewards; episode returns are logged on the env's own scale.
    """

    def __init__(self, num_envs: int, gamma: float, enabled: bool, clip: float = 10.0) -> None:
        self.enabled = enabled
        self.gamma = gamma
        self.clip = clip
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, dtype=np.float64)

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return reward
        self.returns = self.returns * self.gamma + reward
        self.rms.update(self.returns)
        self.returns[done] = 0.0
        return _clip(reward / np.sqrt(self.rms.var + EPS), self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {**self.rms.state_dict(), "returns": torch.from_numpy(self.returns.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rms.load_state_dict(state)
        self.returns = state["returns"].numpy().copy()
