"""Two checkouts (or two configs) of sharedppo side by side: env steps/s, interleaved.

    git worktree add /tmp/before d2268f1
    python scripts/ab_commits.py /tmp/before . --seeds 6 -- ppo.anneal_clip=true total_steps=50000
    python scripts/ab_commits.py . . --b-set network.recurrent=lstm -- total_steps=50000

Answers "did this change make training slower?" on a machine whose speed drifts: every run
is a fresh process, the two checkouts alternate seed by seed (ABBA order), and the figure to
read is the ratio of the medians. Each checkout's package (and its config folder, which
older checkouts keep at the top level) is copied into a temporary folder that is put first on
the path, so an installed sharedppo does not leak in.

Learning is compared too: each run's mean return of its last 20 episodes and, where it
reached ``env.target_return`` (add ``stop_on_target=true`` to time CartPole to 475), the env
steps and seconds it took.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import logging, sys, tempfile
from pathlib import Path
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, sys.argv[1])
logging.disable(logging.INFO)
from hydra import compose, initialize_config_module
try:
    from sharedppo.compose import register_configs
except ImportError:  # before the restructuring
    from sharedppo.config import register_configs
try:
    from sharedppo.run.session import train
except ImportError:  # before the sub-packages (2026-12-04)
    from sharedppo.runner import train
register_configs()
with initialize_config_module("sharedppo.conf", version_base="1.3"):
    cfg = compose("config", [*sys.argv[3:], f"seed={sys.argv[2]}", "device=cpu"])
with tempfile.TemporaryDirectory() as out:
    r = train(cfg, Path(out))
import json
print(json.dumps(dict(
    sps=r.global_step / r.seconds,
    target_step=getattr(r, "target_step", None),
    target_seconds=getattr(r, "target_seconds", None),
    mean_return=r.mean_return,
)))
"""


def stage(checkout: Path, into: Path) -> Path:
    """A folder holding checkout's sharedppo package with its config inside, importable alone."""
    pkg = into / "sharedppo"
    shutil.copytree(checkout / "sharedppo", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    if not (pkg / "conf").is_dir():
        shutil.copytree(checkout / "conf", pkg / "conf")
    (pkg / "conf" / "__init__.py").touch()
    return into


def run(staged: Path, seed: int, overrides: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(staged), str(seed), *overrides],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"{staged}: seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="checkout A (e.g. the commit before a change)")
    parser.add_argument("b", type=Path, help="checkout B (e.g. this one: .)")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--a-set", action="append", default=[], help="an override for A only")
    parser.add_argument("--b-set", action="append", default=[], help="an override for B only")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.overrides = argv[cut + 1 :]  # config overrides for both
    with tempfile.TemporaryDirectory() as tmp:
        staged = {
            "A": stage(args.a.resolve(), Path(tmp) / "a"),
            "B": stage(args.b.resolve(), Path(tmp) / "b"),
        }
        extra = {"A": args.a_set, "B": args.b_set}
        runs: dict[str, list[dict]] = {"A": [], "B": []}
        for seed in range(args.seeds):
            for name in ("A", "B") if seed % 2 == 0 else ("B", "A"):
                r = run(staged[name], seed, [*args.overrides, *extra[name]])
                runs[name].append(r)
                print(
                    f"{name} seed {seed}: {r['sps']:,.0f} env steps/s, return "
                    f"{r['mean_return']:.1f}, target at {r['target_step']} steps",
                    flush=True,
                )
    med = {name: statistics.median(r["sps"] for r in v) for name, v in runs.items()}
    for name, path, extra_set in (("A", args.a, args.a_set), ("B", args.b, args.b_set)):
        print(
            f"{name} {path} {' '.join(extra_set)}: median {med[name]:,.0f} env steps/s, "
            + learning(runs[name])
        )
    print(f"B/A: {med['B'] / med['A']:.2f}")


def learning(runs: list[dict]) -> str:
    """Solved count, median env steps and seconds to the target, median final return."""
    solved = [r for r in runs if r["target_step"] is not None]
    text = f"final return median {statistics.median(r['mean_return'] for r in runs):.1f}"
    if solved:
        steps = statistics.median(r["target_step"] for r in solved)
        secs = statistics.median(r["target_seconds"] for r in solved)
        text += f", target {len(solved)}/{len(runs)} at median {steps:,.0f} steps, {secs:.2f} s"
    return text


if __name__ == "__main__":
    main()
