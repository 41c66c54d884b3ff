"""Packed sweeps against unpacked ones and against Stable-Baselines3, side by side.

    pip install -e ".[bench,sweep]"
    python scripts/bench_packed.py sweep --reps 2          # the 16-job CartPole sweep
    python scripts/bench_packed.py sweep --no-sb3 --extra device=cuda   # on a GPU
    python scripts/bench_packed.py scaling --runs 1 2 4 8 16 32 64 --steps 20000
    python scripts/bench_packed.py learning --seeds 16     # CartPole; --env pendulum too

``sweep``: 8 seeds x 2 learning rates of the default CartPole recipe at its default budget,
timed from the command to its last summary: ``hydra/launcher=packed`` (n_jobs=2: two packs,
one per core), ``hydra/launcher=joblib`` with n_jobs=2, and SB3 PPO at the same settings
running the same 16 runs two at a time (a fresh process each, as a sweep starts them). The
three alternate within each repetition so that drift of this shared machine hits all alike.
``scaling``: wall-clock against the number of runs, packed against the processes launcher.
``learning``: the same seeds packed and unpacked: solved rate and env steps to the target.
Results go to stdout as JSON lines and, with --out, to a JSON file for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark import ZOO

LRS = (3e-4, 1e-3)
LAUNCHERS = {
    "packed": ["hydra/launcher=packed", "hydra.launcher.n_jobs=2"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "processes": ["hydra/launcher=processes", "hydra.launcher.n_jobs=2"],
}


def sharedppo_sweep(launcher: str, seeds: int, extra: list[str], folder: Path) -> dict:
    """One sweep from the command line; (seconds from command to exit, its summaries)."""
    seed_list = ",".join(str(s) for s in range(seeds))
    cmd = [
        "sharedppo",
        "-m",
        *LAUNCHERS[launcher],
        f"seed={seed_list}",
        *extra,
        f"hydra.sweep.dir={folder}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=folder.parent, timeout=7200)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{launcher} sweep failed:\n{proc.stderr[-3000:]}")
    summaries = [json.loads(p.read_text()) for p in sorted(folder.glob("*/summary.json"))]
    return {"launcher": launcher, "seconds": seconds, "jobs": len(summaries), "runs": summaries}


def sb3_worker(seed: int, lr: float, total: int) -> None:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    p = ZOO
    env = make_vec_env("CartPole-v1", n_envs=p["n_envs"], seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=p["n_steps"],
        batch_size=p["batch_size"],
        n_epochs=p["n_epochs"],
        gae_lambda=p["gae_lambda"],
        gamma=p["gamma"],
        ent_coef=p["ent_coef"],
        learning_rate=lambda f: f * lr,
        clip_range=0.2,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total)


def sb3_sweep(seeds: int, total: int, at_once: int = 2) -> dict:
    """The same runs in SB3, ``at_once`` processes at a time, as a sweep launcher runs them."""
    jobs = [(s, lr) for lr in LRS for s in range(seeds)]
    start = time.perf_counter()
    running: list[subprocess.Popen] = []
    while jobs or running:
        while jobs and len(running) < at_once:
            seed, lr = jobs.pop(0)
            cmd = [sys.executable, __file__, "--sb3-worker", str(seed), str(lr), str(total)]
            running.append(subprocess.Popen(cmd))
        for proc in list(running):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise RuntimeError("an SB3 run failed")
                running.remove(proc)
        time.sleep(0.05)
    return {"launcher": "sb3", "seconds": time.perf_counter() - start, "jobs": 2 * seeds}


def sweep(
    reps: int, seeds: int, total: int | None, preset: list[str], sb3: bool, also: list[str]
) -> list[dict]:
    """The sweep packed, under joblib and (the default recipe only) in SB3, interleaved;
    ``also``: overrides for every sharedppo job besides the two learning rates."""
    lrs = [] if preset else [f"ppo.lr={','.join(str(lr) for lr in LRS)}"]
    extra = [*lrs, *([f"total_steps={total}"] if total else []), *preset, *also]
    names = ("packed", "joblib", "sb3") if sb3 and not preset else ("packed", "joblib")
    results = []
    for rep in range(reps):
        for name in names:
            if name == "sb3":
                res = sb3_sweep(seeds, total or 100_000)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    res = sharedppo_sweep(name, seeds, extra, Path(tmp) / "sweep")
                res["completed"] = sum(r["status"] == "completed" for r in res.pop("runs"))
            res["rep"] = rep
            print(json.dumps(res), flush=True)
            results.append(res)
    by = {n: statistics.median(r["seconds"] for r in results if r["launcher"] == n) for n in names}
    ratios = {f"{n}/packed": by[n] / by["packed"] for n in names if n != "packed"}
    print(json.dumps({"median_seconds": by, **ratios}), flush=True)
    return results


def scaling(runs: list[int], steps: int) -> list[dict]:
    results = []
    for n in runs:
        for name in ("packed", "processes"):
            with tempfile.TemporaryDirectory() as tmp:
                res = sharedppo_sweep(name, n, [f"total_steps={steps}"], Path(tmp) / "sweep")
            res.pop("runs")
            res["n"] = n
            print(json.dumps(res), flush=True)
            results.append(res)
    return results


def learning(seeds: int, env: str) -> list[dict]:
    extra = [f"env={env}"]
    results = []
    for name in ("packed", "processes"):
        with tempfile.TemporaryDirectory() as tmp:
            res = sharedppo_sweep(name, seeds, extra, Path(tmp) / "sweep")
        runs = res.pop("runs")
        steps = sorted(r["target_step"] for r in runs if r.get("target_step") is not None)
        res |= {
            "env": env,
            "solved": f"{len(steps)}/{len(runs)}",
            "steps_to_target": steps,
            "final_mean_returns": sorted(round(r["mean_return"], 1) for r in runs),
        }
        if steps:
            q = statistics.quantiles(steps, n=4) if len(steps) > 1 else [steps[0]] * 3
            res["steps_quartiles"] = q
        print(json.dumps(res), flush=True)
        results.append(res)
    return results


def main() -> None:
    if sys.argv[1:2] == ["--sb3-worker"]:
        sb3_worker(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--reps", type=int, default=2)
    s.add_argument("--seeds", type=int, default=8)
    s.add_argument("--steps", type=int, default=None, help="total_steps (default: the env's)")
    s.add_argument("--no-sb3", action="store_true")
    s.add_argument(
        "--preset", nargs="*", default=[], help="overrides for every job instead of the two lrs"
    )
    s.add_argument("--extra", nargs="*", default=[], help="overrides besides the two lrs")
    c = sub.add_parser("scaling")
    c.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    c.add_argument("--steps", type=int, default=20_000)
    ln = sub.add_parser("learning")
    ln.add_argument("--seeds", type=int, default=16)
    ln.add_argument("--env", default="cartpole")
    for p in (s, c, ln):
        p.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.what == "sweep":
        results = sweep(args.reps, args.seeds, args.steps, args.preset, not args.no_sb3, args.extra)
    elif args.what == "scaling":
        results = scaling(args.runs, args.steps)
    else:
        results = learning(args.seeds, args.env)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
