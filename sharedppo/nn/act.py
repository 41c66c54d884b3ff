"""The one act path: normalise -> forward -> mask -> mode or sample -> to_env.

Training (``PPOAgent.act``), evaluation (``run.evaluate``), the Python API
(``Policy.predict``) and the exported model (``run.export.Deployed``) all go through here, so
a policy evaluated, predicted with or deployed computes what it computed while it learned.

Where they differ is where each path starts and stops. Training's rollout normalises itself
(its statistics update as it goes, and the memory stores the normalised rows) and hands the
env actions from its memory's host rows, so the agent takes :func:`act`: forward (with its
dropout masks and precision) -> mask -> sample. Evaluation and predict take the whole path,
numpy in and numpy out, with frozen statistics and no dropout (:func:`act_on_host`). The
exported model stops at the network's outputs (:func:`run_network`): its runtime masks and
chooses, and it normalises inside the graph (``Deployed``), in torch rather than numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .actor_critic import ActorCritic
from .heads import GaussianDraws, Head, mask_logits
from .normalize import ObsNormalizer

# How a forward pass runs: called as run(forward, *args); Precision.run puts it under autocast.
Run = Callable[..., tuple]


def direct(forward: Callable[..., tuple[Tensor, ...]], *args: object) -> tuple:
    """``forward(*args)`` as it is: fp32, as evaluation, predict and export run."""
    return forward(*args)


def run_network(
    net: ActorCritic,
    obs: Tensor,
    masks: Tensor | None = None,
    state: Tensor | None = None,
    starts: Tensor | None = None,
    run: Run = direct,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The network's outputs for one step: (policy head output, values, new state). A
    recurrent network is given its ``state`` (zeroed first where ``starts`` is 1) and returns
    the next one; a network without a core takes ``state=None`` and returns None for it."""
    if state is None:
        # net.forward, not net: module-call hooks cost ~5 us, on the rollout's every step.
        out, values = run(net.forward, obs, masks)
        return out, values, None
    return run(net.step, obs, masks, state, starts)


def choose(
    dist: Head,
    out: Tensor,
    action_mask: Tensor | None = None,
    deterministic: bool = False,
    draws: GaussianDraws | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Mask, then the mode or a sample: (actions, log-probs). The log-probs are None for the
    mode, and with ``draws`` (a Gaussian policy's noise drawn for the rollout, which has the
    whole rollout's log-probs: ``draws.log_probs()``)."""
    if draws is not None:
        # Gaussian heads have no action masks: the mask step is the identity for them.
        return draws.sample(out), None
    out = mask_logits(out, action_mask)
    if deterministic:
        return dist.mode(out), None
    return dist.sample(out)


def act(
    net: ActorCritic,
    obs: Tensor,
    masks: Tensor | None = None,
    action_mask: Tensor | None = None,
    state: Tensor | None = None,
    starts: Tensor | None = None,
    *,
    deterministic: bool = False,
    draws: GaussianDraws | None = None,
    run: Run = direct,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """Forward -> mask -> mode or sample on network inputs: (actions, log-probs, values, new
    state). ``masks``: dropout masks (None: the mean network); ``action_mask``: True for the
    valid actions (None: all are); the rest as in :func:`run_network` and :func:`choose`."""
    out, values, state = run_network(net, obs, masks, state, starts, run)
    actions, logprobs = choose(net.dist, out, action_mask, deterministic, draws)
    return actions, logprobs, values, state


@torch.inference_mode()
def act_on_host(
    net: ActorCritic,
    obs: np.ndarray,
    device: torch.device,
    obs_norm: ObsNormalizer | None = None,
    action_mask: np.ndarray | Tensor | None = None,
    state: Tensor | None = None,
    starts: np.ndarray | None = None,
    deterministic: bool = True,
) -> tuple[np.ndarray, Tensor | None]:
    """The whole path from a batch of observations to the env's actions: normalise (frozen
    statistics) -> forward (no dropout) -> mask -> mode or sample -> to_env. Returns (actions
    in the env's format, the recurrent network's new state or None); ``starts``: 1.0 for the
    rows whose episode starts now."""
    if obs_norm is not None:
        obs = obs_norm(obs, update=False)
    x = torch.as_tensor(obs, dtype=torch.float32, device=device)
    valid = None if action_mask is None else torch.as_tensor(action_mask, device=device)
    start = None if starts is None else torch.as_tensor(starts, device=device)
    actions, _, _, state = act(net, x, None, valid, state, start, deterministic=deterministic)
    return net.dist.to_env(actions.cpu().numpy()), state
