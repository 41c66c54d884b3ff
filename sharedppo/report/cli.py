"""``sharedppo-report``: the sweep report of a multirun folder (or of one job folder), or of
several compared in one table and plot (two sweeps, a sweep and a baseline run).

    sharedppo-report multirun/DATE/TIME [--threshold 475]
    sharedppo-report multirun/DATE/TIME outputs/DATE/TIME_baseline --out report/

Writes report.csv, report.md, report.html (self-contained) and report_curves.png into the
folder (several: into --out); see ``report.sweep``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import ConfigError
from ..extras import OneLineParser, finite, require
from ..jobdir import SUMMARY
from .sweep import report


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="sharedppo-report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "sweeps",
        type=Path,
        nargs="+",
        help="multirun folders (multirun/DATE/TIME) or job folders; several are compared",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where the report goes (default: the one folder)"
    )
    parser.add_argument(
        "--threshold",
        type=finite,
        default=None,
        help="report env steps until the 20-episode mean reaches this",
    )
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window {args.window} is not allowed: must be >= 1 (episodes averaged)")
    if len(args.sweeps) > 1 and args.out is None:
        parser.error("several folders are compared: say where the report goes with --out DIR")
    out = args.out or args.sweeps[0]
    try:
        require("report", "sharedppo-report")
        rows = report(args.sweeps, args.threshold, args.window, out)
    except (ConfigError, FileNotFoundError) as err:
        print(f"sharedppo-report: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a read-only sweep folder, a full disk: the user's to fix
        print(
            f"sharedppo-report: error: cannot write {err.filename or out}: {err.strerror}",
            file=sys.stderr,
        )
        sys.exit(2)
    print((out / "report.md").read_text())
    print(f"also written: {out / 'report.html'}, report.csv, report_curves.png")
    failed = sum(r.failed for r in rows)
    if failed:
        print(f"{failed} job(s) failed; see their {SUMMARY}", file=sys.stderr)
