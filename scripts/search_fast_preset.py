"""Random search for `experiment=cartpole_fast`'s learning settings, by env steps to 475.

The preset's rollout shape (64 envs x 16 steps, 4 full-batch epochs, ReLU 64x64) is kept, so
its env steps/s are kept and env steps to 475 measure time to 475 without the machine's
noise. Trials train in this process, one after another; each config is judged by the median
over its seeds (a run that never reaches 475 counts as the budget), on seeds that the
benchmark (`scripts/benchmark.py`, seeds 0-9) does not use.

    python scripts/search_fast_preset.py --configs 40 --seeds 5      # JSON lines on stdout
    python scripts/search_fast_preset.py --check '{"ppo.lr": 0.01}' --seeds 10 --first 2000
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_module

from sharedppo.compose import register_configs
from sharedppo.run.session import train

BUDGET = 300_000
SPACE = {
    "ppo.lr": lambda r: round(10 ** r.uniform(-2.5, -1.5), 5),
    "ppo.gamma": lambda r: r.choice([0.95, 0.97, 0.98, 0.99]),
    "ppo.lam": lambda r: r.choice([0.8, 0.85, 0.9, 0.95]),
    "ppo.clip_ratio": lambda r: r.choice([0.1, 0.2, 0.3, 0.4]),
    "ppo.max_grad_norm": lambda r: r.choice([0.5, 1.0, 2.0, 5.0]),
    "ppo.vf_coef": lambda r: r.choice([0.25, 0.5, 1.0]),
}


def steps_to_475(params: dict, seed: int) -> int:
    overrides = ["experiment=cartpole_fast", f"seed={seed}", f"total_steps={BUDGET}"]
    overrides += [f"{k}={v}" for k, v in params.items()]
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        cfg = compose("config", overrides=["device=cpu", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / "job")
    return BUDGET if result.target_step is None else result.target_step


def judge(params: dict, seeds: list[int]) -> dict:
    steps = [steps_to_475(params, s) for s in seeds]
    solved = sum(s < BUDGET for s in steps)
    return {
        "params": params,
        "median_steps": statistics.median(steps),
        "solved": solved,
        "steps": steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first", type=int, default=1000, help="first seed")
    ap.add_argument("--check", help="judge this one config (JSON) instead of searching")
    args = ap.parse_args()
    logging.getLogger("sharedppo").setLevel(logging.WARNING)
    register_configs()
    seeds = list(range(args.first, args.first + args.seeds))
    if args.check is not None:
        print(json.dumps(judge(json.loads(args.check), seeds)), flush=True)
        return
    rng = random.Random(0)
    print(json.dumps(judge({}, seeds) | {"preset": True}), flush=True)
    for _ in range(args.configs):
        params = {k: draw(rng) for k, draw in SPACE.items()}
        print(json.dumps(judge(params, seeds)), flush=True)


if __name__ == "__main__":
    main()
