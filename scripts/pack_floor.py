"""The fastest a packed sweep could be on this machine, against the sweeps it is compared with.

    pip install -e ".[bench,sweep]"
    python scripts/pack_floor.py --reps 2            # issue 26's 16-job CartPole sweep

A packed CartPole sweep cannot take less than (a) the command's fixed cost, (b) the batched
matrix products of every update step of its pack and (c) the env steps of its rollouts: the
arithmetic and the physics no packing removes. This script measures each in one process on
this machine, adds them up as the floor of issue 26's 16-job sweep (8 seeds x 2 learning rates,
the default recipe and budget: two packs of 8, one per core, 391 updates of 20 full-batch
steps and 391 rollouts of 32 steps each), and times the real sweeps (packed, joblib, SB3) in
the same invocation, interleaved. ``joblib / floor`` is the largest lead over joblib any packed
launcher could have here without changing the arithmetic (fp32, the same products, the same
env); ``joblib / 3`` against the floor says how much time a 3x lead leaves for everything else.

(a) is a one-job packed sweep of one update (command to exit): interpreter, imports, Hydra,
config, the pack's fork, one trainer opened and closed. (b) times exactly the products
``pack.forward`` runs for 8 runs of 256 rows (trunk 4 -> 64 -> 64, policy head 2, value head
1): 4 forward, 7 backward, on warm caches, median of rounds. (c) steps one gymnasium
``CartPoleVectorEnv`` of 64 envs (the merged envs of a pack of 8 runs x 8 envs), no
bookkeeping. Both are lower bounds: in the step they share the caches with everything else.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_packed import sb3_sweep, sharedppo_sweep

RUNS, ROWS, OBS, WIDTH, ACTIONS = 8, 256, 4, 64, 2
UPDATES, EPOCHS, ROLLOUT, ENVS = 391, 20, 32, 8  # CartPole's default recipe, 100,096 steps


def _median_us(fn, rounds: int = 15, calls: int = 200) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


def products_us() -> float:
    """The batched products of one update step of a pack of 8 (forward and fused backward)."""
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    x, h1, h2 = r(RUNS, ROWS, OBS), r(RUNS, ROWS, WIDTH), r(RUNS, ROWS, WIDTH)
    w1, w2, wp, wv = (
        r(RUNS, WIDTH, OBS),
        r(RUNS, WIDTH, WIDTH),
        r(RUNS, ACTIONS, WIDTH),
        r(RUNS, 1, WIDTH),
    )
    b1, bp, bv = r(RUNS, 1, WIDTH), r(RUNS, 1, ACTIONS), r(RUNS, 1, 1)
    dout, dv, dpre = r(RUNS, ROWS, ACTIONS), r(RUNS, ROWS, 1), r(RUNS, ROWS, WIDTH)

    def step() -> None:
        torch.baddbmm(b1, x, w1.transpose(1, 2))  # forward: layer 1, layer 2, the heads
        torch.baddbmm(b1, h1, w2.transpose(1, 2))
        torch.baddbmm(bp, h2, wp.transpose(1, 2))
        torch.baddbmm(bv, h2, wv.transpose(1, 2))
        torch.bmm(dout.transpose(1, 2), h2)  # backward: the heads' weight gradients
        torch.bmm(dv.transpose(1, 2), h2)
        torch.bmm(dout, wp).baddbmm_(dv, wv)  # d hidden
        torch.bmm(h1.transpose(1, 2), dpre)  # layer 2: weight gradient, input gradient
        torch.bmm(dpre, w2)
        torch.bmm(x.transpose(1, 2), dpre)  # layer 1: weight gradient

    return _median_us(step)


def env_step_us() -> float:
    """One step of 64 numpy CartPoles (a pack of 8 runs x 8 envs, merged)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    env = CartPoleVectorEnv(num_envs=RUNS * ENVS)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 2, RUNS * ENVS) for _ in range(64)]
    i = iter(range(10**9))
    return _median_us(lambda: env.step(actions[next(i) % 64]), calls=500)


def fixed_s(folder: Path) -> float:
    """A one-job packed sweep of one update: what every sweep pays besides training."""
    extra = ["total_steps=256", "checkpoint.every_steps=null"]
    return sharedppo_sweep("packed", 1, extra, folder)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--no-sb3", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lrs = "ppo.lr=0.0003,0.001"
    rows: list[dict] = []
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            fixed = fixed_s(Path(tmp) / "one")
        prod, env = products_us(), env_step_us()
        pack = (UPDATES * EPOCHS * prod + UPDATES * ROLLOUT * env) / 1e6
        row = {"rep": rep, "fixed_s": fixed, "products_us": prod, "env_step_us": env}
        row |= {"pack_floor_s": pack, "sweep_floor_s": fixed + pack}
        for name in ("packed", "joblib"):
            with tempfile.TemporaryDirectory() as tmp:
                row[f"{name}_s"] = sharedppo_sweep(name, 8, [lrs], Path(tmp) / "sweep")["seconds"]
        if not args.no_sb3:
            row["sb3_s"] = sb3_sweep(8, 100_000)["seconds"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "rep"}
    floor = med["sweep_floor_s"]
    med["joblib_over_floor"] = med["joblib_s"] / floor
    med["joblib_over_packed"] = med["joblib_s"] / med["packed_s"]
    # Time a 3x lead would leave each pack for all it does besides products and env steps.
    med["left_for_the_rest_at_3x_s"] = med["joblib_s"] / 3 - floor
    med["the_rest_today_s"] = med["packed_s"] - floor
    if "sb3_s" in med:
        med["sb3_over_floor"] = med["sb3_s"] / floor
        med["sb3_over_packed"] = med["sb3_s"] / med["packed_s"]
        med["left_for_the_rest_at_10x_sb3_s"] = med["sb3_s"] / 10 - floor
    print(json.dumps({"median": med}), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"reps": rows, "median": med}, indent=1))


if __name__ == "__main__":
    main()
