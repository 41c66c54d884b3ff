"""TensorBoard logging: one run per job folder, HParams in the same folder."""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

log = logging.getLogger("sharedppo")

METRIC = "hparams/final_return"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


class Logger:
    """Writes event files straight into ``log_dir``; keeps the last 20 episode returns."""

    def __init__(self, log_dir: Path, config: dict[str, Any], window: int = 20) -> None:
        self.writer = SummaryWriter(log_dir=str(log_dir), flush_secs=10)
        self.recent: deque[float] = deque(maxlen=window)
        self.episodes = 0
        self._last_print = time.perf_counter()
        # add_hparams would open a new timestamped sub-run; writing the three summaries into
        # this run keeps the hyperparameters next to the curves they produced.
        params = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v))
            for k, v in flatten(config).items()
        }
        for summary in hparams(params, {METRIC: 0.0}):
            self.writer.file_writer.add_summary(summary)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    def episodes_finished(self, step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        for ret, length in zip(returns.tolist(), lengths.tolist(), strict=True):
            self.writer.add_scalar("charts/episodic_return", ret, step)
            self.writer.add_scalar("charts/episodic_length", length, step)
            self.recent.append(ret)
        self.episodes += len(returns)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.add_scalar(METRIC, self.mean_return, step)

    def progress(self, step: int, total: int, sps: float, every_s: float = 5.0) -> None:
        now = time.perf_counter()
        if now - self._last_print >= every_s or step >= total:
            self._last_print = now
            log.info(
                "step %d/%d  SPS %.0f  episodes %d  mean return (last %d) %.1f",
                step,
                total,
                sps,
                self.episodes,
                len(self.recent),
                self.mean_return,
            )

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
