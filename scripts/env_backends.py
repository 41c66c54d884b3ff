"""Env steps per second of env.backend=gymnasium against env.backend=envpool, rollout only.

    python scripts/env_backends.py               # CartPole x 8 and x 64, Breakout x 8
    python scripts/env_backends.py --seconds 5

Each case builds its envs with sharedppo's own builder (``make_envs``: the Atari wrappers or
EnvPool's preprocessing, the info keys the rollout reads) and steps them with uniformly random
actions drawn beforehand, so no network is involved: this is the env side of a rollout only.
The two backends of a case run one after the other, alternating for ``--rounds`` rounds; the
best round is reported, since a shared machine only ever slows a round down.
"""

from __future__ import annotations

import argparse
import time

# (label, overrides, num_envs). CartPole's gymnasium default is its numpy-vectorised
# implementation; "sync" is the per-env loop that most other ids use (EnvPool ignores the key).
SYNC = "env.vectorization_mode=sync"
CASES = [
    ("CartPole-v1", ["env=cartpole"], 8),
    ("CartPole-v1", ["env=cartpole"], 64),
    ("CartPole-v1 sync", ["env=cartpole", SYNC], 8),
    ("CartPole-v1 sync", ["env=cartpole", SYNC], 64),
    ("ALE/Breakout-v5", ["env=atari"], 8),
]


def steps_per_second(overrides: list[str], backend: str, n: int, seconds: float) -> float:
    import numpy as np
    from omegaconf import OmegaConf

    from sharedppo.compose import compose_checked
    from sharedppo.envs import make_envs

    cfg = OmegaConf.to_object(
        compose_checked([*overrides, f"env.backend={backend}", f"env.num_envs={n}"])
    ).env
    envs, _, _ = make_envs(cfg, seed=0)
    space = envs.single_action_space
    actions = np.random.default_rng(0).integers(0, space.n, (1024, n))
    for t in range(20):  # warm-up
        envs.step(actions[t])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[steps % len(actions)])
        steps += 1
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed per case and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("| env | num_envs | gymnasium env steps/s | envpool env steps/s | ratio |")
    print("|---|---|---|---|---|")
    for env_id, overrides, n in CASES:
        best = {"gymnasium": 0.0, "envpool": 0.0}
        for _ in range(args.rounds):
            for backend in best:
                rate = steps_per_second(overrides, backend, n, args.seconds)
                best[backend] = max(best[backend], rate)
        gym_rate, pool_rate = best["gymnasium"], best["envpool"]
        print(
            f"| {env_id} | {n} | {gym_rate:,.0f} | {pool_rate:,.0f} | {pool_rate / gym_rate:.2f}x |"
        )


if __name__ == "__main__":
    main()
