"""What a small torch call costs between two MuJoCo steps, against in a loop of its own.

    pip install -e ".[mujoco]"
    python scripts/step_interference.py [--env HalfCheetah-v5] [--calls 20000]

A one-env MuJoCo rollout alternates a vector env's step with a few dozen torch calls on one row.
Each call is timed alone (a loop of that call only) and interleaved (call, env step, call,
...), and the env step likewise; the table shows how much each costs more when they take
turns. This is the measurement behind ``policy.GaussianDraws`` (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F


def calls() -> dict[str, Callable[[], object]]:
    x, h = torch.randn(1, 17), torch.randn(1, 64)
    w1, w2 = torch.randn(64, 17), torch.randn(64, 64)
    xs = np.random.default_rng(0).standard_normal(17)
    return {
        "torch.empty(1)": lambda: torch.empty(1),
        "torch.tanh, 1 x 64": lambda: torch.tanh(h),
        "F.linear, 1 x 17 -> 64": lambda: F.linear(x, w1),
        "2-layer tanh MLP, 1 row": lambda: torch.tanh(F.linear(torch.tanh(F.linear(x, w1)), w2)),
        "np.tanh, 17 values": lambda: np.tanh(xs),
    }


def per_call_us(fn: Callable[[], object], step: Callable[[], object] | None, n: int) -> tuple:
    """(us per call of fn, us per env step) over n rounds; step None: fn alone."""
    clock = time.perf_counter
    in_fn = in_step = 0.0
    for _ in range(n):
        a = clock()
        fn()
        b = clock()
        if step is not None:
            step()
        in_fn += b - a
        in_step += clock() - b
    return in_fn / n * 1e6, in_step / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # One env in gymnasium's sync vector env (it resets itself), as sharedppo steps it.
    env = gym.make_vec(args.env, 1, vectorization_mode="sync")
    env.reset(seed=0)
    space = env.action_space
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, *space.shape))
    actions = actions.astype(space.dtype)
    i = 0

    def step() -> None:
        nonlocal i
        i = (i + 1) % len(actions)
        env.step(actions[i])

    env_alone = per_call_us(step, None, args.calls)[0]
    print(f"{args.env} step alone: {env_alone:.1f} us")
    print("\n| call | alone (us) | between env steps (us) | env step beside it (us) |")
    print("|---|---|---|---|")
    for name, fn in calls().items():
        per_call_us(fn, None, 1000)  # warm
        alone = per_call_us(fn, None, args.calls)[0]
        between, env_step = per_call_us(fn, step, args.calls)
        print(f"| {name} | {alone:.2f} | {between:.2f} | {env_step:.1f} |")
    env.close()


if __name__ == "__main__":
    main()
