"""Episode bookkeeping: running returns per env, and the window of recent returns.

The window (the last 20 finished episodes) is what "the return" means everywhere: the target
check, ``best.pt``, Optuna's pruning, the closing line and ``summary.json``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import torch


class EpisodeTracker:
    """Running return and length per env; hands back the episodes that finish each step.

    A few in-place vector ops per step, no Python loop over envs.
    """

    def __init__(self, num_envs: int, window: int = 20, target: float | None = None) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.recent: deque[float] = deque(maxlen=window)
        self.episodes = 0
        self.target = target
        self.target_step: int | None = None
        self.best_mean = -math.inf  # best mean over a full window
        # Area under the window-mean curve against env steps (trapezoids), for the AUC.
        self.area = 0.0
        self.first_step: int | None = None
        self.last_point: tuple[int, float] | None = None

    def step(self, reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Add one vector step; returns (returns, lengths) of the episodes it ended, if any."""
        self.returns += reward
        self.lengths += 1
        return self.finish(done) if done.any() else None

    def finish(self, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(returns, lengths) of the episodes ``done`` (bool, per env) ends, their counts
        restarted; ``step`` after the returns and lengths took the step (a pack's rollout
        adds every run's at once)."""
        finished = self.returns[done], self.lengths[done]
        # The next step is gymnasium's reset step (reward 0): it must bring the count to 0.
        self.returns[done] = 0.0
        self.lengths[done] = -1
        return finished

    def record(self, step: int, returns: np.ndarray) -> None:
        """Put finished episodes' returns into the window, at global env step ``step``."""
        self.recent.extend(returns.tolist())
        self.episodes += len(returns)
        mean = self.mean_return
        if self.last_point is None:
            self.first_step = step
        else:
            last_step, last_mean = self.last_point
            self.area += (last_mean + mean) / 2 * (step - last_step)
        self.last_point = (step, mean)
        if len(self.recent) == self.recent.maxlen:
            self.best_mean = max(self.best_mean, mean)
            if self.target_step is None and self.target is not None and mean >= self.target:
                self.target_step = step

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else math.nan

    @property
    def auc_return(self) -> float:
        """The window mean averaged over the steps it spans (the mean itself if one point)."""
        if self.last_point is None:
            return math.nan
        span = self.last_point[0] - self.first_step
        return self.area / span if span > 0 else self.last_point[1]

    def state_dict(self) -> dict[str, Any]:
        return {
            "returns": torch.from_numpy(self.returns.copy()),
            "lengths": torch.from_numpy(self.lengths.copy()),
            "recent": list(self.recent),
            "episodes": self.episodes,
            "target_step": self.target_step,
            "best_mean": self.best_mean,
            "area": self.area,
            "first_step": self.first_step,
            "last_point": None if self.last_point is None else list(self.last_point),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().copy()
        self.lengths = state["lengths"].numpy().copy()
        self.recent.clear()
        self.recent.extend(state["recent"])
        self.episodes = int(state["episodes"])
        self.target_step = state["target_step"]
        self.best_mean = float(state["best_mean"])
        self.area = float(state["area"])
        self.first_step = state["first_step"]
        point = state["last_point"]
        self.last_point = None if point is None else (int(point[0]), float(point[1]))
