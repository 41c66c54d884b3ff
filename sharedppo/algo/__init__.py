"""The algorithm, as pure as it can be: GAE (a function of a rollout's tensors), the batch
views the update reads, the PPO loss, the two ways to its gradient (hand-derived and
autograd), the flat Adam, and the agent that acts and updates.

May import ``config`` and ``nn``; no gymnasium, Hydra, OmegaConf or TensorBoard.
"""
