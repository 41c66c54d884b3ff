"""CartPole throughput against the number of envs, for ``scripts/benchmark.py``'s table and plot:
the env alone, sharedppo's rollout, and whole training (a ``benchmark.py`` worker, a fresh
process per count).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCHMARK = Path(__file__).with_name("benchmark.py")


def scaling(env_counts: list[int], seconds: float = 1.5) -> list[dict]:
    import gymnasium as gym
    import torch

    from sharedppo.algo.agent import PPOAgent
    from sharedppo.algo.gae import compute_gae
    from sharedppo.config import NetworkConfig, PPOConfig
    from sharedppo.nn.actor_critic import ActorCritic
    from sharedppo.run.collect import Collector
    from sharedppo.run.episodes import EpisodeTracker
    from sharedppo.run.memory import RolloutMemory

    torch.set_num_threads(1)
    rows = []
    for n in env_counts:
        envs = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
        envs.reset(seed=0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(50):
                envs.step(envs.action_space.sample())
            steps += 50 * n
        env_rate = steps / (time.perf_counter() - start)

        obs, _ = envs.reset(seed=0)
        agent = PPOAgent(ActorCritic(4, 2, NetworkConfig()), PPOConfig())
        memory = RolloutMemory(num_steps=16, num_envs=n, obs_shape=(4,), device=torch.device("cpu"))
        rollout, tracker, step = Collector(envs, obs), EpisodeTracker(n), 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            step = rollout.collect(agent, memory, tracker, step)
            # GAE was part of the rollout before it moved to the trainer: kept, to compare
            memory.set_advantages(*compute_gae(**memory.gae_inputs(), gamma=0.98, lam=0.8))
        rollout_rate = step / (time.perf_counter() - start)
        envs.close()

        train_rate = spawn_train_rate(n)
        rows.append(dict(num_envs=n, env=env_rate, rollout=rollout_rate, train=train_rate))
        print(
            f"  {n:5d} envs: env {env_rate:,.0f}/s  rollout {rollout_rate:,.0f}/s  "
            f"train {train_rate:,.0f}/s",
            flush=True,
        )
    return rows


def spawn_train_rate(num_envs: int) -> float:
    steps = max(16 * num_envs * 20, 20_000)
    overrides = [
        "experiment=cartpole_fast",
        f"env.num_envs={num_envs}",
        "ppo.num_steps=16",
        f"total_steps={steps}",
        "stop_on_target=false",
    ]
    cmd = [sys.executable, str(BENCHMARK), "--worker", "train-rate", json.dumps(overrides), "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return json.loads(proc.stdout.strip().splitlines()[-1])["sps"]
