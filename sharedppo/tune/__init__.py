"""``sharedppo-tune``: hyperparameter search on Optuna (search spaces, studies that continue,
parallel workers on this machine or through submitit, pruning, the best trial as a preset).
Also ``python -m sharedppo.tune``.

May import everything below the front ends: ``config``, ``extras``, ``overrides``,
``compose``, ``durable``, ``jobdir``, ``wrappers``, ``envs``, ``nn``, ``algo``, ``tb`` and
``run``.
"""

from .cli import main

__all__ = ["main"]
