"""TensorBoard: the logger of one job's curves (``charts/``, ``losses/``) and what the
dashboards show beyond them (the HParams experiment, the Custom Scalars layout).

May import ``config``, ``overrides`` and ``jobdir``.
"""
