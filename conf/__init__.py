"""Hydra config tree, shipped inside the package as ``sharedppo.conf``."""
