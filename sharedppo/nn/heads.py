"""Action distributions for the policy head, chosen from the environment's action space.

Each takes the policy head's output and samples, scores and picks actions without building
torch.distributions objects (whose construction and argument checks cost more than the
network's forward pass on small batches).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError

# An invalid action's logit: its probability underflows to exactly 0 while log-probs stay
# finite, so entropies (0 x log 0) and gradients stay free of NaN.
MASKED_LOGIT = -1e9


def mask_logits(out: Tensor, action_mask: Tensor | None) -> Tensor:
    """Logits with invalid actions (``action_mask`` False) ruled out; the identity for None."""
    return out if action_mask is None else out.masked_fill(~action_mask, MASKED_LOGIT)


# Below this many rows Gumbel-max (fewest ops) is fastest; above it the inverse CDF is, since
# torch's exponential_ is several times slower per number than rand on CPU.
INVERSE_CDF_MIN_ROWS = 256


def sample_categorical(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Draw actions and their log-probs from categorical distributions over the last dim.

    Small batches: Gumbel-max in its exponential form, argmax(p / E) with E ~ Exp(1).
    Large batches: inverse CDF, the number of cumulative probabilities below U ~ U[0, 1).
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    if logits.shape[0] < INVERSE_CDF_MIN_ROWS:
        actions = (probs / torch.empty_like(probs).exponential_()).argmax(dim=-1)
    else:
        u = torch.rand((*probs.shape[:-1], 1), dtype=probs.dtype, device=probs.device)
        # The clamp guards the last cumulative probability rounding below U.
        actions = (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)
    return actions, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def categorical_scores(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """(normalised log-probs of every action, log-prob of the actions taken)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def categorical_entropy(log_probs: Tensor) -> Tensor:
    """Entropy of each row, from normalised log-probabilities."""
    return -(log_probs.exp() * log_probs).sum(-1)


