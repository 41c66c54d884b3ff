"""scripts/blackjack_optimum.py, the reference docs/benchmarks.md measures Blackjack against:
its dynamic programme follows the rules Blackjack-v1 is registered with (a fixed policy's
exact value agrees with the env's own hands, a natural's too), and the optimum it finds is the
best of the policies it is compared with."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import gymnasium as gym
import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "blackjack_optimum.py"


def _script():  # noqa: ANN202 (a module)
    spec = importlib.util.spec_from_file_location("blackjack_optimum", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_policys_exact_value_matches_gymnasiums_hands():
    bj = _script()
    hit_below_15 = {s: float(s[0] < 15) for s in bj.STATES}
    mean, square, _ = bj.evaluate(hit_below_15)
    env = gym.make("Blackjack-v1")
    obs, _ = env.reset(seed=0)
    hands = 20_000
    returns = np.empty(hands)
    for i in range(hands):
        done = False
        while not done:
            obs, r, terminated, truncated, _ = env.step(int(obs[0] < 15))
            done = terminated or truncated
        returns[i] = r
        obs, _ = env.reset()
    se = math.sqrt(square - mean * mean) / math.sqrt(hands)
    assert abs(returns.mean() - mean) < 4 * se
    assert abs((returns**2).mean() - square) < 0.01


def test_a_natural_pays_as_the_registered_rules_say():
    # evaluate(sab=True): a natural that sticks wins 1 unless the dealer's two cards are a
    # natural too (a ten showing: an ace below it, 1 in 13); a plain 21 draws with any 21.
    bj = _script()
    assert gym.spec("Blackjack-v1").kwargs == {"sab": True, "natural": False}
    env = gym.make("Blackjack-v1").unwrapped
    env.reset(seed=0)
    hands, total = 6000, 0.0
    for _ in range(hands):
        env.reset()
        env.player, env.dealer = [1, 10], [10, env.dealer[1]]
        total += env.step(0)[1]
    natural, plain = 1 - 1 / 13, bj.stick(21, 10)[0]
    se = math.sqrt(natural * (1 - natural) / hands)
    assert abs(total / hands - natural) < 4 * se < natural - plain
    always_stick = {s: 0.0 for s in bj.STATES}
    gain = bj.evaluate(always_stick, sab=True)[0] - bj.evaluate(always_stick, sab=False)[0]
    expected = sum(
        pu
        * 2
        * (1 / 13)
        * (4 / 13)
        * (1 - {1: 4 / 13, 10: 1 / 13}.get(up, 0) - bj.stick(21, up)[0])
        for up, pu in bj.CARDS.items()
    )
    assert math.isclose(gain, expected, rel_tol=1e-9)


def test_the_optimum_beats_every_other_policy_it_is_compared_with():
    bj = _script()
    optimum, _, best = bj.evaluate(None)
    assert math.isclose(optimum, -0.04311, abs_tol=5e-5)
    assert bj.evaluate({s: float(a) for s, a in best.items()})[0] == optimum
    for state in [(12, 4, 0), (16, 10, 0), (18, 7, 1)]:  # the closest calls, and a clear one
        flipped = {s: float(a != (s == state)) for s, a in best.items()}
        assert bj.evaluate(flipped)[0] < optimum
