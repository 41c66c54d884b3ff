"""The network: the actor-critic whose trunk the policy and value heads share, the action
distributions its policy head builds, the encoders of Dict observations, the recurrent core,
weight initialisation, mixed precision and the running-statistics normalisers.

May import ``config`` and ``envs`` (the observation layout of ``envs.spaces``); plain torch
otherwise: no Hydra, OmegaConf or TensorBoard, so a trained network loads without them.
"""
