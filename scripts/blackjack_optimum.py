"""The optimal hit/stick policy of gymnasium's Blackjack-v1 as registered (sab=True,
natural=False: an infinite deck, the dealer stands on 17, soft 17 included, a natural that
sticks wins 1 unless the dealer's two cards are one too), its exact expected return, and a
trained policy's, by dynamic programming over the env's rules: what docs/benchmarks.md's
Blackjack figures are measured against.

    python scripts/blackjack_optimum.py [JOB ...] [--simulate N] [--seed S]

Prints JSON lines: the optimum (expected return a hand, its per-hand standard deviation, and
the chance that a 5,000-hand mean reaches -0.05, normal approximation); with --simulate N, the
optimal policy played for N hands in gymnasium's own env; for each JOB (a job folder or
checkpoint), the exact expected return of its policy as trained (actions sampled, as in the
training's episodes) and of its argmax, and the states where the argmax differs from the
optimum.
"""

from __future__ import annotations

import argparse
import json
import math
from functools import cache

import gymnasium as gym
import numpy as np

CARDS = {c: (4 if c == 10 else 1) / 13 for c in range(1, 11)}  # a draw from gymnasium's deck
# The observations a hand can show: (player's total, dealer's card, usable ace).
STATES = [
    (t, up, s) for up in range(1, 11) for s in (0, 1) for t in range(4, 22) if t > 11 or not s
]
WINDOW, BAR = 5000, -0.05


def add(total: int, soft: bool, card: int) -> tuple[int, bool]:
    """A hand's total (a usable ace counted as 11) after one more card, and whether an ace
    is still usable: gymnasium's sum_hand and usable_ace."""
    hard = total - (10 if soft else 0) + card
    if (soft or card == 1) and hard + 10 <= 21:
        return hard + 10, True
    return hard, False


@cache
def dealer_from(total: int, soft: bool) -> dict[int, float]:
    """The dealer's final total (0: bust) from this hand, drawing while under 17."""
    if total > 21:
        return {0: 1.0}
    if total >= 17:
        return {total: 1.0}
    out: dict[int, float] = {}
    for card, p in CARDS.items():
        for final, q in dealer_from(*add(total, soft, card)).items():
            out[final] = out.get(final, 0.0) + p * q
    return out


@cache
def stick(total: int, up: int) -> tuple[float, float]:
    """(expected reward, expected squared reward) of sticking on ``total`` against ``up``."""
    first = add(0, False, up)
    mean = square = 0.0
    for card, p in CARDS.items():
        for final, q in dealer_from(*add(*first, card)).items():
            r = (total > final) - (total < final)
            mean, square = mean + p * q * r, square + p * q * r * r
    return mean, square


def evaluate(
    hit: dict[tuple[int, int, int], float] | None, sab: bool = True
) -> tuple[float, float, dict]:
    """(expected return, expected squared return) a hand of the policy hitting with
    probability ``hit[state]``; None: the optimal policy. Also the optimal actions (1: hit).
    ``sab``: a natural (ace and ten dealt) that sticks wins unless the dealer has one too."""
    best: dict[tuple[int, int, int], int] = {}

    @cache
    def branches(total: int, soft: bool, up: int) -> tuple[tuple[float, float], list[float]]:
        h = [0.0, 0.0]
        for card, p in CARDS.items():
            v = value(*add(total, soft, card), up)
            h = [h[0] + p * v[0], h[1] + p * v[1]]
        return stick(total, up), h

    def choose(state: tuple[int, int, int], s: tuple[float, float], h: list[float]):  # noqa: ANN202
        q = float(best[state]) if hit is None else hit[state]
        return q * h[0] + (1 - q) * s[0], q * h[1] + (1 - q) * s[1]

    @cache
    def value(total: int, soft: bool, up: int) -> tuple[float, float]:
        if total > 21:
            return -1.0, 1.0
        s, h = branches(total, soft, up)
        best[(total, up, int(soft))] = int(h[0] > s[0])
        return choose((total, up, int(soft)), s, h)

    mean = square = 0.0
    for up, pu in CARDS.items():
        for c1, p1 in CARDS.items():
            for c2, p2 in CARDS.items():
                total, soft = add(*add(0, False, c1), c2)
                v = value(total, soft, up)
                if sab and {c1, c2} == {1, 10}:  # a natural: sticking pays 1, or 0 on another
                    dealer = {1: 4 / 13, 10: 1 / 13}.get(up, 0.0)
                    v = choose((21, up, 1), (1 - dealer, 1 - dealer), branches(21, True, up)[1])
                mean, square = mean + pu * p1 * p2 * v[0], square + pu * p1 * p2 * v[1]
    return mean, square, best


def policy_hit(job: str) -> dict[tuple[int, int, int], float]:
    """A job's probability of hitting in each state, from its network as saved."""
    import torch

    from sharedppo import load
    from sharedppo.envs.spaces import flatten
    from sharedppo.nn.act import run_network

    policy = load(job)
    obs = np.stack([np.asarray(flatten(policy.layout, s), np.float32) for s in STATES])
    obs = policy.obs_norm(obs, update=False)
    with torch.no_grad():
        out = run_network(policy.net, torch.as_tensor(obs, dtype=torch.float32))[0]
    return dict(zip(STATES, torch.softmax(out, -1)[:, 1].tolist(), strict=True))


def simulate(best: dict, hands: int, seed: int) -> dict[str, float]:
    """The optimal policy played in gymnasium's env."""
    env = gym.make("Blackjack-v1")
    obs, _ = env.reset(seed=seed)
    returns = np.empty(hands)
    for i in range(hands):
        done = False
        while not done:
            obs, r, terminated, truncated, _ = env.step(best[tuple(int(x) for x in obs)])
            done = terminated or truncated
        returns[i] = r
        obs, _ = env.reset()
    windows = returns[: hands // WINDOW * WINDOW].reshape(-1, WINDOW).mean(1)
    return {
        "simulated_hands": hands,
        "mean": round(float(returns.mean()), 5),
        "standard_error": round(float(returns.std() / math.sqrt(hands)), 5),
        "windows_at_or_above_bar": f"{int((windows >= BAR).sum())}/{len(windows)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs", nargs="*")
    parser.add_argument("--simulate", type=int, default=0, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rules = gym.spec("Blackjack-v1").kwargs
    if rules.get("natural", False):
        raise SystemExit("Blackjack-v1 is registered with natural=True: not modelled here")
    mean, square, best = evaluate(None, sab=rules.get("sab", False))
    sd = math.sqrt(square - mean * mean)
    chance = 0.5 * math.erfc((BAR - mean) / (sd / math.sqrt(WINDOW)) / math.sqrt(2))
    line = {"optimum": round(mean, 5), "per_hand_sd": round(sd, 4)}
    line |= {"window_sd": round(sd / math.sqrt(WINDOW), 4)}
    line |= {"chance_window_at_bar": round(chance, 3)}
    print(json.dumps(line), flush=True)
    if args.simulate:
        print(json.dumps(simulate(best, args.simulate, args.seed)), flush=True)
    for job in args.jobs:
        hit = policy_hit(job)
        greedy = {s: float(p > 0.5) for s, p in hit.items()}
        wrong = [list(s) for s in STATES if greedy[s] != best[s]]
        sab = rules.get("sab", False)
        line = {"job": job, "sampled": round(evaluate(hit, sab)[0], 5)}
        line |= {"argmax": round(evaluate(greedy, sab)[0], 5), "optimum": round(mean, 5)}
        print(json.dumps(line | {"argmax_differs_at": wrong}), flush=True)


if __name__ == "__main__":
    main()
