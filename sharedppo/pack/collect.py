"""Every run's rollout at once: each run's envs step as its own (``run.collect.Collector``
holds them, with its normalisers and the last observation), and acting is one batched forward
pass for all runs, each run's random numbers drawn from its own generator in the order its own
agent draws them (dropout masks, then the action noise; a Gaussian's noise for the whole
rollout first)."""

from __future__ import annotations

from typing import Any

import torch

from ..envs.errors import in_phase
from ..envs.merged import MergedCartPole
from ..nn.actor_critic import ActorCritic
from ..nn.heads import INVERSE_CDF_MIN_ROWS
from ..run.collect import Collector
from ..run.episodes import EpisodeTracker
from ..run.memory import RolloutMemory
from . import forward as F
from .stacked import Stacked
from .whole import WholeSteps


class Lane:
    """What the pack's rollout reads and writes of one run."""

    def __init__(
        self,
        collector: Collector,
        memory: RolloutMemory,
        tracker: EpisodeTracker,
        generator: torch.Generator,
        net: ActorCritic,
    ) -> None:
        self.collector, self.memory, self.tracker = collector, memory, tracker
        self.generator, self.net = generator, net
        self.active = True  # False once the run has finished or failed: its envs rest
        self.error: BaseException | None = None  # what its env raised, ending the run

    def masks(self, rows: int, device: torch.device) -> torch.Tensor | None:
        """Its network's dropout masks, from this run's generator."""
        return self.net.sample_masks(rows, device, self.generator)


class Shared:
    """The pack's rollout memory: each run's ``obs``, ``actions``, ``logprobs`` and ``values``
    are its row of one [runs, steps, envs, ...] tensor (``RolloutMemory.share``), so a step
    is one copy per field for all runs rather than one per run (on 8 CartPole runs the
    per-run copies were a seventh of the rollout's time)."""

    FIELDS = ("obs", "actions", "logprobs", "values")

    def __init__(self, lanes: list[Lane]) -> None:
        for name in self.FIELDS:
            stacked = torch.stack([getattr(lane.memory, name) for lane in lanes])
            setattr(self, name, stacked)
        for r, lane in enumerate(lanes):
            lane.memory.share(**{name: getattr(self, name)[r] for name in self.FIELDS})


def _masks(lanes: list[Lane], rows: int, device: torch.device) -> torch.Tensor | None:
    drawn = [lane.masks(rows, device) if lane.active else None for lane in lanes]
    if all(m is None for m in drawn):
        return None
    shape = next(m for m in drawn if m is not None).shape
    return torch.stack([torch.ones(shape, device=device) if m is None else m for m in drawn])


def collect(
    shape: F.Shape,
    stacked: Stacked,
    lanes: list[Lane],
    shared: Shared,
    steps: list[int],
    on_episodes: list,
    merged: MergedCartPole | None = None,
) -> list[int]:
    """One rollout of every active run (``steps``: each run's global env step as it starts);
    returns the steps they end at. A run that is not active is computed along (its rows of the
    batched products) but neither draws random numbers nor steps its envs."""
    first = lanes[0].memory
    num_steps, num_envs, device = first.num_steps, first.num_envs, first.device
    p = stacked.weights()  # the rollout does not change them
    dropout = any(lane.net.dropout > 0 for lane in lanes)  # else no run draws masks
    log_std = p["dist.log_std"] if shape.gaussian else None
    spare = torch.Generator(device=device)  # draws for runs at rest, thrown away
    generators = [lane.generator if lane.active else spare for lane in lanes]
    noise = None
    if shape.gaussian:  # GaussianDraws: the whole rollout's noise, drawn before the first step
        noise = torch.stack(
            [
                torch.randn(lane.memory.actions.shape, generator=g, device=device)
                for lane, g in zip(lanes, generators, strict=True)
            ],
            1,
        )  # [steps, runs, envs, d]
        log_std = log_std.detach().clone()
    elif _draws_ahead(shape, dropout, num_envs, device):
        # A categorical head's Gumbel draws for the whole rollout too, one call per run in
        # place of one per run and step (about 20 us of a 290 us step of 8 runs): torch's CPU
        # exponential_ gives the numbers its draws step by step would (as its own agent draws
        # them), and no dropout mask is drawn between them.
        size = (num_steps, num_envs, lanes[0].net.dist.num_outputs)
        noise = torch.stack([torch.empty(size).exponential_(generator=g) for g in generators], 1)
    steps = list(steps)
    whole = WholeSteps(lanes, merged, shared, steps) if WholeSteps.usable(lanes, merged) else None
    with torch.inference_mode():
        for t in range(num_steps):
            if whole is not None:
                whole.observe(t)
            else:
                for lane in lanes:
                    if lane.active:
                        _observe(lane, t)
            masks = _masks(lanes, num_envs, device) if dropout else None
            rec = F.forward(shape, p, shared.obs[:, t].contiguous(), masks)
            actions, logprobs = F.sample(
                shape.gaussian,
                rec.out,
                generators,
                log_std,
                None if noise is None else noise[t],
            )
            shared.actions[:, t].copy_(actions)
            shared.logprobs[:, t].copy_(logprobs)
            shared.values[:, t].copy_(rec.values)
            if whole is not None:
                if not whole.step(t, on_episodes):  # a run's hook failed: run by run from here
                    whole.release()
                    whole = None
                continue
            _env_half(lanes, t, masks, shared, merged, steps, on_episodes)
        if whole is not None:
            whole.release()
        obs = [shared.obs[r, -1] for r in range(len(lanes))]  # at rest: anything will do
        for r, lane in enumerate(lanes):
            if lane.active:
                c = lane.collector
                x = c.obs if c.obs_norm is None else c.obs_norm(c.obs, update=False)
                obs[r] = lane.memory.stored_obs(x)
        last = F.forward(shape, p, torch.stack(obs), None).values
    for r, lane in enumerate(lanes):
        if lane.active:
            lane.memory.close(last[r].clone())
    return steps


