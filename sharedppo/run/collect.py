"""Collecting a rollout: the agent acts, the vector env steps, the memory stores."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from ..algo.agent import PPOAgent
from ..config import ConfigError
from ..envs.build import action_mask
from ..envs.errors import in_phase
from ..envs.state import EnvStateError, capture_state, restore_state
from ..nn.heads import Gaussian
from ..nn.normalize import ObsNormalizer, RewardScaler
from ..nn.recurrent import EpisodeStarts
from .checkpoint import CheckpointError
from .episodes import EpisodeTracker
from .memory import RolloutMemory

log = logging.getLogger(__name__)

EpisodesHook = Callable[[int, np.ndarray, np.ndarray], None]


MASK_AT_STEP_ONLY = (
    "info['action_mask'] is given by step() but not by reset(): sharedppo reads the env's "
    "masks only where its reset() info gives one for the first observation too"
)


class Collector:
    """Owns the vector env and the observation it last returned, and for a recurrent network
    its state and where the coming episodes start (both carried across rollouts).

    ``collect`` fills a :class:`RolloutMemory` with one rollout and closes it with the
    bootstrap value; the normalisers are applied on the way (their statistics belong to the
    model, not the env). Advantages are not its business: ``Trainer.fit`` computes them.
    """

    def __init__(
        self,
        envs: VectorEnv,
        obs: np.ndarray,
        obs_norm: ObsNormalizer | None = None,
        reward_scale: RewardScaler | None = None,
        info: dict[str, Any] | None = None,
        num_actions: int = 0,
        state: torch.Tensor | None = None,
    ) -> None:
        """``state``: a recurrent network's initial state [num_envs, ...] (None: no core)."""
        self.envs = envs
        self.obs = obs  # as the env returned it
        self.num_actions = num_actions
        # The valid actions for self.obs, when the env supplies them.
        self.action_mask = action_mask(info or {}, envs.num_envs, num_actions)
        self.obs_norm = obs_norm if obs_norm is not None and obs_norm.enabled else None
        self.reward_scale = (
            reward_scale if reward_scale is not None and reward_scale.enabled else None
        )
        self.state = state
        self.starts = EpisodeStarts(envs.num_envs) if state is not None else None
        self._said_inexact = False  # the env state not stored: said once a run
        self.ranks = 1  # the processes of a data-parallel run, each stepping as many envs

    def collect(
        self,
        agent: PPOAgent,
        memory: RolloutMemory,
        tracker: EpisodeTracker,
        step: int,
        on_episodes: EpisodesHook | None = None,
    ) -> int:
        """One rollout starting at global env step ``step``; returns the step it ends at."""
        envs, num_envs, num_actions = self.envs, memory.num_envs, self.num_actions
        # Looked up once: this loop runs per env step, and each attribute walk or no-op call
        # costs a measurable share of a small network's step.
        dist, act, act_recurrent = agent.net.dist, agent.act, agent.act_recurrent
        to_env, obs_norm, record = dist.to_env, self.obs_norm, self.record_step
        store_obs, store_act = memory.store_obs, memory.store_act
        state, starts, device = self.state, self.starts, memory.device
        memory.begin(state)
        # A Gaussian policy's noise for the whole rollout, drawn now: acting writes the
        # actions into the memory itself, and the log-probs are computed at the end.
        draws = memory.action_draws(dist) if isinstance(dist, Gaussian) else None
        with torch.inference_mode():
            for t in range(memory.num_steps):
                obs = self.obs if obs_norm is None else obs_norm(self.obs, update=True)
                if state is None:
                    step_obs, valid = store_obs(t, obs, self.action_mask)
                    actions, logprobs, values, masks = act(step_obs, valid, draws)
                else:
                    step_obs, valid = store_obs(t, obs, self.action_mask, starts.now)
                    start = torch.from_numpy(starts.now).to(device)
                    actions, logprobs, values, masks, state = act_recurrent(
                        step_obs, valid, state, start, draws
                    )
                # to_env returns a new array: the env never holds the memory's row.
                env_actions = store_act(t, actions, logprobs, values, masks)
                try:
                    self.obs, reward, terminated, truncated, info = envs.step(to_env(env_actions))
                except Exception as err:  # the env's own code: its traceback, the phase noted
                    raise in_phase(err, None, f"stepping (env step {step})") from None
                done = terminated | truncated
                if starts is not None:
                    starts.advance(done)
                if valid is not None:
                    self.action_mask = action_mask(info, num_envs, num_actions)
                elif "action_mask" in info:  # masks from step() only would go unused
                    raise ConfigError(MASK_AT_STEP_ONLY)
                step = record(memory, tracker, t, reward, terminated, done, info, step, on_episodes)
            logprobs = None if draws is None else draws.log_probs()
            self.state = state
            last_values = self._bootstrap(agent, memory)
        memory.close(last_values, logprobs)
        return step

    def record_step(
        self,
        memory: RolloutMemory,
        tracker: EpisodeTracker,
        t: int,
        reward: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray,
        info: dict[str, Any],
        step: int,
        on_episodes: EpisodesHook | None,
    ) -> int:
        """What the env returned at step ``t`` stored (the reward scaled for learning) and its
        finished episodes counted; returns the global env step after it (every rank's envs
        count). A pack's rollout records its runs' steps here too."""
        scale = self.reward_scale
        memory.store_env(t, reward if scale is None else scale(reward, done), terminated, done)
        step += memory.num_envs * self.ranks
        # Scores are the game's own: unshaped, unclipped, per game rather than per life.
        finished = tracker.step(info.get("env_reward", reward), info.get("game_over", done))
        if finished is not None:
            tracker.record(step, finished[0])
            if on_episodes is not None:
                on_episodes(step, *finished)
        return step

    def _bootstrap(self, agent: PPOAgent, memory: RolloutMemory) -> torch.Tensor:
        """V of the observation after the rollout's last step; for a recurrent network the
        next rollout's first step, as it will compute it."""
        obs = self.obs if self.obs_norm is None else self.obs_norm(self.obs, update=False)
        last_obs = memory.stored_obs(obs)
        if self.state is None:
            return agent.value(last_obs)
        start = torch.from_numpy(self.starts.now).to(last_obs.device)
        return agent.value(last_obs, self.state, start)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "obs": torch.from_numpy(np.array(self.obs, dtype=np.float32)),
            "env": self._env_state(),
        }
        if self.action_mask is not None:
            state["action_mask"] = torch.from_numpy(self.action_mask.copy())
        if self.state is not None:
            state["recurrent_state"] = self.state.clone()
            state["episode_starts"] = self.starts.state_dict()
        return state

    def _env_state(self) -> dict[str, Any]:
        """The env's state for exact resume; what cannot be stored is said once per run, and
        never costs the checkpoint."""
        skipped: list[str] = []
        try:
            env = capture_state(self.envs, skipped)
        except Exception as err:
            env, skipped = {}, [f"the whole env ({type(err).__name__}: {err})"]
        if skipped and not self._said_inexact:
            self._said_inexact = True
            log.warning(
                "env state: %s not stored in checkpoints (not plain data); a resumed run "
                "continues them from a freshly built env, so resume is not exact",
                ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if skipped[3:] else ""),
            )
        return env

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            restore_state(self.envs, state["env"])
        except EnvStateError as err:
            raise CheckpointError(str(err)) from None
        self.obs = state["obs"].numpy().copy()
        if "action_mask" in state:
            self.action_mask = state["action_mask"].numpy().copy()
        if self.state is not None:
            self.state = state["recurrent_state"].to(self.state)
            self.starts.load_state_dict(state["episode_starts"])
