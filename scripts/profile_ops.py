"""Time per torch op of one PPO update step and of one act, with torch.profiler.

    python scripts/profile_ops.py                  # this checkout, fused gradient
    python scripts/profile_ops.py --autograd       # ppo.fused=false
    python scripts/profile_ops.py --src /tmp/old   # another checkout, to compare
    python scripts/profile_ops.py --ab             # torch.tanh against the trunk's tanh

The same agent as scripts/count_ops.py (64x64 shared trunk, Discrete(2) head, batch 256,
20 epochs; acting on 8 rows and on 1,024), one torch thread. Per op: calls and self time per
step, and, for element-wise ops, nanoseconds per element next to a ``mul`` of the same size
timed here, the floor an element-wise op can reach (it reads and writes the same memory);
for matrix products, GFLOP/s. Timings move with how busy the machine is: read the shares
and the ratios to the floor, not the absolute figures.

``--ab`` times, in this one process, the update step and the acts with the trunk's tanh
(``nn/activations.py``) and with ``torch.tanh``, alternating A and B round by round (ABBA),
and prints the medians and their ratio: the comparison to trust on a busy machine.
"""

from __future__ import annotations

import argparse
import sys
import time

from count_ops import update_fixture  # scripts/ is first on the path when run

MATMULS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::linear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="import sharedppo from this checkout instead")
    parser.add_argument("--autograd", action="store_true", help="ppo.fused=false")
    parser.add_argument("--rounds", type=int, default=5, help="updates profiled (20 steps each)")
    parser.add_argument("--top", type=int, default=14)
    parser.add_argument("--ab", action="store_true", help="torch.tanh against the trunk's")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import torch

    torch.set_num_threads(1)
    agent, batch = update_fixture(args.autograd)
    if args.ab:
        ab(agent, batch, torch, rounds=max(args.rounds, 10))
        return
    steps = 20 * args.rounds
    report("update step, batch 256", lambda: agent.update(batch), args.rounds, steps, args.top)
    for rows in (8, 1024):
        x = torch.randn(rows, 4)

        def act(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                agent.act(x)

        report(f"act, {rows} rows", act, 200, 200, args.top)
    print(f"(sharedppo from {sys.modules['sharedppo'].__file__.rsplit('/', 2)[0]})")


def ab(agent, batch, torch, rounds: int) -> None:  # noqa: ANN001
    """Medians over ``rounds`` interleaved rounds: us per update step and per act."""
    import statistics

    net, fast = agent.net, agent.net.activation
    acts = {rows: torch.randn(rows, 4) for rows in (8, 256, 1024)}

    def timings() -> dict[str, float]:
        out = {}
        start = time.perf_counter()
        agent.update(batch)
        out["update step, batch 256"] = (time.perf_counter() - start) / 20 * 1e6
        with torch.inference_mode():
            for rows, x in acts.items():
                start = time.perf_counter()
                for _ in range(100):
                    agent.act(x)
                out[f"act, {rows} rows"] = (time.perf_counter() - start) / 100 * 1e6
        return out

    seen: dict[str, list[dict[str, float]]] = {"torch.tanh": [], "trunk tanh": []}
    for r in range(rounds):
        order = [("torch.tanh", torch.tanh), ("trunk tanh", fast)]
        for name, activation in order if r % 2 == 0 else order[::-1]:
            net.activation = activation
            seen[name].append(timings())
    net.activation = fast
    print(
        f"{'us, median of ' + str(rounds) + ' rounds':28s} {'torch.tanh':>11s} {'trunk':>8s} ratio"
    )
    for key in seen["torch.tanh"][0]:
        a = statistics.median(t[key] for t in seen["torch.tanh"])
        b = statistics.median(t[key] for t in seen["trunk tanh"])
        print(f"{key:28s} {a:11.1f} {b:8.1f} {a / b:5.2f}x")


def report(title: str, fn, calls: int, steps: int, top: int) -> None:  # noqa: ANN001
    """Profile ``calls`` calls of ``fn`` (``steps`` steps in all) and print the top ops."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    wall = (time.perf_counter() - start) / steps * 1e6
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(calls):
            fn()
    rows = sorted(
        prof.key_averages(group_by_input_shape=True),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )
    total = sum(e.self_cpu_time_total for e in rows)
    print(f"\n== {title}: {wall:.0f} us per step unprofiled; profiled ops' self time")
    print(f"{'op':32s} {'shapes':28s} {'calls':>6s} {'us/step':>8s} {'share':>6s}  vs floor")
    for e in rows[:top]:
        us = e.self_cpu_time_total / steps
        shapes = [tuple(s) for s in e.input_shapes if s][:2]
        print(
            f"{e.key[:32]:32s} {str(shapes)[:28]:28s} {e.count / steps:6.1f} {us:8.1f} "
            f"{e.self_cpu_time_total / total:6.1%}  {floor(e, torch)}"
        )


def floor(e, torch) -> str:  # noqa: ANN001
    """ns per element against a same-size mul, or GFLOP/s for a matrix product."""
    shapes = [s for s in e.input_shapes if s]
    if not shapes or not e.count:
        return ""
    per_call = e.self_cpu_time_total / e.count * 1e3  # ns
    if e.key in MATMULS and len(shapes) >= 2:
        a, b = shapes[-2], shapes[-1]
        if len(a) == 2 and len(b) == 2:
            flops = 2 * a[0] * a[1] * b[-1]
            return f"{flops / per_call:.1f} GFLOP/s"
        return ""
    n = 1
    for d in shapes[0]:
        n *= d
    if n < 64:
        return ""
    x = torch.randn(*shapes[0]) if len(shapes[0]) else torch.randn(1)
    ref = mul_ns(x, torch)
    return f"{per_call / n:.2f} ns/el, mul {ref / n:.2f} ({per_call / ref:.1f}x)"


def mul_ns(x, torch) -> float:  # noqa: ANN001
    """ns of one ``x * x`` on this tensor (best of 5 rounds)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            torch.mul(x, x)
        best = min(best, (time.perf_counter() - start) / 200 * 1e9)
    return best


if __name__ == "__main__":
    main()
