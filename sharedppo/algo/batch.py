"""The views the update learns from: a rollout's transitions flattened (:class:`Batch`) or as
whole env sequences for a recurrent network (:class:`Sequences`)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from torch import Tensor


@dataclass
class Transitions:
    """What a batch and a recurrent network's sequences both hold per transition."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor


@dataclass
class Sequences(Transitions):
    """Whole env sequences of a rollout, [T, n] per field, for a recurrent network to replay.

    The update takes minibatches of envs (:meth:`select`); the loss reads the valid rows,
    flattened (:meth:`batch`), and the forward pass replays the whole sequence from
    ``state0`` with the state zeroed where ``starts`` is 1, then takes ``rows``.
    """

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
_FIELDS = (*(f.name for f in fields(Transitions)), "masks", "action_mask")


@dataclass
class Batch(Transitions):
    """The transitions of one rollout, flattened, reset steps removed; a recurrent network's
    batch also holds the whole env sequences (``sequence``) its forward pass replays."""

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
