"""Write docs/configuration.md from the schema (every key's default, allowed values and help).

    python scripts/config_reference.py [--check]

``--check`` exits 1 if the page is not current, without writing it (CI and
tests/test_reference.py run the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sharedppo.cli.reference import markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the page is current")
    args = parser.parse_args(argv)
    text = markdown()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            sys.exit(f"{PAGE} is not current: python scripts/config_reference.py")
        return
    PAGE.write_text(text)
    print(PAGE)


if __name__ == "__main__":
    main()
