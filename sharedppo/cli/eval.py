"""The ``sharedppo-eval`` command: evaluate a job folder or checkpoint and log the result
into the job's TensorBoard events."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ..config import ConfigError
from ..extras import OneLineParser
from ..jobdir import JobDir
from ..run.checkpoint import CheckpointError
from ..run.evaluate import evaluate, load_policy
from ..tb.logger import log_eval


def main(argv: list[str] | None = None) -> None:
    """``sharedppo-eval JOB_FOLDER_OR_CHECKPOINT [--episodes N] [--stochastic] [--video]``."""
    parser = OneLineParser(
        prog="sharedppo-eval", description="Evaluate a trained sharedppo policy."
    )
    parser.add_argument("path", type=Path, help="a job folder or a .pt checkpoint")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--stochastic", action="store_true", help="sample instead of argmax")
    parser.add_argument("--video", action="store_true", help="record MP4s into the job folder")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not 1 <= args.episodes <= 1_000_000:
        parser.error(f"--episodes {args.episodes} is not allowed: must be in [1, 1000000]")
    if not 0 <= args.seed < 2**32:
        parser.error(f"--seed {args.seed} is not allowed: must be in [0, 2^32 - 1]")
    try:
        device = eval_device(args.device)
        net, cfg, state, obs_norm = load_policy(args.path, device)
        job = JobDir.of(args.path)
        video_dir = job.videos if args.video else None
        returns, lengths = evaluate(
            net, cfg.env, args.episodes, not args.stochastic, args.seed, device, video_dir, obs_norm
        )
        mode = "stochastic" if args.stochastic else "deterministic"
        step = int(state["progress"]["global_step"])
        print(
            f"{JobDir.checkpoint_file(args.path)} (step {step:,}), {cfg.env.id} {mode}, "
            f"{len(returns)} episodes: return {returns.mean():.2f} ± {returns.std():.2f}, "
            f"length {lengths.mean():.1f} ± {lengths.std():.1f}"
        )
        log_eval(job.path, step, returns, lengths, video_dir)
    except (CheckpointError, ConfigError) as err:
        print(f"sharedppo-eval: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a read-only or full job folder: the user's to fix
        where = os.fsdecode(err.filename) if err.filename else args.path
        print(f"sharedppo-eval: error: cannot write {where}: {err.strerror}", file=sys.stderr)
        sys.exit(2)


def eval_device(name: str) -> torch.device:
    """``--device``: one torch knows and this machine has, checked before the checkpoint is
    read (a CUDA map location on a CPU machine would read as a corrupt file)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name} is not allowed: choose cpu, cuda or cuda:N") from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise ConfigError(f"--device {name} is not allowed: this machine has {count} CUDA devices")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name} is not allowed: choose cpu, cuda or cuda:N")
    return device


if __name__ == "__main__":
    main()
