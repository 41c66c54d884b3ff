"""The recurrent core (LSTM or GRU cells) and where its state resets.

The cells compute what ``nn.LSTMCell`` and ``nn.GRUCell`` compute, from those modules'
parameters, with the input projection split off: acting projects one step's input, replaying
a stored sequence projects all its steps in one matrix product, and both then run the same
per-step ops, so replaying reproduces what acting computed (the PPO ratio starts at 1).

Under gymnasium's next-step autoreset an episode's last step returns its final observation;
the next step acts on it (its action is ignored, its value is the bootstrap of the episode,
so it still uses the episode's state) and returns the reset observation. The episode starts
on the step after that: a done at step t zeroes the state at step t + 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}
# State rows per core: LSTM keeps h and c, GRU only h.
STATE_ROWS = {"lstm": 2, "gru": 1}


def lstm_cell(
    gates_in: Tensor, h: Tensor, c: Tensor, w_hh: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One LSTM step from the projected input ``gates_in`` = x W_ih^T + b_ih + b_hh (gates
    i, f, g, o: torch's order): (h, c, and for the backward pass the gates' sigmoids, g and
    tanh(c))."""
    size = h.shape[-1]
    gates = torch.addmm(gates_in, h, w_hh.t())
    sig = torch.sigmoid(gates)
    g = torch.tanh(gates[:, 2 * size : 3 * size])
    c = torch.addcmul(sig[:, size : 2 * size] * c, sig[:, :size], g)
    tc = torch.tanh(c)
    return sig[:, 3 * size :] * tc, c, sig, g, tc


