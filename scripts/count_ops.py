"""Dispatched torch ops per PPO update step (deterministic, unlike timings on a shared machine).

    python scripts/count_ops.py                    # this checkout
    python scripts/count_ops.py --src /tmp/old     # another checkout of sharedppo, to compare

Counts every aten op one update (20 epochs, batch 256, 64x64 shared trunk, Discrete(2) head,
the fused gradient unless --autograd) dispatches, with torch's TorchDispatchMode.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="import sharedppo from this checkout instead")
    parser.add_argument("--autograd", action="store_true", help="ppo.fused=false")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, args.src)

    import gymnasium as gym
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from sharedppo.algo.agent import PPOAgent
    from sharedppo.algo.batch import Batch
    from sharedppo.config import NetworkConfig, PPOConfig
    from sharedppo.nn.actor_critic import ActorCritic

    torch.manual_seed(0)
    net = ActorCritic(4, gym.spaces.Discrete(2), NetworkConfig())
    agent = PPOAgent(net, PPOConfig(update_epochs=20, fused=not args.autograd))
    obs = torch.randn(256, 4)
    with torch.no_grad():
        actions, logprobs, values, masks = agent.act(obs)
    batch = Batch(obs, actions, logprobs, values, torch.randn(256), values + 1, masks)
    agent.update(batch)  # warm-up: lazy initialisation stays out of the count

    ops: Counter[str] = Counter()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            ops[str(func)] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        agent.update(batch)
    print(f"{sum(ops.values()) / 20:.2f} dispatched ops per update step ({sharedppo_where()})")


def sharedppo_where() -> str:
    import sharedppo

    return sharedppo.__file__.rsplit("/", 2)[0]


if __name__ == "__main__":
    main()
