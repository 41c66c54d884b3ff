"""sharedppo: fast, config-driven PPO with one trunk shared by the policy and value heads."""

__version__ = "0.1.0"
