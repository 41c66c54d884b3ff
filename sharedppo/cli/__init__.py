"""The ``sharedppo`` command (a Hydra app, checked before Hydra gets it) and the job-level
commands ``sharedppo-eval`` and ``sharedppo-export``. ``SweepFolder`` is the sweep callback
``conf/config.yaml`` names.

May import everything below the front ends: ``config``, ``extras``, ``overrides``,
``compose``, ``durable``, ``jobdir``, ``wrappers``, ``envs``, ``nn``, ``algo``, ``tb``,
``run`` and ``pack`` (the packed launcher trains its packs there).
"""

import os

# The command forks sweep jobs (cli.contain, the processes and packed launchers); a CUDA query
# through the CUDA runtime here (torch.cuda.is_available, device_count) would leave every
# forked job unable to use CUDA. NVML answers those two without touching the runtime.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

from .app import FailedJobs, SweepFolder, main

__all__ = ["FailedJobs", "SweepFolder", "main"]
