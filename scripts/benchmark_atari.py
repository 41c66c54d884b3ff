"""Breakout throughput side by side: sharedppo's Atari variants against Stable-Baselines3.

    pip install -e ".[bench,atari,envpool]"
    python scripts/benchmark_atari.py --seeds 3 --steps 8192

CleanRL's Atari PPO settings on both sides (8 envs x 128 steps, 4 epochs of 4 minibatches
of 256, Nature CNN, the standard wrappers with frame skip 4 and a stack of 4). Every run is
a fresh process and the systems alternate seed by seed (ABBA), so machine drift hits all
alike; the figure to read is each variant's median agent steps/s against SB3's in the same
invocation. Frames/s is agent steps/s x 4 (frame skip). Throughput only: no learning claim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

# sharedppo variants: the preset as shipped, then the speed options a user can pick.
VARIANTS = {
    "sharedppo fp32": ["experiment=breakout"],
    "sharedppo bf16": ["experiment=breakout", "precision=bf16"],
    "sharedppo bf16 envpool 2 threads": [
        "experiment=breakout",
        "precision=bf16",
        "env.backend=envpool",
        "torch_threads=2",
    ],
}


def work_sharedppo(overrides: list[str], seed: int, steps: int) -> float:
    import logging
    from pathlib import Path

    from hydra import compose, initialize_config_module

    from sharedppo.compose import register_configs
    from sharedppo.runner import train

    logging.disable(logging.INFO)
    register_configs()
    extra = [f"seed={seed}", f"total_steps={steps}", "device=cpu", "checkpoint.every_steps=null"]
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        cfg = compose("config", [*overrides, *extra])
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out))
    return result.global_step / result.seconds


def work_sb3(seed: int, steps: int) -> float:
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    envs = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=8, seed=seed), 4)
    model = PPO(
        "CnnPolicy",
        envs,
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        learning_rate=2.5e-4,
        clip_range=0.1,
        ent_coef=0.01,
        vf_coef=0.5,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(steps)
    return model.num_timesteps / (time.perf_counter() - start)


def spawn(name: str, seed: int, steps: int) -> float:
    cmd = [sys.executable, __file__, "--worker", name, str(seed), str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{name} seed {seed} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8192, help="agent steps per run")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, seed, steps = args.worker[0], int(args.worker[1]), int(args.worker[2])
        sps = (
            work_sb3(seed, steps) if name == "sb3" else work_sharedppo(VARIANTS[name], seed, steps)
        )
        print(sps)
        return

    names = [*VARIANTS, "sb3"]
    rates: dict[str, list[float]] = {n: [] for n in names}
    for seed in range(args.seeds):
        for name in names if seed % 2 == 0 else names[::-1]:
            rates[name].append(spawn(name, seed, args.steps))
            print(f"{name:34s} seed {seed}: {rates[name][-1]:,.0f} agent steps/s", flush=True)
    sb3 = statistics.median(rates["sb3"])
    print(f"\nBreakout, {args.steps:,} agent steps, {args.seeds} seeds, medians:\n")
    print("| system | agent steps/s | frames/s | against SB3 |\n|---|---|---|---|")
    for name in names:
        med = statistics.median(rates[name])
        print(f"| {name} | {med:,.0f} | {4 * med:,.0f} | {med / sb3:.2f}x |")
    print(json.dumps({n: r for n, r in rates.items()}))


if __name__ == "__main__":
    main()
