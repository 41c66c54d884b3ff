"""Sweep report: ``python scripts/report.py multirun/DATE/TIME [--threshold 475]``.

The same as the installed ``sharedppo-report`` command; see sharedppo/report/.
"""

from sharedppo.report.cli import main

if __name__ == "__main__":
    main()
