"""Collecting a rollout: the agent acts, the vector env steps, the memory fills."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from ..algo.agent import PPOAgent
from ..envs.build import action_mask
from ..envs.state import capture_state, restore_state
from ..nn.heads import Gaussian
from ..nn.normalize import ObsNormalizer, RewardScaler
from ..nn.recurrent import EpisodeStarts
from .episodes import EpisodeTracker
from .memory import RolloutMemory

EpisodesHook = Callable[[int, np.ndarray, np.ndarray], None]


class Collector:
    """Owns the vector env and the observation it last returned, and for a recurrent network
    its state and where the coming episodes start (both carried across rollouts).

    ``collect`` fills the memory with one rollout and closes it with the bootstrap value; the
    normalisers are applied on the way (their statistics belong to the model, not the env).
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

    def collect(
        self,
        agent: PPOAgent,
        memory: RolloutMemory,
        tracker: EpisodeTracker,
        step: int,
        on_episodes: EpisodesHook | None = None,
    ) -> int:
        """One rollout starting at global env step ``step``; returns the step it ends at."""
        envs, num_envs = self.envs, memory.obs.shape[1]
        # Looked up once: this loop runs per env step, and each attribute walk or no-op call
        # costs a measurable share of a small network's step.
        dist, act = agent.net.dist, agent.act
        to_env = dist.to_env
        obs_norm, scale = self.obs_norm, self.reward_scale
        # Per-step views made once: indexing a tensor per step costs more than the copy into it.
        obs_rows, action_rows = memory.obs.unbind(0), memory.actions.unbind(0)
        logprob_rows, value_rows = memory.logprobs.unbind(0), memory.values.unbind(0)
        mask_rows = None if memory.masks is None else memory.masks.unbind(0)
        valid_rows = None if memory.action_mask is None else memory.action_mask.unbind(0)
        num_actions = self.num_actions
        rewards, terminated_rows, done_rows = (
            memory.host_rewards,
            memory.host_terminated,
            memory.host_dones,
        )
        host_obs, host_actions = memory.host_obs, memory.host_actions
        state, starts = self.state, self.starts
        if state is not None:
            memory.state0.copy_(state)
            act_recurrent, device = agent.act_recurrent, memory.obs.device
        # A Gaussian policy's noise for the whole rollout, drawn now: acting writes the
        # actions into memory.actions itself, and the log-probs are filled in at the end.
        draws = dist.draws(memory.actions) if isinstance(dist, Gaussian) else None
        with torch.inference_mode():
            for t in range(memory.num_steps):
                step_obs = obs_rows[t]
                obs = self.obs if obs_norm is None else obs_norm(self.obs, update=True)
                if host_obs is None:
                    step_obs.copy_(torch.from_numpy(obs))
                else:
                    host_obs[t] = obs
                valid = None
                if valid_rows is not None:
                    valid = valid_rows[t]
                    valid.copy_(torch.from_numpy(self.action_mask))
                if state is None:
                    actions, logprobs, values, masks = act(step_obs, valid, draws)
                else:
                    memory.host_starts[t] = starts.now
                    start = torch.from_numpy(starts.now).to(device)
                    actions, logprobs, values, masks, state = act_recurrent(
                        step_obs, valid, state, start, draws
                    )
                if draws is None:
                    action_rows[t].copy_(actions)
                    logprob_rows[t].copy_(logprobs)
                value_rows[t].copy_(values)
                if mask_rows is not None:
                    mask_rows[t].copy_(masks)

                # to_env returns a new array: the env never holds the memory's row.
                env_actions = actions.cpu().numpy() if host_actions is None else host_actions[t]
                self.obs, reward, terminated, truncated, info = envs.step(to_env(env_actions))
                done = terminated | truncated
                if starts is not None:
                    starts.advance(done)
                if valid_rows is not None:
                    self.action_mask = action_mask(info, num_envs, num_actions)
                rewards[t] = reward if scale is None else scale(reward, done)
                terminated_rows[t] = terminated
                done_rows[t] = done
                step += num_envs
                # Scores are the game's own: unshaped, unclipped, per game rather than per life.
                finished = tracker.step(info.get("env_reward", reward), info.get("game_over", done))
                if finished is not None:
                    tracker.record(step, finished[0])
                    if on_episodes is not None:
                        on_episodes(step, *finished)
            if draws is not None:
                memory.logprobs.copy_(draws.log_probs())
            obs = self.obs if obs_norm is None else obs_norm(self.obs, update=False)
            last_obs = torch.from_numpy(obs).to(memory.obs.device, memory.obs.dtype)
            if state is None:
                last_values = agent.value(last_obs)
            else:  # the next rollout's first step, as it will compute it
                start = torch.from_numpy(starts.now).to(last_obs.device)
                last_values = agent.value(last_obs, state, start)
                self.state = state
        memory.finish_rollout(last_values)
        return step

    def state_dict(self) -> dict[str, Any]:
        state = {
            "obs": torch.from_numpy(np.array(self.obs, dtype=np.float32)),
            "env": capture_state(self.envs),
        }
        if self.action_mask is not None:
            state["action_mask"] = torch.from_numpy(self.action_mask.copy())
        if self.state is not None:
            state["recurrent_state"] = self.state.clone()
            state["episode_starts"] = self.starts.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_state(self.envs, state["env"])
        self.obs = state["obs"].numpy().copy()
        if "action_mask" in state:
            self.action_mask = state["action_mask"].numpy().copy()
        if self.state is not None:
            self.state = state["recurrent_state"].to(self.state)
            self.starts.load_state_dict(state["episode_starts"])
