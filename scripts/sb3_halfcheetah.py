"""Stable-Baselines3 PPO on HalfCheetah-v5 for 1M steps: the SB3 side of the MuJoCo table.

    pip install -e ".[bench,mujoco]"
    python scripts/sb3_halfcheetah.py --seed 0

SB3's default PPO settings (2048 steps, batch 64, 10 epochs, gamma 0.99, lam 0.95, lr 3e-4,
clip 0.2; CleanRL's are the same) with VecNormalize on observations and rewards, as in
sharedppo's experiment=halfcheetah. Prints one JSON line: final mean return of the last 20
episodes, wall seconds and env steps per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize


class Progress(BaseCallback):
    """One stderr line per 100k steps: these runs take most of an hour on two cores."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start

    def _on_step(self) -> bool:
        if self.num_timesteps % 100_000 == 0:
            returns = [ep["r"] for ep in self.model.ep_info_buffer][-20:]
            mean = float(np.mean(returns)) if returns else float("nan")
            seconds = time.perf_counter() - self.start
            print(f"{self.num_timesteps} steps {seconds:.0f} s return {mean:.1f}", file=sys.stderr)
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = VecNormalize(make_vec_env("HalfCheetah-v5", n_envs=1, seed=args.seed))
    model = PPO("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(args.steps, callback=Progress(start))
    seconds = time.perf_counter() - start
    returns = [ep["r"] for ep in model.ep_info_buffer][-20:]
    print(
        json.dumps(
            {
                "seed": args.seed,
                "final_return": float(np.mean(returns)),
                "seconds": seconds,
                "sps": args.steps / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
