"""The env half of a pack's rollout on whole arrays, where its runs' CartPoles merge.

``collect`` records each run's step as its own run would (``Collector.record_step``): for 8
runs that is 8 times a dozen small numpy operations and Python calls per step, about a third
of a pack's rollout step once acting and the env are batched. Where every run steps, its
envs merge (``envs.merged``) and nothing transforms what they return (no observation or
reward normaliser, no dropout masks, on the CPU), :class:`WholeSteps` does the same for all
runs at once: the observations written for all runs in one assignment, the actions read in
one, the env's arrays kept gathered for the whole rollout, each run's running returns and
lengths rows of one array. Episodes still end in each run's own tracker (``finish``,
``record``) and hook, with its own global step, so every run records exactly what it would
alone (``tests/test_pack.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..envs.merged import MergedCartPole


class WholeSteps:
    def __init__(self, lanes: list[Any], merged: MergedCartPole, shared: Any, steps: list[int]):
        self.lanes, self.merged = lanes, merged
        self.envs = [lane.collector.envs for lane in lanes]
        merged.gather(self.envs)
        self.obs = np.stack([lane.collector.obs for lane in lanes])  # [runs, envs, ...]
        self.host_obs, self.host_actions = shared.obs.numpy(), shared.actions.numpy()
        trackers = [lane.tracker for lane in lanes]
        self.returns = np.stack([t.returns for t in trackers])
        self.lengths = np.stack([t.lengths for t in trackers])
        for r, t in enumerate(trackers):  # each tracker's counts: its row of the whole
            t.returns, t.lengths = self.returns[r], self.lengths[r]
        self.to_env = lanes[0].net.dist.to_env
        self.steps = steps

    @staticmethod
    def usable(lanes: list[Any], merged: MergedCartPole | None) -> bool:
        """Whether this rollout's env half can run on whole arrays."""
        return merged is not None and all(
            lane.active
            and lane.collector.obs_norm is None
            and lane.collector.reward_scale is None
            and lane.memory.host_obs is not None
            and lane.memory.host_actions is not None
            and lane.net.dropout == 0
            for lane in lanes
        )

    def observe(self, t: int) -> None:
        """Store step ``t``'s observations of every run."""
        self.host_obs[:, t] = self.obs

    def step(self, t: int, on_episodes: list) -> bool:
        """Step every run's envs with the actions stored at ``t`` and record what they
        returned; returns False when a run's episode hook raised (that run ends, as
        ``collect`` ends a run whose env or hook fails, and the rollout goes on run by run)."""
        lanes, runs, n = self.lanes, len(self.lanes), self.merged.per_env
        actions = self.to_env(self.host_actions[:, t]).reshape(-1)
        obs, reward, terminated, truncated = self.merged.step_gathered(self.envs, actions)
        self.obs = obs.reshape(runs, n, *obs.shape[1:])
        reward, terminated = reward.reshape(runs, n), terminated.reshape(runs, n)
        done = terminated | truncated.reshape(runs, n)
        self.returns += reward
        self.lengths += 1
        steps = self.steps
        for r, lane in enumerate(lanes):
            lane.memory.store_env(t, reward[r], terminated[r], done[r])
            steps[r] += n * lane.collector.ranks
        if not done.any():
            return True
        ok = True
        for r in np.flatnonzero(done.any(1)):
            lane = lanes[r]
            returns, lengths = lane.tracker.finish(done[r])
            lane.tracker.record(steps[r], returns)
            if on_episodes[r] is None:
                continue
            try:
                on_episodes[r](steps[r], returns, lengths)
            except Exception as err:  # as collect's _record: this run alone ends
                lane.error, lane.active, ok = err, False, False
        return ok

    def release(self) -> None:
        """Each run's envs and collector hold their own arrays and last observation again."""
        self.merged.hand_back(self.envs)
        for r, lane in enumerate(self.lanes):
            lane.collector.obs = self.obs[r]
