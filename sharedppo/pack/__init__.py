"""Packed sweeps: the jobs of a sweep that differ only in seed and scalar hyperparameters
train together in one process, as one population (parameters stacked on a leading run axis),
each still a job with its own folder, records and checkpoints in the single-run layout.

May import ``config``, ``extras``, ``overrides``, ``durable``, ``jobdir``, ``envs``, ``nn``,
``algo``, ``tb`` and ``run``; the launcher that groups a sweep's jobs lives in ``cli``.
"""
