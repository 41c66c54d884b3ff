"""Rollout memory: preallocated [T, N] tensors, GAE, and the flat batch the update learns from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over [T, N] float tensors.

    ``next_values[t]`` is V of the observation step t reached (the final observation where an
    episode ended). Termination removes the bootstrap; truncation keeps it, because the state
    was cut by a clock rather than ended. Either one stops the advantage from flowing back
    across the episode boundary.

    Returns (advantages, returns) with returns = advantages + values.
    """
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    carry = gamma * lam * (1.0 - dones)
    advantages = torch.empty_like(deltas)
    # On the CPU the backward loop runs on numpy views of the same memory: per step it is two
    # ops on a row of a few envs, where numpy's call overhead is a fraction of torch's.
    cpu = deltas.device.type == "cpu"
    d, c, a = (x.numpy() if cpu else x for x in (deltas, carry, advantages))
    last = 0.0 * d[0]
    for t in range(len(d) - 1, -1, -1):
        last = d[t] + c[t] * last
        a[t] = last
    return advantages, advantages + values


@dataclass
class Sequences:
    """Whole env sequences of a rollout, [T, n] per field, for a recurrent network to replay.

    The update takes minibatches of envs (:meth:`select`); the loss reads the valid rows,
    flattened (:meth:`batch`), and the forward pass replays the whole sequence from
    ``state0`` with the state zeroed where ``starts`` is 1, then takes ``rows``.
    """

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    masks: Tensor | None
    action_mask: Tensor | None
    valid: Tensor
    starts: Tensor  # [T, n]: 1 where an episode starts (the state is zeroed first)
    state0: Tensor  # [n, *state_shape]: the state when the rollout began
    rows: Tensor | None = None  # flat (t * n + i) indices of the valid rows, set by batch()

    @property
    def num_envs(self) -> int:
        return self.starts.shape[1]

    def select(self, envs: Tensor) -> Sequences:
        """The sequences of the envs ``envs``."""
        cols = (slice(None), envs)
        return Sequences(
            *(_take(x, cols) for x in self._fields()),
            self.valid[cols],
            self.starts[cols],
            self.state0[envs],
        )

    def batch(self) -> Batch:
        """The valid rows, flattened time-major (as ``RolloutMemory.batch`` orders them), with
        these sequences attached."""
        rows = self.valid.flatten().nonzero().squeeze(1)
        flat = [None if x is None else x.flatten(0, 1)[rows] for x in self._fields()]
        return Batch(*flat, sequence=replace(self, rows=rows))

    def _fields(self) -> list[Tensor | None]:
        return [getattr(self, f) for f in _FIELDS]


def _take(x: Tensor | None, index: Any) -> Tensor | None:
    return None if x is None else x[index]


# The per-transition fields Sequences and Batch share, in their constructors' order.
_FIELDS = (
    "obs",
    "actions",
    "logprobs",
    "values",
    "advantages",
    "returns",
    "masks",
    "action_mask",
)


@dataclass
class Batch:
    """The transitions of one rollout, flattened, reset steps removed; a recurrent network's
    batch also holds the whole env sequences (``sequence``) its forward pass replays."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    masks: Tensor | None  # dropout masks drawn when acting
    action_mask: Tensor | None = None  # the valid actions when acting (bool)
    sequence: Sequences | None = None

    def __len__(self) -> int:
        return self.actions.shape[0]

    def __getitem__(self, index: Tensor) -> Batch:
        if self.sequence is not None:
            raise TypeError("a batch of sequences splits by envs (sequence.select), not rows")
        return Batch(*(_take(getattr(self, f), index) for f in _FIELDS))

    def chunks(self, n: int) -> list[Batch]:
        """``n`` consecutive minibatches, as ``tensor_split`` sizes them: views, no copies."""
        if self.sequence is not None:
            raise TypeError("a batch of sequences splits by envs (sequence.select), not rows")
        fields = (getattr(self, f) for f in _FIELDS)
        parts = [None if x is None else x.tensor_split(n) for x in fields]
        return [Batch(*(None if p is None else p[k] for p in parts)) for k in range(n)]


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
