"""Sweep report: one row per configuration across seeds, read from each job's events.

    sharedppo-report multirun/DATE/TIME [--threshold 475]

Writes report.csv, report.md and report_curves.png into the sweep folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .config import ConfigError
from .extras import require

TAG = "charts/episodic_return"
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t); nan for n < 2."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan
    t = _T975[len(x) - 2] if len(x) - 1 <= len(_T975) else 1.96
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def read_returns(job: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, episode returns) of one job, straight from its event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    steps: list[int] = []
    values: list[float] = []
    for path in sorted(job.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                if v.tag == TAG:
                    steps.append(event.step)
                    if v.HasField("tensor"):
                        values.append(float(tensor_util.make_ndarray(v.tensor)))
                    else:
                        values.append(v.simple_value)
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps)[order], np.asarray(values, dtype=np.float64)[order]


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    csum = np.cumsum(np.insert(values, 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (csum[n] - csum[lo]) / (n - lo)


@dataclass
class Job:
    path: Path
    overrides: list[str]
    seed: str
    status: str
    steps: np.ndarray = field(repr=False)
    returns: np.ndarray = field(repr=False)

    def label(self, common: set[str]) -> str:
        """The overrides that tell this configuration apart: not the seed, not the shared."""
        rest = [o for o in self.overrides if not o.startswith("seed=") and o not in common]
        return " ".join(sorted(rest)) or "(all jobs)"


def read_job(path: Path) -> Job:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "default")
    summary_file = path / "summary.json"
    status = (
        json.loads(summary_file.read_text()).get("status", "completed")
        if (summary_file.is_file())
        else "incomplete"
    )
    steps, returns = read_returns(path)
    return Job(path, overrides, seed, status, steps, returns)


@dataclass
class Row:
    config: str
    seeds: int
    failed: int
    final_mean: float
    final_ci: float
    auc_mean: float
    auc_ci: float
    reached: int
    steps_to_threshold: float
    curves: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)


def summarise(jobs: list[Job], threshold: float | None, window: int) -> list[Row]:
    common = set.intersection(*(set(j.overrides) for j in jobs)) if jobs else set()
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.label(common), []).append(job)
    rows = []
    for config, members in sorted(groups.items()):
        ok = [j for j in members if j.status == "completed" and len(j.returns)]
        finals, aucs, hits, curves = [], [], [], []
        for j in ok:
            curve = rolling_mean(j.returns, window)
            curves.append((j.steps, curve))
            finals.append(float(j.returns[-window:].mean()))
            span = j.steps[-1] - j.steps[0]
            area = float(np.sum((curve[1:] + curve[:-1]) * np.diff(j.steps)) / 2)
            aucs.append(area / span if span > 0 else finals[-1])
            if threshold is not None:
                full = np.arange(len(curve)) >= window - 1
                above = np.flatnonzero(full & (curve >= threshold))
                if len(above):
                    hits.append(float(j.steps[above[0]]))
        final_mean, final_ci = ci95(finals)
        auc_mean, auc_ci = ci95(aucs)
        rows.append(
            Row(
                config,
                len(ok),
                len(members) - len(ok),
                final_mean,
                final_ci,
                auc_mean,
                auc_ci,
                len(hits),
                float(np.median(hits)) if hits else math.nan,
                curves,
            )
        )
    return rows


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def write_outputs(folder: Path, rows: list[Row], threshold: float | None) -> None:
    header = [
        "config",
        "seeds",
        "failed",
        "final_return_mean",
        "final_return_ci95",
        "auc_mean",
        "auc_ci95",
        "reached_threshold",
        "median_steps_to_threshold",
    ]
    with open(folder / "report.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            writer.writerow(
                [
                    r.config,
                    r.seeds,
                    r.failed,
                    r.final_mean,
                    r.final_ci,
                    r.auc_mean,
                    r.auc_ci,
                    r.reached,
                    r.steps_to_threshold,
                ]
            )

    lines = [
        f"# Sweep report: {folder}",
        "",
        "Final return: mean of each seed's last 20 episodes, then mean ± 95% CI (Student's t) "
        "across seeds. AUC: the return averaged over the whole run (area under the curve of "
        "the 20-episode mean, divided by the steps it spans).",
        "",
        "| config | seeds | failed | final return | AUC | steps to "
        f"{threshold if threshold is not None else 'threshold'} (median, seeds reaching) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        reach = (
            f"{_fmt(r.steps_to_threshold, 0)} ({r.reached}/{r.seeds})"
            if threshold is not None
            else "-"
        )
        lines.append(
            f"| `{r.config}` | {r.seeds} | {r.failed} | {_fmt(r.final_mean)} ± "
            f"{_fmt(r.final_ci)} | {_fmt(r.auc_mean)} ± {_fmt(r.auc_ci)} | {reach} |"
        )
    lines += ["", "![learning curves](report_curves.png)", ""]
    (folder / "report.md").write_text("\n".join(lines))
    plot_curves(folder / "report_curves.png", rows, threshold)


def plot_curves(path: Path, rows: list[Row], threshold: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        if not r.curves:
            continue
        end = min(s[-1] for s, _ in r.curves)
        grid = np.linspace(max(s[0] for s, _ in r.curves), end, 200)
        ys = np.stack([np.interp(grid, s, c) for s, c in r.curves])
        mean = ys.mean(0)
        (line,) = ax.plot(grid, mean, label=f"{r.config} (n={r.seeds})")
        if len(ys) > 1:
            half = np.array([ci95(list(col))[1] for col in ys.T])
            ax.fill_between(grid, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1)
    ax.set(
        xlabel="env steps",
        ylabel="episodic return (20-episode mean)",
        title="mean across seeds, band: 95% CI",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def job_folders(sweep: Path) -> list[Path]:
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
        key=lambda p: (len(p.name), p.name),
    )


def report(sweep: Path, threshold: float | None = None, window: int = 20) -> list[Row]:
    folders = job_folders(sweep)
    if not folders:
        raise FileNotFoundError(f"{sweep} holds no job folders (subfolders with .hydra/)")
    workers = min(len(folders), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            jobs = list(pool.map(read_job, folders, chunksize=8))
    else:
        jobs = [read_job(f) for f in folders]
    rows = summarise(jobs, threshold, window)
    write_outputs(sweep, rows, threshold)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sharedppo-report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="a multirun folder, e.g. multirun/DATE/TIME")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="report env steps until the 20-episode mean reaches this",
    )
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        require("report", "sharedppo-report")
        rows = report(args.sweep, args.threshold, args.window)
    except (ConfigError, FileNotFoundError) as err:
        print(f"sharedppo-report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print((args.sweep / "report.md").read_text())
    failed = sum(r.failed for r in rows)
    if failed:
        print(f"{failed} job(s) failed; see their summary.json", file=sys.stderr)


if __name__ == "__main__":
    main()
