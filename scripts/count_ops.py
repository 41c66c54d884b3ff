"""Dispatched torch ops per PPO update step (deterministic, unlike timings on a shared machine).

    python scripts/count_ops.py                    # this checkout
    python scripts/count_ops.py --src /tmp/old     # another checkout of sharedppo, to compare
    python scripts/count_ops.py --act              # per act (the rollout's step) instead

Counts every aten op one update (20 epochs, batch 256, 64x64 shared trunk, Discrete(2) head,
the fused gradient unless --autograd) dispatches, with torch's TorchDispatchMode. With --act:
the ops of one ``PPOAgent.act`` on 8 CartPole rows (plain, with dropout and an action mask,
through an LSTM core) and of one Gaussian act from the rollout's draws (Pendulum).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def update_fixture(autograd: bool) -> tuple:
    """(agent, batch): a CartPole agent (64x64 shared trunk, 20 epochs) and a batch of 256
    rows, after one warm-up update, so lazy initialisation stays out of what is measured.
    Also scripts/profile_ops.py's; imports whichever sharedppo is first on the path."""
    import gymnasium as gym
    import torch

    from sharedppo.config import NetworkConfig, PPOConfig

    try:
        from sharedppo.algo.agent import PPOAgent
        from sharedppo.algo.batch import Batch
        from sharedppo.nn.actor_critic import ActorCritic
    except ImportError:  # a checkout from before the sub-packages (2026-12-04)
        from sharedppo.agent import PPOAgent
        from sharedppo.memory import Batch
        from sharedppo.network import ActorCritic

    torch.manual_seed(0)
    net = ActorCritic(4, gym.spaces.Discrete(2), NetworkConfig())
    agent = PPOAgent(net, PPOConfig(update_epochs=20, fused=not autograd))
    obs = torch.randn(256, 4)
    with torch.no_grad():
        actions, logprobs, values, masks = agent.act(obs)
    batch = Batch(obs, actions, logprobs, values, torch.randn(256), values + 1, masks)
    agent.update(batch)
    return agent, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="import sharedppo from this checkout instead")
    parser.add_argument("--autograd", action="store_true", help="ppo.fused=false")
    parser.add_argument("--act", action="store_true", help="count one act, not one update")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    if args.act:
        count_act()
        return

    from torch.utils._python_dispatch import TorchDispatchMode

    agent, batch = update_fixture(args.autograd)

    ops: Counter[str] = Counter()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            ops[str(func)] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        agent.update(batch)
    print(f"{sum(ops.values()) / 20:.2f} dispatched ops per update step ({sharedppo_where()})")


class _Counter:
    """Counts the aten ops dispatched inside ``with counter:``."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        ops = self.ops = Counter()

        class Count(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
                ops[str(func)] += 1
                return func(*args, **(kwargs or {}))

        self.mode = Count()

    def __enter__(self) -> None:
        self.ops.clear()
        self.mode.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.mode.__exit__(*exc)


def count_act() -> None:
    """One act on 8 rows, as the rollout makes it (under inference_mode), per variant."""
    import gymnasium as gym
    import torch

    from sharedppo.config import NetworkConfig, PPOConfig

    try:
        from sharedppo.algo.agent import PPOAgent
        from sharedppo.nn.actor_critic import ActorCritic
    except ImportError:  # a checkout from before the sub-packages (2026-12-04)
        from sharedppo.agent import PPOAgent
        from sharedppo.network import ActorCritic

    torch.manual_seed(0)
    obs, valid = torch.randn(8, 4), torch.ones(8, 2, dtype=torch.bool)
    # Made outside the count: the rollout carries the state and converts the starts itself.
    state, starts = torch.zeros(8, 2, 64), torch.zeros(8)
    count = _Counter()
    variants = {
        "plain": ({}, lambda agent: agent.act(obs)),
        "dropout+mask": ({"dropout": 0.2}, lambda agent: agent.act(obs, valid)),
        "lstm": (
            {"recurrent": "lstm"},
            lambda agent: agent.act_recurrent(obs, None, state, starts),
        ),
    }
    for name, (net_kwargs, act) in variants.items():
        net = ActorCritic(4, gym.spaces.Discrete(2), NetworkConfig(**net_kwargs))
        agent = PPOAgent(net, PPOConfig())
        with torch.inference_mode():
            act(agent)  # warm-up
            with count:
                act(agent)
        print(f"{name:>14}: {sum(count.ops.values())} ops  {dict(count.ops)}")
    net = ActorCritic(3, gym.spaces.Box(-2.0, 2.0, (1,)), NetworkConfig())
    agent = PPOAgent(net, PPOConfig())
    pendulum_obs = obs[:, :3].contiguous()
    with torch.inference_mode():
        draws = net.dist.draws(torch.zeros(4, 8, 1))
        agent.act(pendulum_obs, None, draws)
        with count:
            agent.act(pendulum_obs, None, draws)
    print(f"{'gaussian draws':>14}: {sum(count.ops.values())} ops  {dict(count.ops)}")
    print(f"({sharedppo_where()})")


def sharedppo_where() -> str:
    import sharedppo

    return sharedppo.__file__.rsplit("/", 2)[0]


if __name__ == "__main__":
    main()
