"""Rollout memory: preallocated [T, N] tensors the collector fills, and the batch it hands on.

The memory stores; it computes no advantages. ``gae_inputs`` hands the closed rollout to
``algo.gae.compute_gae`` and ``set_advantages`` takes the result back (``Trainer.fit``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..algo.batch import Batch, Sequences
from ..nn.heads import Gaussian, GaussianDraws


def _host_view(tensor: Tensor) -> np.ndarray | None:
    return tensor.numpy() if tensor.device.type == "cpu" else None


class RolloutMemory:
    """One rollout of ``num_steps`` x ``num_envs`` transitions, written in place step by step.

    Per step the collector calls :meth:`store_obs`, :meth:`store_act` and :meth:`store_env`;
    then :meth:`close` with the bootstrap value. What the environment returns (rewards,
    terminated, dones) is written into numpy arrays, a cheap per-step copy; on CPU the torch
    tensors share that memory, on CUDA :meth:`close` moves them once per rollout.

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
        *,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        device: torch.device,
        mask_shape: tuple[int, ...] | None = None,
        action_shape: tuple[int, ...] = (),
        action_dtype: torch.dtype = torch.long,
        action_mask_size: int | None = None,
        state_shape: tuple[int, ...] | None = None,
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        """``mask_shape``: a dropout network's per-step masks; ``action_mask_size``: the
        number of actions an env masks; ``obs_dtype``: uint8 keeps image frames as the env
        gives them (a quarter of the memory); the network scales them
        (``model.stored_obs_dtype``)."""
        size = (num_steps, num_envs)
        self.num_steps, self.num_envs = num_steps, num_envs
        self.device = device

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
        self.last_values = torch.zeros(num_envs, device=device)
        self.advantages = zeros()
        self.returns = zeros()
        self._valid_rows = None if self.action_mask is None else self.action_mask.unbind(0)
        self._views()

    def _views(self) -> None:
        # On CPU the collector writes observations and reads actions through numpy views of
        # the same memory: a numpy row assignment costs less per step than torch's copy_ and
        # from_numpy/numpy calls (None on another device).
        self.host_obs, self.host_actions = _host_view(self.obs), _host_view(self.actions)
        # Per-step row views, made once: indexing a tensor per step costs more than the copy
        # into it. The tensors are rebound only by share(), which remakes the views.
        self._obs_rows, self._action_rows = self.obs.unbind(0), self.actions.unbind(0)
        self._logprob_rows, self._value_rows = self.logprobs.unbind(0), self.values.unbind(0)
        self._mask_rows = None if self.masks is None else self.masks.unbind(0)

    def share(self, **fields: Tensor) -> None:
        """Keep the named per-step fields (``obs``, ``actions``, ``logprobs``, ``values``,
        ``masks``) in the given tensors of the same shape from now on, with what they hold:
        a packed run's rows of its pack's memory, which the pack's rollout fills for all its
        runs at once (``pack.collect``)."""
        for name, tensor in fields.items():
            tensor.copy_(getattr(self, name))
            setattr(self, name, tensor)
        self._views()

    def _from_host(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def begin(self, state: Tensor | None = None) -> None:
        """Open a rollout; ``state``: a recurrent network's state as it begins."""
        if state is not None:
            self.state0.copy_(state)

    def action_draws(self, dist: Gaussian) -> GaussianDraws:
        """A Gaussian policy's noise for the whole rollout, its actions written straight into
        this memory's rows (their log-probs are handed to :meth:`close`)."""
        return dist.draws(self.actions)

    def store_obs(
        self,
        t: int,
        obs: np.ndarray,
        action_mask: np.ndarray | None,
        starts: np.ndarray | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """What step ``t`` acts on: the observation, the valid actions (kept only by a memory
        built with ``action_mask_size``) and, for a recurrent network, which envs start an
        episode. Returns the stored observation and valid-action rows, to act on."""
        step_obs = self._obs_rows[t]
        if self.host_obs is None:
            step_obs.copy_(torch.from_numpy(obs))
        else:
            self.host_obs[t] = obs
        valid = None
        if self._valid_rows is not None:
            valid = self._valid_rows[t]
            valid.copy_(torch.from_numpy(action_mask))
        if starts is not None:
            self.host_starts[t] = starts
        return step_obs, valid

    def store_act(
        self, t: int, actions: Tensor, logprobs: Tensor | None, values: Tensor, masks: Tensor | None
    ) -> np.ndarray:
        """What acting at step ``t`` returned; ``logprobs`` None: the actions came from
        :meth:`action_draws`, already in their row. Returns the actions as a numpy array for
        the env (on CPU a view of the stored row)."""
        if logprobs is not None:
            self._action_rows[t].copy_(actions)
            self._logprob_rows[t].copy_(logprobs)
        self._value_rows[t].copy_(values)
        if self._mask_rows is not None:
            self._mask_rows[t].copy_(masks)
        return actions.cpu().numpy() if self.host_actions is None else self.host_actions[t]

    def store_env(
        self, t: int, reward: np.ndarray, terminated: np.ndarray, done: np.ndarray
    ) -> None:
        """What the env returned at step ``t`` (``reward`` as learnt from: scaled, clipped)."""
        self.host_rewards[t] = reward
        self.host_terminated[t] = terminated
        self.host_dones[t] = done

    def stored_obs(self, obs: np.ndarray) -> Tensor:
        """``obs`` on this memory's device and in its dtype (the bootstrap value's input)."""
        return torch.from_numpy(obs).to(self.obs.device, self.obs.dtype)

    def close(self, last_values: Tensor, logprobs: Tensor | None = None) -> None:
        """Close the rollout: ``last_values`` is V of the observation after its last step,
        ``logprobs`` the whole rollout's when acting drew from :meth:`action_draws`. Derives
        the valid mask and moves host-side arrays to the device."""
        if logprobs is not None:
            self.logprobs.copy_(logprobs)
        self.last_values = last_values
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

    def gae_inputs(self) -> dict[str, Tensor]:
        """The closed rollout as ``compute_gae``'s keyword arguments; ``next_values[t]`` is V
        of the observation step t reached: the next row's value, the bootstrap after the last."""
        next_values = torch.cat((self.values[1:], self.last_values.unsqueeze(0)))
        return {
            "rewards": self.rewards,
            "values": self.values,
            "next_values": next_values,
            "terminated": self.terminated,
            "dones": self.dones,
        }

    def set_advantages(self, advantages: Tensor, returns: Tensor) -> None:
        """The update's targets for this rollout, [T, N] each (``compute_gae``'s result)."""
        self.advantages, self.returns = advantages, returns

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
