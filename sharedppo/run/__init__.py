"""One training job: the trainer and its loop, rollout collection and memory, episodes,
checkpoints and resume, stop signals, evaluation, export, and the job's result.

May import ``config``, ``extras``, ``overrides``, ``durable``, ``jobdir``, ``envs``, ``nn``,
``algo`` and ``tb``; never a front end (``cli``, ``tune``, ``report``, ``api``) and never Hydra's
composition (``compose``): a run takes a composed config.
"""
