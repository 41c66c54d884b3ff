"""Side-by-side CartPole-v1 benchmark: sharedppo against Stable-Baselines3 PPO.

    pip install -e ".[bench]"
    python scripts/benchmark.py --seeds 10

Every training run is a fresh subprocess (imports not timed), and the two frameworks
alternate seed by seed so that machine drift hits both alike. Time to threshold counts from
the first environment step until the mean return of the last 20 finished episodes reaches
475, on the environment's own reward. Writes docs/benchmarks.json, the generated part of
docs/benchmarks.md, and two PNGs in docs/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from bench_report import DOCS, THRESHOLD, machine, plot, summarise, write_markdown
from bench_scaling import scaling

# rl-zoo3's tuned CartPole-v1 hyperparameters for SB3 PPO.
ZOO = dict(
    n_envs=8,
    n_steps=32,
    batch_size=256,
    n_epochs=20,
    gae_lambda=0.8,
    gamma=0.98,
    ent_coef=0.0,
    lr=1e-3,
    clip=0.2,
    total=100_000,
)
# sharedppo at those settings: ppo=default is the zoo's recipe, with the clip range annealed
# as the zoo does. "sharedppo" keeps its one shared 64x64 trunk; "sharedppo-separate" uses two
# 64x64 trunks like SB3's MlpPolicy, so both sides do the same arithmetic. "sharedppo-autograd"
# is the shared trunk with the gradient taken by autograd instead of sharedppo/fused.py.
IDENTICAL = ["ppo.anneal_clip=true", "total_steps=100000"]
SETTINGS = {
    "best": {"sharedppo": ["experiment=cartpole_fast"], "sb3": ZOO},
    "identical": {
        "sharedppo": IDENTICAL,
        "sharedppo-separate": [*IDENTICAL, "network.shared=false"],
        "sharedppo-autograd": [*IDENTICAL, "ppo.fused=false"],
        "sb3": ZOO,
    },
}


# --- workers: one training run each, in a fresh process, JSON on the last stdout line -----


def work_sharedppo(overrides: list[str], seed: int) -> dict:
    import logging

    from hydra import compose, initialize_config_module
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from sharedppo.compose import register_configs
    from sharedppo.run.session import train

    logging.disable(logging.INFO)
    register_configs()
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        cfg = compose("config", [*overrides, f"seed={seed}", "stop_on_target=true", "device=cpu"])
    with tempfile.TemporaryDirectory() as out:
        r = train(cfg, Path(out))
        acc = EventAccumulator(out, size_guidance={"scalars": 0})
        acc.Reload()
        events = acc.Scalars("charts/episodic_return") if r.episodes else []
    window: deque[float] = deque(maxlen=20)
    curve = []
    for e in events:
        window.append(e.value)
        curve.append((e.wall_time - r.started_at, e.step, sum(window) / len(window)))
    return dict(
        solved=r.target_step is not None,
        seconds=r.target_seconds,
        steps=r.target_step,
        sps=r.global_step / r.seconds,
        curve=curve[::5],
    )


def work_sb3(params: dict, seed: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class Stop(BaseCallback):
        def _on_training_start(self) -> None:
            self.start = time.perf_counter()
            self.window: deque[float] = deque(maxlen=20)
            self.curve: list[tuple[float, int, float]] = []
            self.solved: tuple[float, int] | None = None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.window.append(info["episode"]["r"])
                    mean = sum(self.window) / len(self.window)
                    now = time.perf_counter() - self.start
                    self.curve.append((now, self.num_timesteps, mean))
                    if len(self.window) == 20 and mean >= THRESHOLD:
                        self.solved = (now, self.num_timesteps)
                        return False
            return True

    torch.manual_seed(seed)
    p = params
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
        learning_rate=lambda f: f * p["lr"],
        clip_range=lambda f: f * p["clip"],
        seed=seed,
        device="cpu",
        verbose=0,
    )
    cb = Stop()
    start = time.perf_counter()
    model.learn(p["total"], callback=cb)
    elapsed = time.perf_counter() - start
    return dict(
        solved=cb.solved is not None,
        seconds=cb.solved[0] if cb.solved else None,
        steps=cb.solved[1] if cb.solved else None,
        sps=model.num_timesteps / elapsed,
        curve=cb.curve[::5],
    )


def spawn(framework: str, setting: str, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", framework, setting, str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} seed {seed} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def whole_process_seconds(runs: int) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sharedppo",
                    "experiment=cartpole_fast",
                    f"seed={i}",
                    f"hydra.run.dir={tmp}/{i}",
                ],
                check=True,
                capture_output=True,
            )
            out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--no-sb3", action="store_true", help="sharedppo only")
    parser.add_argument(
        "--default-seeds",
        type=int,
        default=10,
        help="seeds for the bare `sharedppo` default config (0 skips)",
    )
    parser.add_argument(
        "--seed-experiment-seeds",
        type=int,
        default=3,
        help="seeds for experiment=seed_cartpole (0 skips)",
    )
    parser.add_argument("--envs", type=int, nargs="*", default=[1, 4, 16, 64, 256, 1024, 4096])
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite docs/benchmarks.md from docs/benchmarks.json, run nothing",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        write_markdown(json.loads((DOCS / "benchmarks.json").read_text()))
        return

    if args.worker:
        fw, setting, seed = args.worker
        if fw == "train-rate":
            res = work_sharedppo(json.loads(setting), int(seed))
        elif fw.startswith("sharedppo"):
            spec = SETTINGS[setting][fw] if setting in SETTINGS else json.loads(setting)
            res = work_sharedppo(spec, int(seed))
        else:
            res = work_sb3(SETTINGS[setting]["sb3"], int(seed))
        print(json.dumps(res))
        return

    results: dict[str, dict[str, list]] = {}
    for setting in args.settings:
        frameworks = [fw for fw in SETTINGS[setting] if not (args.no_sb3 and fw == "sb3")]
        results[setting] = {fw: [] for fw in frameworks}
        for seed in range(args.seeds):
            order = frameworks if seed % 2 == 0 else frameworks[::-1]
            for fw in order:
                r = spawn(fw, setting, seed)
                results[setting][fw].append(r)
                print(
                    f"{setting:9s} {fw:9s} seed {seed}: solved={r['solved']} "
                    f"t={r['seconds']} steps={r['steps']} sps={r['sps']:,.0f}",
                    flush=True,
                )

    extra = {}
    for name, overrides, n in (
        ("sharedppo default (bare `sharedppo`)", [], args.default_seeds),
        ("experiment=seed_cartpole", ["experiment=seed_cartpole"], args.seed_experiment_seeds),
    ):
        runs = [spawn("sharedppo", json.dumps(overrides), s) for s in range(n)]
        if runs:
            extra[name] = summarise(runs)
            print(name, extra[name], flush=True)

    whole = whole_process_seconds(5)
    print("whole process", whole, flush=True)
    scale_rows = scaling(args.envs) if args.envs else []

    data = dict(
        command="python scripts/benchmark.py " + " ".join(sys.argv[1:]),
        date=time.strftime("%Y-%m-%d"),
        machine=machine(),
        seeds=args.seeds,
        summary={s: {fw: summarise(r) for fw, r in by.items()} for s, by in results.items()},
        extra=extra,
        whole_process=whole,
        scaling=scale_rows,
    )
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmarks.json").write_text(json.dumps(data, indent=1) + "\n")
    plot(results, scale_rows)
    write_markdown(data)
    print(f"wrote {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
