"""Atari and MuJoCo throughput side by side: sharedppo's variants against Stable-Baselines3.

    pip install -e ".[bench,atari,mujoco,envpool]"
    python scripts/benchmark_workloads.py --section atari --seeds 3 --steps 8192
    python scripts/benchmark_workloads.py --section mujoco --seeds 5 --steps 20480
    python scripts/benchmark_workloads.py --section atari --only "sharedppo breakout_fast"

CleanRL's settings on both sides. Atari: Breakout, 8 envs x 128 steps, 4 epochs of 4
minibatches of 256, Nature CNN, the standard wrappers with frame skip 4 and a stack of 4.
MuJoCo: HalfCheetah-v5, 1 env x 2048 steps, 10 epochs of 32 minibatches of 64, separate
64x64 tanh networks, observation and reward normalisation. Every run is a fresh process and
the systems alternate seed by seed (ABBA), so machine drift hits all alike; the figure to
read is each variant's median against SB3's in the same invocation. sharedppo runs as its
presets set it (one torch thread unless a variant says otherwise), SB3 as its users run it
(torch's default threads). Throughput only: no learning claim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

# sharedppo variants per section: the preset as shipped, then the speed options a user can pick.
VARIANTS = {
    "atari": {
        "sharedppo breakout": ["experiment=breakout"],
        "sharedppo breakout bf16": ["experiment=breakout", "precision=bf16"],
        "sharedppo breakout_fast (envpool, all cores)": ["experiment=breakout_fast"],
        "sharedppo breakout_fast bf16": ["experiment=breakout_fast", "precision=bf16"],
    },
    "mujoco": {
        "sharedppo": ["experiment=halfcheetah"],
        "sharedppo bf16": ["experiment=halfcheetah", "precision=bf16"],
        "sharedppo envpool": ["experiment=halfcheetah", "env.backend=envpool"],
    },
}
# Transitions per agent step counted by both frameworks: frames for Atari (frame skip 4).
FRAMES = {"atari": 4, "mujoco": 1}


def work_sharedppo(overrides: list[str], seed: int, steps: int) -> float:
    import logging
    from pathlib import Path

    from hydra import compose, initialize_config_module

    from sharedppo.compose import register_configs
    from sharedppo.run.session import train

    logging.disable(logging.INFO)
    register_configs()
    extra = [f"seed={seed}", f"total_steps={steps}", "device=cpu", "checkpoint.every_steps=null"]
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        cfg = compose("config", [*overrides, *extra])
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out))
    return result.global_step / result.seconds


def sb3_atari(seed: int):
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    envs = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=8, seed=seed), 4)
    return PPO(
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


def sb3_mujoco(seed: int):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    # SB3's PPO defaults are CleanRL's MuJoCo settings (2048 steps, batch 64, 10 epochs).
    env = VecNormalize(make_vec_env("HalfCheetah-v5", n_envs=1, seed=seed))
    return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)


def work_sb3(section: str, seed: int, steps: int) -> float:
    model = sb3_atari(seed) if section == "atari" else sb3_mujoco(seed)
    start = time.perf_counter()
    model.learn(steps)
    return model.num_timesteps / (time.perf_counter() - start)


def spawn(section: str, name: str, seed: int, steps: int) -> float:
    cmd = [sys.executable, __file__, "--section", section, "--worker", name, str(seed), str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{name} seed {seed} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def report(section: str, steps: int, rates: dict[str, list[float]]) -> None:
    sb3 = statistics.median(rates["sb3"])
    seeds = len(rates["sb3"])
    print(f"\n{section}, {steps:,} agent steps per run, {seeds} seeds, medians:\n")
    if FRAMES[section] > 1:
        print("| system | agent steps/s | frames/s | against SB3 |\n|---|---|---|---|")
    else:
        print("| system | env steps/s | against SB3 |\n|---|---|---|")
    for name, runs in rates.items():
        med = statistics.median(runs)
        frames = f" {FRAMES[section] * med:,.0f} |" if FRAMES[section] > 1 else ""
        print(f"| {name} | {med:,.0f} |{frames} {med / sb3:.2f}x |")
    print(json.dumps({"section": section, "steps": steps, "rates": rates}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="agent steps per run")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="these sharedppo variants (SB3 always runs)"
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    section = args.section
    if args.worker:
        name, seed, steps = args.worker[0], int(args.worker[1]), int(args.worker[2])
        if name == "sb3":
            print(work_sb3(section, seed, steps))
        else:
            print(work_sharedppo(VARIANTS[section][name], seed, steps))
        return

    steps = args.steps or {"atari": 8192, "mujoco": 20480}[section]
    chosen = args.only or list(VARIANTS[section])
    unknown = sorted(set(chosen) - set(VARIANTS[section]))
    if unknown:
        parser.error(f"--only {unknown}: the {section} variants are {list(VARIANTS[section])}")
    names = [*chosen, "sb3"]
    rates: dict[str, list[float]] = {n: [] for n in names}
    for seed in range(args.seeds):
        for name in names if seed % 2 == 0 else names[::-1]:
            rates[name].append(spawn(section, name, seed, steps))
            print(f"{name:52s} seed {seed}: {rates[name][-1]:,.0f} steps/s", flush=True)
    report(section, steps, rates)


if __name__ == "__main__":
    main()
