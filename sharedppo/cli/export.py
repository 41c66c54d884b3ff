"""The ``sharedppo-export`` command: ``sharedppo-export JOB --format onnx --out FILE``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import ConfigError
from ..extras import OneLineParser
from ..run.checkpoint import CheckpointError
from ..run.export import export_onnx


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(
        prog="sharedppo-export", description="Export a trained sharedppo policy."
    )
    parser.add_argument("path", type=Path, help="a job folder or a .pt checkpoint")
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out {args.out} is not allowed: it is a folder; name the file to write")
    if not args.out.parent.is_dir():
        parser.error(
            f"--out {args.out} is not allowed: its folder {args.out.parent} does not exist"
        )
    try:
        inputs, outputs = export_onnx(args.path, args.out)
    except (CheckpointError, ConfigError) as err:
        print(f"sharedppo-export: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # --out in a read-only folder, a full disk
        where = err.filename or args.out
        print(f"sharedppo-export: error: cannot write {where}: {err.strerror}", file=sys.stderr)
        sys.exit(2)
    extra = " and state" if "state" in inputs else ""
    print(f"wrote {args.out}: raw observation{extra} in, {', '.join(outputs)} out")


if __name__ == "__main__":
    main()
