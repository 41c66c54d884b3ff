"""The sweep report's statistics: bootstrap intervals over seeds, and per-run curve figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RESAMPLES = 10_000
METHOD = (
    "Each seed's final return is the mean of its last {window} episodes; best is the highest "
    "{window}-episode mean; AUC is the return averaged over the whole run (area under the "
    "{window}-episode mean, divided by the steps it spans). Across seeds: mean, standard "
    "deviation (sd) and a 95% confidence interval from the percentile bootstrap ({resamples:,} "
    "resamples of the seeds, fixed random seed). With few seeds the bootstrap interval lies "
    "within the seeds' range and understates the uncertainty; the sd shows the spread. "
    "The plot's band is the same bootstrap interval of the mean curve, pointwise."
)


def bootstrap_ci(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the 95% percentile-bootstrap interval of the mean; nan for n < 2."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan, math.nan
    means = bootstrap_means(x[:, None], resamples, seed)[:, 0]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(x.mean()), float(low), float(high)


def bootstrap_means(ys: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """Means over resampled rows of ys (seeds x points): resamples x points."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ys), size=(resamples, len(ys)))
    return ys[idx].mean(axis=1)


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    csum = np.cumsum(np.insert(values, 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (csum[n] - csum[lo]) / (n - lo)


@dataclass
class CurveStats:
    final: float  # mean of the last `window` episodes
    best: float  # highest mean of `window` consecutive episodes (of all, if fewer)
    auc: float  # the rolling mean averaged over the env steps it spans
    curve: np.ndarray = field(repr=False)  # rolling mean, one value per episode


def curve_stats(steps: np.ndarray, returns: np.ndarray, window: int) -> CurveStats:
    if len(returns) == 0:
        return CurveStats(math.nan, math.nan, math.nan, np.empty(0))
    curve = rolling_mean(returns, window)
    final = float(returns[-window:].mean())
    best = float(curve[window - 1 :].max()) if len(curve) >= window else float(curve[-1])
    span = steps[-1] - steps[0]
    area = float(np.sum((curve[1:] + curve[:-1]) * np.diff(steps)) / 2)
    return CurveStats(final, best, area / span if span > 0 else final, curve)


@dataclass
class Stat:
    mean: float
    low: float
    high: float
    sd: float

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        mean, low, high = bootstrap_ci(values)
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return cls(mean, low, high, sd)


@dataclass
class Row:
    values: dict[str, str]  # swept key -> this configuration's value
    seeds: int
    failed: int
    final: Stat
    best: Stat
    auc: Stat
    reached: int
    steps_to_threshold: float
    curves: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    # The seeds' latest evaluation returns (eval.every_steps, sharedppo-eval); n/a: none ran.
    eval: Stat = field(default_factory=lambda: Stat.of([]))

    @property
    def config(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "(all jobs)"
