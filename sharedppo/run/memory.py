"""Rollout memory: preallocated [T, N] tensors the rollout fills, and the batch it hands on."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..algo.batch import Batch, Sequences
from ..algo.gae import compute_gae


def _host_view(tensor: Tensor) -> np.ndarray | None:
    return tensor.numpy() if tensor.device.type == "cpu" else None


class RolloutMemory:
    """One rollout of ``num_steps`` x ``num_envs`` transitions, written in place step by step.

    What the environment returns (rewards, terminated, dones) is written into numpy arrays, a
    cheap per-step copy; on CPU the torch tensors share that memory, on CUDA
    :meth:`finish_rollout` moves them once per rollout.

    ``valid[t, i]`` is 0 on the reset step that gymnasium's next-step autoreset inserts after
    an episode ends: its action was ignored, so it is no transition to learn from. The value
    computed there is still V(final observation) and serves as the bootstrap of the step
    before it.

    A recurrent network's memory (``state_shape`` given) also keeps the state each env had
    when the rollout began (``state0``) and where episodes start (``starts``: 1 on the step
    whose state is zeroed, see ``recurrent.EpisodeStarts``).
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        mask_shape: tuple[int, ...] | None,
        device: torch.device,
        action_shape: tuple[int, ...] = (),
        action_dtype: torch.dtype = torch.long,
        gamma: float = 0.99,
        lam: float = 0.95,
        action_mask_size: int | None = None,
        state_shape: tuple[int, ...] | None = None,
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        """``obs_dtype``: uint8 keeps image frames as the env gives them (a quarter of the
        memory); the network scales them (``model.stored_obs_dtype``)."""
        size = (num_steps, num_envs)
        self.num_steps = num_steps
        self.device = device
        self.gamma, self.lam = gamma, lam

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros((*size, *shape), dtype=dtype, device=device)

        self.obs = zeros(*obs_shape, dtype=obs_dtype)
        self.actions = zeros(*action_shape, dtype=action_dtype)
        self.logprobs = zeros()
        self.values = zeros()
        self.masks = None if mask_shape is None else zeros(*mask_shape)
        self.action_mask = (
            None if action_mask_size is None else zeros(action_mask_size, dtype=torch.bool)
        )
        # On CPU the rollout writes observations and reads actions through numpy views of the
        # same memory: a numpy row assignment costs less per step than torch's copy_ and
        # from_numpy/numpy calls (None on another device).
        self.host_obs, self.host_actions = _host_view(self.obs), _host_view(self.actions)
        self.host_rewards = np.zeros(size, dtype=np.float32)
        self.host_terminated = np.zeros(size, dtype=np.float32)
        self.host_dones = np.zeros(size, dtype=np.float32)
        # Whether each env's last step of the previous rollout ended its episode.
        self.last_done = np.zeros(num_envs, dtype=np.float32)
        self.rewards = self._from_host(self.host_rewards)
        self.terminated = self._from_host(self.host_terminated)
        self.dones = self._from_host(self.host_dones)
        self.valid = zeros()
        self.state0 = (
            None if state_shape is None else torch.zeros(num_envs, *state_shape, device=device)
        )
        self.host_starts = np.zeros(size, dtype=np.float32)
        self.starts = self._from_host(self.host_starts)
        self.advantages = zeros()
        self.returns = zeros()

    def _from_host(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def finish_rollout(self, last_values: Tensor) -> None:
        """Close the rollout: derive the valid mask, move host-side arrays to the device and
        run GAE; ``last_values`` is V of the observation after the rollout's last step."""
        valid = np.empty_like(self.host_dones)
        valid[0] = 1.0 - self.last_done
        valid[1:] = 1.0 - self.host_dones[:-1]
        self.last_done = self.host_dones[-1].copy()
        self.valid.copy_(torch.from_numpy(valid))
        if self.device.type != "cpu":
            for host, tensor in (
                (self.host_rewards, self.rewards),
                (self.host_terminated, self.terminated),
                (self.host_dones, self.dones),
                (self.host_starts, self.starts),
            ):
                tensor.copy_(torch.from_numpy(host))
        next_values = torch.cat((self.values[1:], last_values.unsqueeze(0)))
        self.advantages, self.returns = compute_gae(
            self.rewards,
            self.values,
            next_values,
            self.terminated,
            self.dones,
            self.gamma,
            self.lam,
        )

    def state_dict(self) -> dict[str, Any]:
        # Only whether each env's last step ended an episode carries into the next rollout.
        return {"last_done": torch.from_numpy(self.last_done.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_done = state["last_done"].numpy().copy()

    def batch(self) -> Batch:
        if self.state0 is not None:
            return Sequences(
                self.obs,
                self.actions,
                self.logprobs,
                self.values,
                self.advantages,
                self.returns,
                self.masks,
                self.action_mask,
                self.valid,
                self.starts,
                self.state0,
            ).batch()
        keep = self.valid.flatten().nonzero().squeeze(1)

        def flat(x: Tensor) -> Tensor:
            return x.flatten(0, 1)[keep]

        return Batch(
            flat(self.obs),
            flat(self.actions),
            flat(self.logprobs),
            flat(self.values),
            flat(self.advantages),
            flat(self.returns),
            None if self.masks is None else flat(self.masks),
            None if self.action_mask is None else flat(self.action_mask),
        )
