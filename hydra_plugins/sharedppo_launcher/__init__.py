"""sharedppo's Hydra launcher: ``hydra/launcher=processes`` (see sharedppo/cli/launcher.py)."""
