"""The sweep report's files: report.csv, report.md, report.html and report_curves.png."""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path

import numpy as np

from .stats import METHOD, RESAMPLES, Row, Stat, bootstrap_means


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _cell(s: Stat) -> str:
    if math.isnan(s.low):
        return _fmt(s.mean)
    return f"{_fmt(s.mean)} [{_fmt(s.low)}, {_fmt(s.high)}] sd {_fmt(s.sd)}"


def evaluated(rows: list[Row]) -> bool:
    """Whether any job evaluated: only then does the report have evaluation columns."""
    return any(not math.isnan(r.eval.mean) for r in rows)


def _table(keys: list[str], rows: list[Row], threshold: float | None) -> list[list[str]]:
    """Header and cells shared by the Markdown and HTML tables."""
    reach = f"steps to {threshold:g} (median, seeds reaching)" if threshold is not None else None
    header = [*keys, "seeds", "failed", "final return", "best return", "AUC"]
    header += ["eval return"] if evaluated(rows) else []
    body = []
    for r in rows:
        cells = [*r.values.values(), str(r.seeds), str(r.failed)]
        cells += [_cell(r.final), _cell(r.best), _cell(r.auc)]
        cells += [_cell(r.eval)] if evaluated(rows) else []
        if reach:
            cells.append(f"{_fmt(r.steps_to_threshold, 0)} ({r.reached}/{r.seeds})")
        body.append(cells)
    return [header + ([reach] if reach else []), *body]


def _round(x: float, digits: int = 2) -> float | str:
    """A CSV cell: returns to 2 decimals (steps to 0); empty where there is no value."""
    return "" if math.isnan(x) else round(x, digits) if digits else int(round(x))


def write_csv(path: Path, keys: list[str], rows: list[Row]) -> None:
    stats = ["final_return", "best_return", "auc"] + (["eval_return"] if evaluated(rows) else [])
    header = [*keys, "seeds", "failed"]
    for name in stats:
        header += [f"{name}_mean", f"{name}_ci95_low", f"{name}_ci95_high", f"{name}_sd"]
    header += ["reached_threshold", "median_steps_to_threshold"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            line: list[object] = [*r.values.values(), r.seeds, r.failed]
            for s in [r.final, r.best, r.auc, r.eval][: len(stats)]:
                line += [_round(s.mean), _round(s.low), _round(s.high), _round(s.sd)]
            writer.writerow([*line, r.reached, _round(r.steps_to_threshold, 0)])


def write_outputs(folder: Path, rows: list[Row], threshold: float | None, window: int) -> None:
    keys = list(rows[0].values) if rows else []
    write_csv(folder / "report.csv", keys, rows)
    plot_curves(folder / "report_curves.png", rows, threshold)
    method = METHOD.format(window=window, resamples=RESAMPLES)
    if evaluated(rows):
        method += " Eval return: each seed's latest evaluation (mean over its episodes)."
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
