"""Data-parallel PPO on one machine, side by side in one invocation (docs/benchmarks.md).

For each case, one process with the global batch against ``torchrun --nproc_per_node=2``
with half the envs per rank (the same global batch), one after the other (never together):

- Breakout at CleanRL's settings (``experiment=breakout``: 8 envs x 128 steps in all):
  1 process x 2 torch threads against 2 ranks x 1 thread; frames/s (4 frames per agent step).
- CartPole (bar 475) and Pendulum (bar -250), the presets' budgets: whether and when the
  last-20-episode mean reaches the bar (rank 0's episodes under torchrun).

    python scripts/ddp_bench.py --out /tmp/ddp_bench [--breakout-steps 16384] [--seeds 0]
    python scripts/ddp_bench.py --only breakout   # or cartpole, pendulum
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]


def cases(breakout_steps: int) -> dict[str, tuple[list[str], int, list[str], list[str]]]:
    """name -> (shared overrides, global envs, one process's extra, each rank's extra)."""
    return {
        "breakout": (
            ["experiment=breakout", f"total_steps={breakout_steps}"],
            8,
            ["torch_threads=2"],
            ["torch_threads=1"],
        ),
        "cartpole": (["env=cartpole", "total_steps=100000"], 8, ["torch_threads=1"], []),
        "pendulum": (["env=pendulum", "total_steps=200000"], 8, ["torch_threads=1"], []),
    }


def run(cmd: list[str], folder: Path) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [*cmd, f"hydra.run.dir={folder}", "checkpoint.every_steps=null"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((folder / "summary.json").read_text())
    return summary | {"wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/ddp_bench"))
    parser.add_argument("--breakout-steps", type=int, default=16384)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="breakout,cartpole,pendulum")
    parser.add_argument("--reverse", action="store_true", help="2 ranks first, then 1 process")
    args = parser.parse_args()
    rows = []
    for name, (shared, envs, one_extra, rank_extra) in cases(args.breakout_steps).items():
        if name not in args.only.split(","):
            continue
        for seed in args.seeds.split(","):
            base = [*shared, f"seed={seed}"]
            one = [sys.executable, "-m", "sharedppo", *base, f"env.num_envs={envs}", *one_extra]
            two = [*TORCHRUN, "-m", "sharedppo", *base, f"env.num_envs={envs // 2}", *rank_extra]
            order = [("1 process", one), ("2 ranks", two)]
            for label, cmd in order[::-1] if args.reverse else order:
                s = run(cmd, args.out / f"{name}-{seed}-{label.replace(' ', '')}")
                frames = 4 if name == "breakout" else 1
                rows.append(
                    {
                        "case": name,
                        "seed": seed,
                        "launch": label,
                        "steps": s["global_step"],
                        "seconds": round(s["seconds"], 1),
                        "wall_s": round(s["wall_s"], 1),
                        "per_s": round(frames * s["global_step"] / s["seconds"]),
                        "target_step": s["target_step"],
                        "final": round(s["mean_return"], 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print(
        "| case | seed | launch | env steps | training s | wall s | frames or steps/s | "
        "reached the bar at | final 20-episode mean |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['seed']} | {r['launch']} | {r['steps']:,} | {r['seconds']} | "
            f"{r['wall_s']} | {r['per_s']:,} | {r['target_step'] or '-'} | {r['final']} |"
        )


if __name__ == "__main__":
    main()
