"""Where a job is (env steps, updates, training seconds across sessions) and what its
latest evaluation scored: the trainer's progress, kept in checkpoints."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class EvalResult:
    """One evaluation during training (``eval.every_steps``): on a separate env instance."""

    step: int
    episodes: int
    mean_return: float
    std_return: float

    @classmethod
    def of(cls, step: int, returns: np.ndarray) -> EvalResult:
        return cls(step, len(returns), float(returns.mean()), float(returns.std()))


class Progress:
    """Where the job is: env steps, updates, and training seconds across sessions."""

    def __init__(self) -> None:
        self.global_step = 0
        self.updates = 0
        self.target_seconds: float | None = None
        self.elapsed_before = 0.0
        self.started = time.perf_counter()
        self.session_start_step = 0
        self.last_eval: EvalResult | None = None
        # Wall clock of the job's first step: kept across sessions, so summary.started_at
        # is when the job began, not when it was last resumed.
        self.started_at: float | None = time.time()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        return {
            "global_step": self.global_step,
            "updates": self.updates,
            "elapsed": self.elapsed,
            "target_seconds": self.target_seconds,
            "started_at": self.started_at,
            "eval": None if self.last_eval is None else asdict(self.last_eval),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = self.session_start_step = int(state["global_step"])
        self.updates = int(state["updates"])
        self.target_seconds = state["target_seconds"]
        self.elapsed_before = float(state["elapsed"])
        self.started = time.perf_counter()
        self.started_at = state.get("started_at")  # None: a checkpoint before layout 3
        # Checkpoints written before evaluations were kept have none.
        last_eval = state.get("eval")
        self.last_eval = None if last_eval is None else EvalResult(**last_eval)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
