"""The ``sharedppo-eval`` command: evaluate a job folder or checkpoint and log the result
into the job's TensorBoard events."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..config import ConfigError
from ..jobdir import JobDir
from ..run.checkpoint import CheckpointError
from ..run.evaluate import evaluate, load_policy
from ..tb.logger import log_eval


def main(argv: list[str] | None = None) -> None:
    """``sharedppo-eval JOB_FOLDER_OR_CHECKPOINT [--episodes N] [--stochastic] [--video]``."""
    parser = argparse.ArgumentParser(
        prog="sharedppo-eval", description="Evaluate a trained sharedppo policy."
    )
    parser.add_argument("path", type=Path, help="a job folder or a .pt checkpoint")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--stochastic", action="store_true", help="sample instead of argmax")
    parser.add_argument("--video", action="store_true", help="record MP4s into the job folder")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        device = torch.device(args.device)
        net, cfg, state, obs_norm = load_policy(args.path, device)
        job = JobDir.of(args.path)
        video_dir = job.videos if args.video else None
        returns, lengths = evaluate(
            net, cfg.env, args.episodes, not args.stochastic, args.seed, device, video_dir, obs_norm
        )
    except (CheckpointError, ConfigError) as err:
        print(f"sharedppo-eval: error: {err}", file=sys.stderr)
        sys.exit(2)
    mode = "stochastic" if args.stochastic else "deterministic"
    step = int(state["progress"]["global_step"])
    print(
        f"{JobDir.checkpoint_file(args.path)} (step {step:,}), {cfg.env.id} {mode}, "
        f"{len(returns)} episodes: return {returns.mean():.2f} ± {returns.std():.2f}, "
        f"length {lengths.mean():.1f} ± {lengths.std():.1f}"
    )
    log_eval(job.path, step, returns, lengths, video_dir)


if __name__ == "__main__":
    main()