def _draws_ahead(shape: F.Shape, dropout: bool, rows: int, device: torch.device) -> bool:
    """Whether a rollout's categorical draws can be made before its first step."""
    return not (shape.gaussian or dropout) and device.type == "cpu" and rows < INVERSE_CDF_MIN_ROWS


def _env_half(
    lanes: list[Lane],
    t: int,
    masks: torch.Tensor | None,
    shared: Shared,
    merged: MergedCartPole | None,
    steps: list[int],
    on_episodes: list,
) -> None:
    """Step ``t``'s env half run by run: each active run's envs step with its actions and
    its ``Collector`` records what they returned (``steps`` updated in place)."""
    device = shared.actions.device
    host = None if device.type == "cpu" else shared.actions[:, t].cpu().numpy()
    stepping = []
    for r, lane in enumerate(lanes):
        if lane.active:
            if masks is not None and lane.net.dropout > 0:
                lane.memory.masks[t].copy_(masks[r])
            env_actions = lane.memory.host_actions[t] if host is None else host[r]
            stepping.append((r, lane, lane.net.dist.to_env(env_actions)))
    for (r, lane, _), result in zip(stepping, _step(stepping, merged, steps), strict=True):
        try:
            steps[r] = _record(lane, t, result, steps[r], on_episodes[r])
        except Exception as err:  # this run's env (or hook) failed: it alone ends
            lane.error, lane.active = err, False


def _observe(lane: Lane, t: int) -> None:
    """Store step ``t``'s observation of one run, normalised (a run at rest keeps its row as
    it is: computed along, never used)."""
    c = lane.collector
    x = c.obs if c.obs_norm is None else c.obs_norm(c.obs, update=True)
    lane.memory.store_obs(t, x, None)


def _step(stepping: list, merged: MergedCartPole | None, steps: list[int]) -> list:
    """Every stepping run's env step: one merged call where the runs' envs allow it, else
    each run's own (an env that raises ends its run alone: its result is the error)."""
    if merged is not None:
        return merged.step(
            [lane.collector.envs for _, lane, _ in stepping], [a for *_, a in stepping]
        )
    results: list = []
    for r, lane, env_actions in stepping:
        try:
            results.append(lane.collector.envs.step(env_actions))
        except Exception as err:  # the env's own code: its traceback, the phase noted
            results.append(in_phase(err, None, f"stepping (env step {steps[r]})"))
    return results


def _record(lane: Lane, t: int, result: Any, step: int, on_episodes: Any) -> int:
    """``Collector.collect``'s env half of step ``t`` for one run."""
    if isinstance(result, BaseException):
        raise result
    c = lane.collector
    c.obs, reward, terminated, truncated, info = result
    done = terminated | truncated
    return c.record_step(
        lane.memory, lane.tracker, t, reward, terminated, done, info, step, on_episodes
    )