class Categorical(nn.Module):
    """Discrete(n): one categorical over n actions."""

    action_dtype = torch.long

    def __init__(self, n: int, start: int | np.ndarray = 0) -> None:
        super().__init__()
        self.num_outputs = n
        self.action_shape: tuple[int, ...] = ()
        # Actions are stored from 0; the env's own numbering may start elsewhere.
        self.shift = start if np.any(start) else None

    def sample(self, out: Tensor) -> tuple[Tensor, Tensor]:
        return sample_categorical(out)

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        return categorical_scores(out, actions)[1]

    def scored(self, out: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """(normalised log-probs of every action, log-prob of the actions taken)."""
        return categorical_scores(out, actions)

    def entropy(self, out: Tensor) -> Tensor:
        return categorical_entropy(torch.log_softmax(out, dim=-1))

    def grad_out(
        self, log_probs: Tensor, actions: Tensor, dlogp: Tensor, ent_coef: float
    ) -> Tensor:
        """d(loss)/d(logits) from d(loss)/d(log-prob of each row's action) and the entropy
        bonus -ent_coef * mean(entropy); ``log_probs`` are the normalised scores."""
        probs = log_probs.exp()
        # d logp(a) / d logits = onehot(a) - probs.
        dout = probs * (-dlogp).unsqueeze(-1)
        dout.scatter_add_(-1, actions.unsqueeze(-1), dlogp.unsqueeze(-1))
        if ent_coef > 0:
            # d(-c mean H) / d logits = c / n * probs * (log_probs + H).
            entropy = -(probs * log_probs).sum(-1, keepdim=True)
            dout.add_(probs * (log_probs + entropy), alpha=ent_coef / len(dlogp))
        return dout

    def mode(self, out: Tensor) -> Tensor:
        return out.argmax(-1)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        # A new array, like every head's to_env: the rollout passes a view of its memory.
        return actions.copy() if self.shift is None else actions + self.shift


class MultiCategorical(Categorical):
    """MultiDiscrete(nvec): independent categoricals, log-probs and entropies summed."""

    def __init__(self, nvec: np.ndarray, start: np.ndarray) -> None:
        super().__init__(int(nvec.sum()), start)
        self.sizes = [int(n) for n in nvec]
        self.action_shape = (len(self.sizes),)

    def _split(self, out: Tensor) -> tuple[Tensor, ...]:
        return out.split(self.sizes, dim=-1)

    def sample(self, out: Tensor) -> tuple[Tensor, Tensor]:
        draws = [sample_categorical(logits) for logits in self._split(out)]
        return torch.stack([a for a, _ in draws], -1), sum(lp for _, lp in draws)

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        return sum(
            categorical_scores(logits, actions[..., i])[1]
            for i, logits in enumerate(self._split(out))
        )

    def scored(self, out: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        # One set of scores per component: nothing that needs scored() takes this head.
        raise NotImplementedError("MultiDiscrete heads are scored per component")

    def entropy(self, out: Tensor) -> Tensor:
        return sum(
            categorical_entropy(torch.log_softmax(logits, dim=-1)) for logits in self._split(out)
        )

    def mode(self, out: Tensor) -> Tensor:
        return torch.stack([logits.argmax(-1) for logits in self._split(out)], -1)


class Gaussian(nn.Module):
    """Box(d,): independent normals; the mean comes from the trunk, log-std is learned per
    dimension and does not depend on the state. Actions are clipped to the bounds only on the
    way to the environment; the unclipped sample is what is stored and scored.
    """

    action_dtype = torch.float32

    def __init__(self, space: gym.spaces.Box, init_log_std: float = 0.0) -> None:
        super().__init__()
        # Any shape is learned flat and handed to the env in its own shape.
        self.num_outputs = int(np.prod(space.shape))
        self.action_shape = (self.num_outputs,)
        self.env_shape = space.shape
        self.log_std = nn.Parameter(torch.full((self.num_outputs,), float(init_log_std)))
        self.low = space.low.astype(np.float32).reshape(-1)
        self.high = space.high.astype(np.float32).reshape(-1)

    def sample(self, out: Tensor) -> tuple[Tensor, Tensor]:
        noise = torch.randn_like(out)
        actions = out + noise * self.log_std.exp()
        return actions, self.noise_log_prob(noise)

    def noise_log_prob(self, noise: Tensor, log_std: Tensor | None = None) -> Tensor:
        """The log-prob of mean + std * noise, whatever the mean: the noise's and the
        log-std's alone (``log_std``: a copy taken earlier; None: the current one)."""
        log_std = self.log_std if log_std is None else log_std
        return -(0.5 * noise.square() + log_std + 0.5 * math.log(2 * math.pi)).sum(-1)

    def draws(self, actions: Tensor) -> GaussianDraws:
        """Noise for a whole rollout whose action rows are ``actions`` [T, N, d]."""
        return GaussianDraws(self, actions)

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        return self.scored(out, actions)[1]

    def scored(self, out: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """(z = (action - mean) / std per dimension, log-prob of the actions)."""
        z = (actions - out) * (-self.log_std).exp()
        return z, -(0.5 * z.square() + self.log_std + 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, out: Tensor) -> Tensor:
        per_dim = 0.5 + 0.5 * math.log(2 * math.pi) + self.log_std
        return per_dim.sum().expand(out.shape[:-1])

    def grad_out(self, z: Tensor, actions: Tensor, dlogp: Tensor, ent_coef: float) -> Tensor:
        """d(loss)/d(mean) from d(loss)/d(log-prob) and the entropy bonus; writes the log-std's
        gradient into its ``.grad``. ``z`` = (action - mean) / std, the scores."""
        # d logp / d mean = z / std; d logp / d log_std = z^2 - 1.
        dz = dlogp.unsqueeze(-1) * z
        # The entropy of a Gaussian is sum(log_std) + const, whatever the state.
        self.log_std.grad.copy_((dz * z - dlogp.unsqueeze(-1)).sum(0)).sub_(ent_coef)
        return dz * (-self.log_std).exp()

    def mode(self, out: Tensor) -> Tensor:
        return out

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        # The ufuncs rather than np.clip, whose Python wrapper costs ~10 us per one-env step.
        clipped = np.minimum(np.maximum(actions, self.low), self.high)
        return clipped.reshape(*actions.shape[:-1], *self.env_shape)


class GaussianDraws:
    """A Gaussian policy's noise for one rollout, drawn in one call before its first step.

    An action is mean + std * noise, and its log-prob depends on the noise and the log-std
    alone, which the rollout does not change; so acting is one ``addcmul`` per step, written
    straight into the memory's action row, and the rollout's log-probs are one computation at
    its end. Per-step torch calls are what a one-env MuJoCo rollout pays for most: between two
    MuJoCo steps each costs three to four times what it does in a loop of its own (a
    ``torch.tanh`` on one row of 64 1.4 -> 5.2 us, docs/benchmarks.md). Sampling takes the same
    distribution as :meth:`Gaussian.sample`, not the same random numbers.
    """

    def __init__(self, dist: Gaussian, actions: Tensor) -> None:
        self.dist = dist
        self.noise = torch.randn_like(actions)
        # The log-std as the rollout starts: actions and log-probs both use this copy.
        self.log_std = dist.log_std.detach().clone()
        self.std = self.log_std.exp()
        self._noise_rows, self._action_rows = self.noise.unbind(0), actions.unbind(0)
        self._next = 0

    def sample(self, out: Tensor) -> Tensor:
        """The next step's actions from the means ``out`` [N, d], written into its row."""
        t = self._next
        self._next += 1
        return torch.addcmul(out, self._noise_rows[t], self.std, out=self._action_rows[t])

    def log_probs(self) -> Tensor:
        """[T, N]: the log-prob of every action sampled from this noise."""
        return self.dist.noise_log_prob(self.noise, self.log_std)


class Bernoulli(nn.Module):
    """MultiBinary(n): independent coins, one logit each; log-probs and entropies summed."""

    action_dtype = torch.float32  # 0/1 as floats: they enter the log-prob arithmetic

    def __init__(self, space: gym.spaces.MultiBinary) -> None:
        super().__init__()
        self.env_shape = tuple(np.atleast_1d(space.n))
        self.num_outputs = int(np.prod(self.env_shape))
        self.action_shape = (self.num_outputs,)

    def sample(self, out: Tensor) -> tuple[Tensor, Tensor]:
        actions = (torch.rand_like(out) < torch.sigmoid(out)).to(out.dtype)
        return actions, self.log_prob(out, actions)

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        # log sigmoid(l) if a = 1, log sigmoid(-l) if a = 0: -softplus(-(2a - 1) l).
        return -F.softplus((1 - 2 * actions) * out).sum(-1)

    def entropy(self, out: Tensor) -> Tensor:
        p = torch.sigmoid(out)
        return (F.softplus(out) - p * out).sum(-1)

    def mode(self, out: Tensor) -> Tensor:
        return (out > 0).to(out.dtype)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        return actions.astype(np.int8).reshape(*actions.shape[:-1], *self.env_shape)


Head = Categorical | Gaussian | Bernoulli


def make_distribution(space: gym.Space, log_std_init: float = 0.0) -> Head:
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(int(space.n), int(space.start))
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return MultiCategorical(space.nvec, space.start)
    if isinstance(space, gym.spaces.MultiBinary):
        return Bernoulli(space)
    if isinstance(space, gym.spaces.Box):
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ConfigError(
                f"action space {space} has unbounded dimensions; sharedppo's "
                "Gaussian head clips actions to finite bounds"
            )
        return Gaussian(space, log_std_init)
    raise ConfigError(
        f"action space {space} is not supported: sharedppo's policy head handles Discrete, "
        "MultiDiscrete, MultiBinary and Box actions"
    )