def gru_cell(
    gates_in: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One GRU step from the projected input ``gates_in`` = x W_ih^T + b_ih (gates r, z, n:
    torch's order): (h, and for the backward pass sigmoid(r, z), n and h W_hh^T + b_hh)."""
    size = h.shape[-1]
    gh = torch.addmm(b_hh, h, w_hh.t())
    rz = torch.sigmoid(gates_in[:, : 2 * size] + gh[:, : 2 * size])
    n = torch.tanh(torch.addcmul(gates_in[:, 2 * size :], rz[:, :size], gh[:, 2 * size :]))
    return torch.lerp(n, h, rz[:, size:]), rz, n, gh


class LSTMSequence(torch.autograd.Function):
    """An LSTM over [T, n] steps with resets, and its hand-derived backward pass through time.

    Autograd through the step loop records and walks a dozen small ops per step; this keeps
    what the backward pass needs from the forward loop and runs about half as many ops per
    step, with the weight gradient as one matrix product over all steps.
    """

    @staticmethod
    def forward(ctx, gates_in: Tensor, h: Tensor, c: Tensor, keep: Tensor, w_hh: Tensor) -> Tensor:
        """``gates_in`` [T, n, 4H], initial ``h`` and ``c`` [n, H], ``keep`` [T, n, 1] (0 where
        the state is zeroed first): the outputs h [T, n, H]."""
        outs, h_ins, c_ins, sigs, gs, tcs = [], [], [], [], [], []
        for t in range(gates_in.shape[0]):
            h, c = h * keep[t], c * keep[t]
            h_ins.append(h)
            c_ins.append(c)
            h, c, sig, g, tc = lstm_cell(gates_in[t], h, c, w_hh)
            outs.append(h)
            sigs.append(sig)
            gs.append(g)
            tcs.append(tc)
        stack = torch.stack
        ctx.save_for_backward(
            stack(h_ins), stack(c_ins), stack(sigs), stack(gs), stack(tcs), keep, w_hh
        )
        return stack(outs)

    @staticmethod
    def backward(ctx, d_out: Tensor) -> tuple[Tensor | None, ...]:
        h_in, c_in, sig, g, tc, keep, w_hh = ctx.saved_tensors
        size = h_in.shape[-1]
        i, f, o = sig[..., :size], sig[..., size : 2 * size], sig[..., 3 * size :]
        # What each step's gate gradients multiply, for all steps at once: d gates_i = dc x
        # g i (1 - i), d gates_f = dc c_in f (1 - f), d gates_g = dc i (1 - g^2), d gates_o =
        # dh tanh(c) o (1 - o); and dc gains dh o (1 - tanh(c)^2).
        dsig = sig * (1 - sig)
        factor = torch.cat((g * dsig[..., :size], c_in * dsig[..., size : 2 * size]), -1)
        factor = torch.cat((factor, i * (1 - g * g), tc * dsig[..., 3 * size :]), -1)
        dc_factor = o * (1 - tc * tc)
        forget = f * keep
        d_gates = torch.empty_like(sig)
        d_gates3 = d_gates[..., : 3 * size].unflatten(-1, (3, size))
        factor3 = factor[..., : 3 * size].unflatten(-1, (3, size))
        dh_next = dc_next = None
        for t in range(d_out.shape[0] - 1, -1, -1):
            dh = d_out[t] if dh_next is None else d_out[t] + dh_next
            dc = dh * dc_factor[t] if dc_next is None else torch.addcmul(dc_next, dh, dc_factor[t])
            torch.mul(factor3[t], dc.unsqueeze(1), out=d_gates3[t])
            torch.mul(factor[t, :, 3 * size :], dh, out=d_gates[t, :, 3 * size :])
            dh_next = (d_gates[t] @ w_hh).mul_(keep[t])
            dc_next = dc * forget[t]
        flat = d_gates.flatten(0, 1)
        d_w_hh = flat.t() @ h_in.flatten(0, 1) if ctx.needs_input_grad[4] else None
        d_h = dh_next if ctx.needs_input_grad[1] else None
        d_c = dc_next if ctx.needs_input_grad[2] else None
        return d_gates, d_h, d_c, None, d_w_hh


class GRUSequence(torch.autograd.Function):
    """A GRU over [T, n] steps with resets, and its hand-derived backward pass through time
    (see :class:`LSTMSequence`)."""

    @staticmethod
    def forward(
        ctx, gates_in: Tensor, h: Tensor, keep: Tensor, w_hh: Tensor, b_hh: Tensor
    ) -> Tensor:
        """``gates_in`` [T, n, 3H], initial ``h`` [n, H], ``keep`` [T, n, 1]: outputs h
        [T, n, H]."""
        outs, h_ins, rzs, ns, ghs = [], [], [], [], []
        for t in range(gates_in.shape[0]):
            h = h * keep[t]
            h_ins.append(h)
            h, rz, n, gh = gru_cell(gates_in[t], h, w_hh, b_hh)
            outs.append(h)
            rzs.append(rz)
            ns.append(n)
            ghs.append(gh)
        stack = torch.stack
        ctx.save_for_backward(stack(h_ins), stack(rzs), stack(ns), stack(ghs), keep, w_hh)
        return stack(outs)

    @staticmethod
    def backward(ctx, d_out: Tensor) -> tuple[Tensor | None, ...]:
        h_in, rz, n, gh, keep, w_hh = ctx.saved_tensors
        size = h_in.shape[-1]
        r, z = rz[..., :size], rz[..., size:]
        # Per step, from dh: d n_pre = dh (1 - z)(1 - n^2), d z_pre = dh (h_in - n) z (1 - z),
        # d r_pre = d n_pre gh_n r (1 - r); the hidden side's n gradient is d n_pre r.
        dn_factor = (1 - z) * (1 - n * n)
        dz_factor = (h_in - n) * z * (1 - z)
        dr_factor = gh[..., 2 * size :] * r * (1 - r)
        d_gi = torch.empty_like(gh)
        d_gh = torch.empty_like(gh)
        dh_next = None
        for t in range(d_out.shape[0] - 1, -1, -1):
            dh = d_out[t] if dh_next is None else d_out[t] + dh_next
            dn = torch.mul(dh, dn_factor[t], out=d_gi[t, :, 2 * size :])
            torch.mul(dn, dr_factor[t], out=d_gi[t, :, :size])
            torch.mul(dh, dz_factor[t], out=d_gi[t, :, size : 2 * size])
            d_gh[t, :, : 2 * size] = d_gi[t, :, : 2 * size]
            torch.mul(dn, r[t], out=d_gh[t, :, 2 * size :])
            dh_next = torch.addmm(dh * z[t], d_gh[t], w_hh).mul_(keep[t])
        flat = d_gh.flatten(0, 1)
        d_w_hh = flat.t() @ h_in.flatten(0, 1) if ctx.needs_input_grad[3] else None
        d_b_hh = flat.sum(0) if ctx.needs_input_grad[4] else None
        d_h = dh_next if ctx.needs_input_grad[1] else None
        return d_gi, d_h, None, d_w_hh, d_b_hh


class EpisodeStarts:
    """Which envs start an episode at the coming step (1.0) and at the step after it.

    The first step of all is a start; after that a start is a done two steps earlier (see the
    module's note). Carried across rollouts, and in checkpoints, so a resume resets the state
    exactly where an uninterrupted run would.
    """

    def __init__(self, num_envs: int) -> None:
        self.now = np.ones(num_envs, dtype=np.float32)
        self.next = np.zeros(num_envs, dtype=np.float32)

    def advance(self, done: np.ndarray) -> None:
        """After an env step that returned ``done``."""
        self.now, self.next = self.next, np.asarray(done, dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {
            "now": torch.from_numpy(self.now.copy()),
            "next": torch.from_numpy(self.next.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.now = state["now"].cpu().numpy().copy()
        self.next = state["next"].cpu().numpy().copy()
