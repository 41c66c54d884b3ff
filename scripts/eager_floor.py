"""Where eager PyTorch's time goes on a small network: the measurements behind the speed issues'
status (docs/benchmarks.md, "What eager PyTorch leaves").

    pip install -e ".[bench]"
    python scripts/eager_floor.py pack-step --runs 1 2 4 8 16   # update step of a pack of n
    python scripts/eager_floor.py pack-step --runs 16 --threads 2
    python scripts/eager_floor.py interleaved                   # an op alone, and between others
    python scripts/eager_floor.py torchscript                   # one fused step, eager and scripted
    python scripts/eager_floor.py torchscript-run               # the same inside a training run

``pack-step``: microseconds of one update step (forward, gradient, clipping, Adam) of a pack of n
CartPole runs at the default recipe, on the batches of one rollout, median of rounds; per run
too. Flat per-run cost means the step's time is per element, not per call.
``interleaved``: a gymnasium ``CartPoleVectorEnv`` step of 8 envs and a pack's largest product
([8, 249, 64] x [8, 64, 64]) timed in a loop of their own, then with other work between two
calls (the torch work a rollout or update step does between them), which takes their caches.
``torchscript``: a minimal fused PPO minibatch step (a 4-64-64 tanh trunk, 2 actions and a value
head, 256 rows: 35 ops, the gradient by hand) run eagerly and through ``torch.jit.script``;
the gradients are compared bit for bit. What a compiler that keeps torch's ops can remove.
``torchscript-run``: CartPole at SB3's settings (``ppo.anneal_clip=true``, 100k steps) trained in
this process, alternately as it is and with the fused gradient's part after the forward pass (the
loss's gradients, the head's, the trunk's backward) replaced by one scripted function of the
same ops; env steps/s of each, and whether the runs reached 475 at the same step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def timed(fn: Callable[[], object], calls: int, rounds: int = 7) -> float:
    """Median over rounds of microseconds per call."""
    for _ in range(max(calls // 10, 5)):
        fn()
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        per_round.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(per_round)


def pack_step(runs: int, threads: int) -> float:
    from hydra import compose, initialize_config_module

    from sharedppo.algo.gae import compute_gae
    from sharedppo.compose import register_configs
    from sharedppo.pack.collect import collect
    from sharedppo.pack.population import Population, own_generator
    from sharedppo.run.session import open_trainer

    register_configs()
    trainers, generators = [], []
    folder = Path(tempfile.mkdtemp())
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        for r in range(runs):
            overrides = ["device=cpu", f"seed={r}", f"ppo.lr={1e-3 if r % 2 else 3e-4}"]
            trainers.append(open_trainer(compose("config", overrides), folder / str(r)))
            generators.append(own_generator(trainers[-1].device))
    torch.set_num_threads(threads)  # after the trainers, which set their own
    pop = Population(trainers, [f"job {r}" for r in range(runs)], generators)
    for t in trainers:
        t.agent.set_progress(1.0)
    collect(pop.shape, pop.stacked, pop.lanes, pop.shared, [0] * runs, [None] * runs, pop.merged)
    for t in trainers:
        ppo = t.cfg.ppo
        gae = compute_gae(**t.memory.gae_inputs(), gamma=ppo.gamma, lam=ppo.lam)
        t.memory.set_advantages(*gae)
    batches = [t.memory.batch() for t in trainers]
    steps = trainers[0].cfg.ppo.update_epochs * trainers[0].cfg.ppo.num_minibatches
    return timed(lambda: pop.update.run(batches, [True] * runs), calls=3) / steps


def interleaved() -> dict[str, float]:
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    env = CartPoleVectorEnv(num_envs=8)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, (4096, 8))
    index = iter(range(10**9))
    h, w = torch.randn(8, 249, 64), torch.randn(8, 64, 64)
    small, small_w = torch.randn(256, 64), torch.randn(64, 64)
    others = [torch.randn(8, 249, 64) for _ in range(8)]  # a pack step's other activations

    def env_step() -> None:
        env.step(actions[next(index) % 4096])

    def torch_work() -> None:
        for _ in range(10):
            torch.tanh(small @ small_w)

    def touch_others() -> None:
        for x in others:
            x.mul_(1.0)

    def between(op: Callable[[], object], work: Callable[[], object]) -> float:
        total = 0.0
        for _ in range(2000):
            work()
            start = time.perf_counter()
            op()
            total += time.perf_counter() - start
        return total / 2000 * 1e6

    return {
        "CartPole step, 8 envs, alone": timed(env_step, 2000),
        "CartPole step, after 10 [256,64]x[64,64] products + tanh": between(env_step, torch_work),
        "bmm [8,249,64]x[8,64,64], alone": timed(lambda: torch.bmm(h, w), 500),
        "bmm [8,249,64]x[8,64,64], after 4 MB of other tensors": between(
            lambda: torch.bmm(h, w), touch_others
        ),
    }


def fused_step(obs, actions, old_logp, adv, ret, w1, b1, w2, b2, wh, bh, grads: list[torch.Tensor]):
    """One clipped-PPO minibatch gradient by hand (clip 0.2, value coefficient 0.5)."""
    y1 = torch.tanh(torch.addmm(b1, obs, w1.t()))
    y2 = torch.tanh(torch.addmm(b2, y1, w2.t()))
    both = torch.addmm(bh, y2, wh.t())
    logp_all = torch.log_softmax(both[:, :2], dim=-1)
    logratio = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1) - old_logp
    ratio = logratio.exp()
    n = float(obs.shape[0])
    clipped = ((adv > 0) & (ratio > 1.2)) | ((adv < 0) & (ratio < 0.8))
    dlogp = torch.where(clipped, torch.zeros_like(adv), -adv / n) * ratio
    dvalues = 0.5 * (both[:, 2] - ret) / n
    probs = logp_all.exp()
    dlogits = probs * (-dlogp).unsqueeze(1)
    dlogits.scatter_add_(1, actions.unsqueeze(1), dlogp.unsqueeze(1))
    dboth = torch.cat((dlogits, dvalues.unsqueeze(1)), 1)
    grads[4].copy_(dboth.t() @ y2)
    grads[5].copy_(dboth.sum(0))
    d2 = torch.ops.aten.tanh_backward(dboth @ wh, y2)
    grads[2].copy_(d2.t() @ y1)
    grads[3].copy_(d2.sum(0))
    d1 = torch.ops.aten.tanh_backward(d2 @ w2, y1)
    grads[0].copy_(d1.t() @ obs)
    grads[1].copy_(d1.sum(0))
    return ratio


def torchscript() -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        scripted = torch.jit.script(fused_step)
    gen = torch.Generator().manual_seed(0)
    rows = 256
    weights = [
        torch.randn(64, 4, generator=gen) * 0.5, torch.zeros(64),
        torch.randn(64, 64, generator=gen) * 0.1, torch.zeros(64),
        torch.randn(3, 64, generator=gen) * 0.1, torch.zeros(3),
    ]  # fmt: skip
    batch = [
        torch.randn(rows, 4, generator=gen), torch.randint(0, 2, (rows,), generator=gen),
        torch.randn(rows, generator=gen) * 0.1 - 0.7, torch.randn(rows, generator=gen),
        torch.randn(rows, generator=gen),
    ]  # fmt: skip
    eager_grads = [torch.empty_like(w) for w in weights]
    script_grads = [torch.empty_like(w) for w in weights]
    with torch.no_grad():
        fused_step(*batch, *weights, eager_grads)
        scripted(*batch, *weights, script_grads)
        same = all(torch.equal(a, b) for a, b in zip(eager_grads, script_grads, strict=True))
        out = {"gradients bit-equal (1 = yes)": float(same)}
        for rnd in range(2):  # alternating, twice
            eager = timed(lambda: fused_step(*batch, *weights, eager_grads), 1000)
            script = timed(lambda: scripted(*batch, *weights, script_grads), 1000)
            out[f"eager, round {rnd}"], out[f"scripted, round {rnd}"] = eager, script
    return out


def scripted_tail(
    ratio: torch.Tensor,
    values: torch.Tensor,
    adv: torch.Tensor,
    returns: torch.Tensor,
    log_probs: torch.Tensor,
    actions: torch.Tensor,
    clip: float,
    vf_coef: float,
    ins: list[torch.Tensor],
    outs: list[torch.Tensor],
    hidden: torch.Tensor,
    weights: list[torch.Tensor],
    grads: list[torch.Tensor],
    head_w: torch.Tensor,
    value_w: torch.Tensor,
) -> None:
    """``ppo_loss_grads``, ``Categorical.grad_out`` (no entropy bonus) and ``ActorCritic.backward``
    for one shared tanh trunk, the same ops in the same order. ``grads``: the trunk's weight and
    bias gradients layer by layer, then the heads' (policy weight, bias, value weight, bias)."""
    n = ratio.shape[0]
    bound = torch.where(adv > 0, ratio > 1 + clip, ratio < 1 - clip)
    dlogp = torch.where(bound, 0.0, adv * ratio).mul_(-1.0 / n)
    dv = (values - returns).mul_(vf_coef / n)
    probs = log_probs.exp()
    dout = probs * (-dlogp).unsqueeze(-1)
    dout.scatter_add_(-1, actions.unsqueeze(-1), dlogp.unsqueeze(-1))
    heads = len(weights) * 2
    torch.mm(dout.t(), hidden, out=grads[heads])
    torch.sum(dout, 0, out=grads[heads + 1])
    torch.mm(dv.unsqueeze(0), hidden, out=grads[heads + 2])
    torch.sum(dv, 0, keepdim=True, out=grads[heads + 3])
    d = dout @ head_w
    d.addr_(dv, value_w[0])
    for back in range(len(weights)):
        j = len(weights) - 1 - back
        dpre = torch.ops.aten.tanh_backward(d, outs[j])
        x = ins[j]
        if x.shape[1] < dpre.shape[1]:
            grads[2 * j].copy_(torch.mm(x.t(), dpre).t())
        else:
            torch.mm(dpre.t(), x, out=grads[2 * j])
        torch.sum(dpre, 0, out=grads[2 * j + 1])
        if j > 0:
            d = dpre @ weights[j]


