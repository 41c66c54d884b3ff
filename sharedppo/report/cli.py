"""``sharedppo-report``: the sweep report of a multirun folder (or of one job folder).

    sharedppo-report multirun/DATE/TIME [--threshold 475]

Writes report.csv, report.md, report.html (self-contained) and report_curves.png into the
folder; see ``report.sweep``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import ConfigError
from ..extras import require
from ..jobdir import SUMMARY
from .sweep import report


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
    except OSError as err:  # a read-only sweep folder, a full disk: the user's to fix
        print(
            f"sharedppo-report: error: cannot write {err.filename or args.sweep}: {err.strerror}",
            file=sys.stderr,
        )
        sys.exit(2)
    print((args.sweep / "report.md").read_text())
    print(f"also written: {args.sweep / 'report.html'}, report.csv, report_curves.png")
    failed = sum(r.failed for r in rows)
    if failed:
        print(f"{failed} job(s) failed; see their {SUMMARY}", file=sys.stderr)
