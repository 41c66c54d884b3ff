"""Env steps per second of each env backend, rollout only and in full training.

    pip install -e ".[bench,atari,mujoco,envpool]"
    python scripts/env_backends.py               # table: CartPole x 8 and x 64, Breakout x 8
    python scripts/env_backends.py --scan        # HalfCheetah: env steps/s against num_envs, PNG

Rollout only: the envs ``make_envs`` builds for each backend (the Atari wrappers or EnvPool's
preprocessing, the info keys the rollout reads), stepped with uniformly random actions drawn
beforehand, so no network is involved. Full training (``--scan``): ``experiment=halfcheetah``
with the same batch per update (num_envs x num_steps = 2,048), so the update costs the same at
every num_envs and the curve moves with the env side and acting. Backends alternate within
each round for ``--rounds`` rounds; the best round is reported, since a shared machine only
ever slows a round down.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
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
# The scan's backends, as overrides.
BACKENDS = {
    "gymnasium sync": ["env.backend=gymnasium", SYNC],
    "gymnasium async": ["env.backend=gymnasium", "env.vectorization_mode=async"],
    "envpool": ["env.backend=envpool"],
}
SCAN_ENVS = [1, 2, 4, 8, 16]
BATCH = 2048


def rollout_rate(overrides: list[str], n: int, seconds: float) -> float:
    import numpy as np
    from omegaconf import OmegaConf

    from sharedppo.compose import compose_checked
    from sharedppo.envs.build import make_envs

    cfg = OmegaConf.to_object(compose_checked([*overrides, f"env.num_envs={n}"])).env
    envs, _, _ = make_envs(cfg, seed=0)
    space = envs.single_action_space
    space.seed(0)
    actions = [np.stack([space.sample() for _ in range(n)]) for _ in range(256)]
    for t in range(20):  # warm-up
        envs.step(actions[t])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[steps % len(actions)])
        steps += 1
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * n / elapsed


def training_rate(overrides: list[str], n: int, steps: int) -> float:
    from sharedppo.compose import compose_checked
    from sharedppo.run.session import train

    logging.disable(logging.INFO)
    cfg = compose_checked(
        [
            *overrides,
            f"env.num_envs={n}",
            f"ppo.num_steps={BATCH // n}",
            f"total_steps={steps}",
            "checkpoint.every_steps=null",
            "device=cpu",
        ]
    )
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out))
    return result.global_step / result.seconds


def table(args: argparse.Namespace) -> None:
    print("| env | num_envs | gymnasium env steps/s | envpool env steps/s | ratio |")
    print("|---|---|---|---|---|")
    for env_id, overrides, n in CASES:
        best = {"gymnasium": 0.0, "envpool": 0.0}
        for _ in range(args.rounds):
            for backend in best:
                rate = rollout_rate([*overrides, f"env.backend={backend}"], n, args.seconds)
                best[backend] = max(best[backend], rate)
        gym_rate, pool_rate = best["gymnasium"], best["envpool"]
        print(
            f"| {env_id} | {n} | {gym_rate:,.0f} | {pool_rate:,.0f} | {pool_rate / gym_rate:.2f}x |"
        )


def scan(args: argparse.Namespace) -> None:
    env = ["experiment=halfcheetah"]
    modes = ("rollout", "training")
    best = {(mode, b, n): 0.0 for mode in modes for b in BACKENDS for n in SCAN_ENVS}
    for r in range(args.rounds):
        for n in SCAN_ENVS:
            order = list(BACKENDS) if r % 2 == 0 else list(BACKENDS)[::-1]
            for backend in order:
                overrides = [*env, *BACKENDS[backend]]
                rates = {
                    "rollout": rollout_rate(overrides, n, args.seconds),
                    "training": training_rate(overrides, n, args.train_steps),
                }
                for mode, rate in rates.items():
                    best[mode, backend, n] = max(best[mode, backend, n], rate)
                print(f"round {r} {backend:16s} x{n:<2d} {rates}", flush=True)
    print("\n| mode | num_envs | " + " | ".join(BACKENDS) + " |")
    print("|---|---|" + "---|" * len(BACKENDS))
    for mode in ("rollout", "training"):
        for n in SCAN_ENVS:
            cells = " | ".join(f"{best[mode, b, n]:,.0f}" for b in BACKENDS)
            print(f"| {mode} | {n} | {cells} |")
    plot(best, DOCS / "backends_sps_vs_envs.png")


def plot(best: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, mode in zip(axes, ("rollout", "training"), strict=True):
        for backend in BACKENDS:
            ax.plot(SCAN_ENVS, [best[mode, backend, n] for n in SCAN_ENVS], "o-", label=backend)
        ax.set_xscale("log", base=2)
        ax.set_xticks(SCAN_ENVS, [str(n) for n in SCAN_ENVS])
        ax.set_xlabel("num_envs")
        ax.set_ylabel("env steps/s")
        title = "random actions, no network" if mode == "rollout" else "full PPO training"
        ax.set_title(f"HalfCheetah-v5: {title}")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scan", action="store_true", help="HalfCheetah num_envs scan + PNG")
    parser.add_argument("--seconds", type=float, default=2.0, help="rollout timing per case")
    parser.add_argument("--train-steps", type=int, default=16384, help="env steps per training")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scan(args) if args.scan else table(args)


if __name__ == "__main__":
    main()