def torchscript_run(rounds: int = 4) -> dict[str, float]:
    from hydra import compose, initialize_config_module

    from sharedppo.algo import gradient
    from sharedppo.compose import register_configs
    from sharedppo.run.session import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tail = torch.jit.script(scripted_tail)
    eager_backward = gradient.Fused.backward

    def scripted_backward(self, fwd, mb, advantages, clip):  # noqa: ANN001, ANN202
        rec, net = fwd.rec, self.net
        (head_w, head_b), (value_w, value_b) = net.heads
        trunk = net.layers[0]
        grads = [p.grad for layer in trunk for p in layer]
        grads += [head_w.grad, head_b.grad, value_w.grad, value_b.grad]
        args = (fwd.ratio, fwd.values, advantages, mb.returns, fwd.scores, mb.actions)
        tail(*args, float(clip), float(self.cfg.vf_coef), rec.inputs[0], rec.outputs[0],
             rec.hidden[0], [w for w, _ in trunk], grads, head_w, value_w)  # fmt: skip

    register_configs()
    overrides = ["ppo.anneal_clip=true", "total_steps=100000", "seed=0", "device=cpu"]
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        cfg = compose("config", overrides)
    rates: dict[str, list[float]] = {"eager": [], "scripted": []}
    targets = set()
    for r in range(rounds + 1):  # the first round warms both up and is not counted
        order = ("eager", "scripted") if r % 2 else ("scripted", "eager")
        for name in order:
            gradient.Fused.backward = scripted_backward if name == "scripted" else eager_backward
            with tempfile.TemporaryDirectory() as out:
                result = train(cfg, Path(out))
            if r:
                rates[name].append(result.global_step / result.seconds)
                targets.add(result.target_step)
    gradient.Fused.backward = eager_backward
    eager, scripted = statistics.median(rates["eager"]), statistics.median(rates["scripted"])
    return {
        "eager, env steps/s (median)": eager,
        "scripted, env steps/s (median)": scripted,
        "scripted / eager": scripted / eager,
        "runs reached 475 at one step (1 = yes)": float(len(targets) == 1 and None not in targets),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pack-step")
    p.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--threads", type=int, default=1)
    sub.add_parser("interleaved")
    sub.add_parser("torchscript")
    sub.add_parser("torchscript-run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "pack-step":
        for runs in args.runs:
            us = pack_step(runs, args.threads)
            line = f"{runs:3d} runs, {args.threads} thread(s): {us:7.0f} us a step"
            print(f"{line}, {us / runs:5.0f} a run")
        return
    modes = {"interleaved": interleaved, "torchscript": torchscript}
    results = modes.get(args.what, torchscript_run)()
    for name, value in results.items():
        print(f"{name:60s} {value:10.3f}" if value < 10 else f"{name:60s} {value:10.1f}")


if __name__ == "__main__":
    main()
