"""One Nature-CNN training step at batch 256, by precision and memory layout.

    python scripts/time_cnn_step.py            # 8 timed steps per variant after 2 warm-ups
    python scripts/time_cnn_step.py --steps 20 --threads 2

A step is what an update does per minibatch (forward, PPO loss, backward, clipping, Adam) on
4 x 84 x 84 uint8 frames and Discrete(4) actions, through ``PPOAgent.update``; acting is one
forward and sample on 8 rows. Medians: a shared machine's timings are noisy, so compare only
numbers taken in one invocation.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import gymnasium as gym
    import torch

    from sharedppo.algo.agent import PPOAgent
    from sharedppo.algo.batch import Batch
    from sharedppo.config import NetworkConfig, PPOConfig
    from sharedppo.nn.actor_critic import ActorCritic
    from sharedppo.nn.precision import Precision

    torch.set_num_threads(args.threads)
    frames = torch.randint(0, 256, (256, 4, 84, 84), dtype=torch.uint8)

    def timed(fn) -> float:  # noqa: ANN001
        for _ in range(2):
            fn()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    def variant(precision: str, channels_last: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        net_cfg = NetworkConfig(type="nature_cnn", channels_last=channels_last)
        net = ActorCritic((4, 84, 84), gym.spaces.Discrete(4), net_cfg)
        ppo = PPOConfig(update_epochs=1, num_minibatches=1)
        agent = PPOAgent(net, ppo, Precision(precision, "cpu"))
        with torch.no_grad():  # not inference_mode: the update differentiates through these
            actions, logprobs, values, _ = agent.act(frames)
        batch = Batch(frames, actions, logprobs, values, torch.randn(256), values + 1, None)

        def act() -> None:
            with torch.inference_mode():
                agent.act(frames[:8])

        return timed(lambda: agent.update(batch)), timed(act)

    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            step_ms, act_ms = variant(precision, channels_last)
            layout = "channels_last" if channels_last else "NCHW"
            print(
                f"{precision} {layout:13s}  step {step_ms:6.1f} ms   act (8 rows) {act_ms:5.2f} ms"
            )


if __name__ == "__main__":
    main()
