"""``sharedppo-report``: the sweep report (one row per configuration across seeds, bootstrap
intervals, curves) read from job folders. Also ``python -m sharedppo.report``.

May import ``config``, ``extras``, ``overrides``, ``compose``, ``durable``, ``jobdir``,
``wrappers`` and ``tb``: it reads what runs wrote, and never trains.
"""

from .cli import main
from .sweep import report

__all__ = ["main", "report"]
