"""Learning on gymnasium's toy-text envs without wrappers, each from a bare env.id (the
general recipe, conf/ppo/generic.yaml), and Blackjack with its own (`env=blackjack`): the
numbers in docs/benchmarks.md, "Tasks without a recipe".

    nice -n 5 python scripts/toy_text.py [TASK ...] [OVERRIDE ...] [--seeds 0 1 2] [--out DIR]

Prints one JSON line per run: the return the task is judged by (FrozenLake: mean of the last
20 episodes; Taxi: the same; Blackjack: the mean over the last 5,000 episodes). Tasks:
frozenlake, taxi, blackjack (`env=blackjack`), blackjack-generic (a bare env.id); default: the
first three. scripts/blackjack_optimum.py gives a Blackjack policy's exact expected return.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

import sharedppo
from sharedppo.run.episodes import EpisodeTracker

TASKS = {
    "frozenlake": (["env.id=FrozenLake-v1", "env.kwargs.is_slippery=false"], 20, 1.0),
    "taxi": (["env.id=Taxi-v4"], 20, 7.0),
    "blackjack": (["env=blackjack"], 5000, -0.05),
    "blackjack-generic": (["env.id=Blackjack-v1"], 5000, -0.05),
}
DEFAULT_TASKS = ["frozenlake", "taxi", "blackjack"]

RETURNS: list[float] = []
_step = EpisodeTracker.step


def _recording_step(self, reward, done):  # noqa: ANN001, ANN202 (EpisodeTracker's own)
    finished = _step(self, reward, done)
    if finished is not None:
        RETURNS.extend(float(r) for r in finished[0])
    return finished


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("args", nargs="*", help="tasks (default: all), then overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/toy_text")
    args = parser.parse_intermixed_args()
    tasks = [a for a in args.args if a in TASKS] or DEFAULT_TASKS
    extra = [a for a in args.args if a not in TASKS]
    logging.basicConfig(level=logging.WARNING)
    EpisodeTracker.step = _recording_step
    for task in tasks:
        overrides, window, bar = TASKS[task]
        for seed in args.seeds:
            RETURNS.clear()
            start = time.time()
            result = sharedppo.train(
                [*overrides, f"seed={seed}", "checkpoint.every_steps=null", *extra],
                out_dir=f"{args.out}/{task}-{seed}",
            )
            score = float(np.mean(RETURNS[-window:]))
            line = {"task": task, "seed": seed, "steps": result.global_step, "window": window}
            line |= {"score": round(score, 4), "bar": bar, "passed": score >= bar}
            line |= {"episodes": len(RETURNS), "seconds": round(time.time() - start, 1)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
