"""sharedppo: fast, config-driven PPO with one trunk shared by the policy and value heads.

import sharedppo
result = sharedppo.train(["env=acrobot", "seed=1"], out_dir="runs/acrobot")
policy = sharedppo.load("runs/acrobot")
action = policy.predict(observation)
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load", "train"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that importing one sub-package (sharedppo.config, say) does
    # not load the API's dependencies (torch, gymnasium, Hydra) with it.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'sharedppo' has no attribute {name!r}")
