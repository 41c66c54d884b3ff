"""Sweep report: one row per configuration across seeds, the swept keys in the first columns.

    sharedppo-report multirun/DATE/TIME [--threshold 475]

Writes report.csv, report.md, report.html (self-contained) and report_curves.png into the
sweep folder. Intervals are percentile-bootstrap 95% CIs of the mean over seeds.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .runnames import key_of, varied_keys

TAG = "charts/episodic_return"
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
class Job:
    path: Path
    overrides: list[str]
    status: str
    steps: np.ndarray = field(repr=False)
    returns: np.ndarray = field(repr=False)

    def value(self, key: str) -> str:
        """This job's value of an overridden key (the last given wins); '-' for the default."""
        for override in reversed(self.overrides):
            if key_of(override) == key:
                return override.split("=", 1)[1] if "=" in override else "(deleted)"
        return "-"


def read_job(path: Path) -> Job:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    summary_file = path / "summary.json"
    status = (
        json.loads(summary_file.read_text()).get("status", "completed")
        if (summary_file.is_file())
        else "incomplete"
    )
    steps, returns = read_returns(path)
    return Job(path, overrides, status, steps, returns)


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

    @property
    def config(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "(all jobs)"


def swept_keys(jobs: list[Job]) -> list[str]:
    """Keys whose values differ across the jobs; not the seed (it is what repeats), and not
    ``resume`` (a resumed job continues its own configuration)."""
    return [k for k in varied_keys([j.overrides for j in jobs]) if k not in ("seed", "resume")]


def _natural(text: str) -> list[object]:
    """Sort key that orders numbers by value: 0.1 < 0.3 < 1e-3 as numbers, then text."""
    try:
        return [0, float(text), ""]
    except ValueError:
        return [1, 0.0, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]]


def summarise(jobs: list[Job], threshold: float | None, window: int) -> list[Row]:
    keys = swept_keys(jobs)
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.value(k) for k in keys), []).append(job)
    rows = []
    for values, members in sorted(groups.items(), key=lambda g: [_natural(v) for v in g[0]]):
        ok = [j for j in members if j.status == "completed" and len(j.returns)]
        stats = [curve_stats(j.steps, j.returns, window) for j in ok]
        hits = []
        if threshold is not None:
            for j, s in zip(ok, stats, strict=True):
                full = np.arange(len(s.curve)) >= window - 1
                above = np.flatnonzero(full & (s.curve >= threshold))
                if len(above):
                    hits.append(float(j.steps[above[0]]))
        rows.append(
            Row(
                dict(zip(keys, values, strict=True)),
                len(ok),
                len(members) - len(ok),
                Stat.of([s.final for s in stats]),
                Stat.of([s.best for s in stats]),
                Stat.of([s.auc for s in stats]),
                len(hits),
                float(np.median(hits)) if hits else math.nan,
                [(j.steps, s.curve) for j, s in zip(ok, stats, strict=True)],
            )
        )
    return rows


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _cell(s: Stat) -> str:
    if math.isnan(s.low):
        return _fmt(s.mean)
    return f"{_fmt(s.mean)} [{_fmt(s.low)}, {_fmt(s.high)}] sd {_fmt(s.sd)}"


def _table(keys: list[str], rows: list[Row], threshold: float | None) -> list[list[str]]:
    """Header and cells shared by the Markdown and HTML tables."""
    reach = f"steps to {threshold:g} (median, seeds reaching)" if threshold is not None else None
    header = [*keys, "seeds", "failed", "final return", "best return", "AUC"]
    body = []
    for r in rows:
        cells = [*r.values.values(), str(r.seeds), str(r.failed)]
        cells += [_cell(r.final), _cell(r.best), _cell(r.auc)]
        if reach:
            cells.append(f"{_fmt(r.steps_to_threshold, 0)} ({r.reached}/{r.seeds})")
        body.append(cells)
    return [header + ([reach] if reach else []), *body]


def write_csv(path: Path, keys: list[str], rows: list[Row]) -> None:
    stats = ("final_return", "best_return", "auc")
    header = [*keys, "seeds", "failed"]
    for name in stats:
        header += [f"{name}_mean", f"{name}_ci95_low", f"{name}_ci95_high", f"{name}_sd"]
    header += ["reached_threshold", "median_steps_to_threshold"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            line: list[object] = [*r.values.values(), r.seeds, r.failed]
            for s in (r.final, r.best, r.auc):
                line += [s.mean, s.low, s.high, s.sd]
            writer.writerow([*line, r.reached, r.steps_to_threshold])


def write_outputs(folder: Path, rows: list[Row], threshold: float | None, window: int) -> None:
    keys = list(rows[0].values) if rows else []
    write_csv(folder / "report.csv", keys, rows)
    plot_curves(folder / "report_curves.png", rows, threshold)
    method = METHOD.format(window=window, resamples=RESAMPLES)
    varied = ", ".join(f"`{k}`" for k in keys) or "nothing but the seed"
    header, *body = _table(keys, rows, threshold)
    lines = [
        f"# Sweep report: {folder}",
        "",
        f"Varied: {varied}. Cells: mean [95% bootstrap CI] sd, across seeds.",
        "",
        method,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in body),
        "",
        "![learning curves](report_curves.png)",
        "",
    ]
    (folder / "report.md").write_text("\n".join(lines))
    (folder / "report.html").write_text(
        html_page(folder, header, body, method, keys, folder / "report_curves.png")
    )


def html_page(
    folder: Path,
    header: list[str],
    body: list[list[str]],
    method: str,
    keys: list[str],
    png: Path,
) -> str:
    """One file with the table and the plot (embedded), to open or send as it is."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    trs = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"key" if i < len(keys) else "num"}">{e(c)}</td>'
            for i, c in enumerate(cells)
        )
        + "</tr>"
        for cells in body
    )
    image = base64.b64encode(png.read_bytes()).decode() if png.is_file() else ""
    varied = ", ".join(f"<code>{e(k)}</code>" for k in keys) or "nothing but the seed"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep report: {e(folder.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 75em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; }}
th {{ background: #f3f3f3; }}
td.key {{ font-family: monospace; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
p.method {{ color: #555; font-size: 0.9em; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Sweep report</h1>
<p><code>{e(str(folder))}</code></p>
<p>Varied: {varied}. Cells: mean [95% bootstrap CI] sd, across seeds.</p>
<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>
<p class="method">{e(method)}</p>
<img alt="learning curves: mean across seeds with a 95% bootstrap band"
 src="data:image/png;base64,{image}">
</body></html>
"""


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
            low, high = np.percentile(bootstrap_means(ys, 2_000), [2.5, 97.5], axis=0)
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1)
    ax.set(
        xlabel="env steps",
        ylabel="episodic return (20-episode mean)",
        title="mean across seeds; band: 95% bootstrap CI of the mean",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def job_folders(sweep: Path) -> list[Path]:
    """Job folders (subfolders with .hydra/), whatever they are named, in a natural order."""
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
        key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
    )


def report(sweep: Path, threshold: float | None = None, window: int = 20) -> list[Row]:
    """Read every job of a sweep and write the report files; one row per configuration."""
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
    write_outputs(sweep, rows, threshold, window)
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
        rows = report(args.sweep, args.threshold, args.window)
    except FileNotFoundError as err:
        print(f"sharedppo-report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print((args.sweep / "report.md").read_text())
    print(f"also written: {args.sweep / 'report.html'}, report.csv, report_curves.png")
    failed = sum(r.failed for r in rows)
    if failed:
        print(f"{failed} job(s) failed; see their summary.json", file=sys.stderr)


if __name__ == "__main__":
    main()
