"""The ``sharedppo`` command (a Hydra app, checked before Hydra gets it) and the job-level
commands ``sharedppo-eval`` and ``sharedppo-export``. ``SweepFolder`` is the sweep callback
``conf/config.yaml`` names.

May import everything below the front ends: ``config``, ``extras``, ``overrides``,
``compose``, ``durable``, ``jobdir``, ``wrappers``, ``envs``, ``nn``, ``algo``, ``tb``,
``run`` and ``pack`` (the packed launcher trains its packs there).
"""

from .app import FailedJobs, SweepFolder, main

__all__ = ["FailedJobs", "SweepFolder", "main"]
