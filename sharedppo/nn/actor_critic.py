"""The actor-critic: one trunk shared by a policy head and a value head (the trunks' inputs
and recurrent cores are built in ``trunk.py``).

Dropout is applied with explicit masks instead of ``nn.Dropout``: the masks drawn when the
agent acts are stored with the transition and reused when it learns, so the PPO ratio
compares the same sub-network before and after the update (and is exactly 1 before it).

With ``network.recurrent`` each trunk ends in a recurrent core (``recurrent.py``) that the
heads read: the network then acts one step at a time with :meth:`ActorCritic.step`, carrying
its state, and learns by replaying whole env sequences (:meth:`ActorCritic.forward_sequence`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import NetworkConfig
from ..envs.spaces import Layout
from .activations import activate_, is_tanh
from .grad import no_grad
from .heads import make_distribution
from .init import initialise
from .precision import fp32_region
from .products import value_head, weight_grad
from .recurrent import STATE_ROWS, GRUSequence, LSTMSequence, gru_cell, lstm_cell
from .trunk import recurrent_cores, trunk_input

_tanh_backward_out = torch.ops.aten.tanh_backward.grad_input
_threshold_backward = torch.ops.aten.threshold_backward


@dataclass
class Recorded:
    """A forward pass kept for the hand-derived backward pass (``ActorCritic.backward``)."""

    inputs: list[list[Tensor]]  # per trunk: the input of each layer
    outputs: list[list[Tensor]]  # per trunk: each layer's activation, before its dropout mask
    hidden: list[Tensor]  # per trunk: what the heads read
    masks: Tensor | None
    out: Tensor  # policy head output
    values: Tensor


class ActorCritic(nn.Module):
    def __init__(
        self,
        obs_shape: tuple[int, ...] | int,
        action_space: gym.Space | int,
        cfg: NetworkConfig,
        layout: Layout | None = None,
    ) -> None:
        """``layout``: how a Dict observation was flattened (``spaces.FlattenDict``); its keys
        are encoded separately before the trunk."""
        super().__init__()
        obs_shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        if isinstance(action_space, int):
            action_space = gym.spaces.Discrete(action_space)
        self.cfg = cfg
        self.layout = layout
        # The distribution follows the action space; a Gaussian's log-std lives in it.
        self.dist = make_distribution(action_space, cfg.log_std_init)
        self.shared = cfg.shared
        self.dropout = float(cfg.dropout)
        num_trunks = 1 if cfg.shared else 2
        # Assigned in this order (encoders or convolutions, trunks, cores, heads): the order of
        # the parameters, so of the optimizer's flat buffer and of the initialisation's draws.
        trunk_in = trunk_input(obs_shape, cfg, layout, num_trunks)
        self.encoders, self.convs = trunk_in.encoders, trunk_in.convs
        self.depth, self.width = trunk_in.depth, trunk_in.width
        self.activation, self.channels_last = trunk_in.activation, trunk_in.channels_last
        self.trunks = nn.ModuleList(
            nn.ModuleList(
                nn.Linear(trunk_in.in_dim if i == 0 else self.width, self.width)
                for i in range(self.depth)
            )
            for _ in range(num_trunks)
        )
        self.recurrent, self.cores, head_in = recurrent_cores(cfg, self.width, num_trunks)
        self.policy_head = nn.Linear(head_in, self.dist.num_outputs)
        self.value_head = nn.Linear(head_in, 1)
        initialise(self, cfg.init)
        self._after_move: list[Callable[[], None]] = []
        if self.channels_last:  # moves only the 4-D conv weights
            self.to(memory_format=torch.channels_last)
        self._cache_parameters()

    def _cache_parameters(self) -> None:
        # The forward pass reads plain lists of (weight, bias): nn.Module attribute lookups
        # and ModuleList indexing cost more than a 64-wide layer on a few rows (about half of
        # an 8-row forward). They hold the Parameter objects, which loading a state dict and
        # the flat optimizer buffer update in place; _apply rebuilds them after a move.
        self.layers = [[(layer.weight, layer.bias) for layer in trunk] for trunk in self.trunks]
        self.heads = (
            (self.policy_head.weight, self.policy_head.bias),
            (self.value_head.weight, self.value_head.bias),
        )
        self.core_weights = [
            (core.weight_ih, core.bias_ih, core.weight_hh, core.bias_hh)
            for core in self.cores or []
        ]

    def after_move(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after every ``.to()``/``.cuda()``/``.double()`` (the optimizer rebinds)."""
        self._after_move.append(hook)

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 (torch's own signature)
        module = super()._apply(fn, recurse)
        self._cache_parameters()
        for hook in self._after_move:
            hook()
        return module

    @property
    def mask_shape(self) -> tuple[int, int]:
        return (len(self.trunks) * self.depth, self.width)

    def sample_masks(
        self, batch: int, device: torch.device, generator: torch.Generator | None = None
    ) -> Tensor | None:
        """Inverted-dropout masks for a batch, or None when dropout is off; ``generator``:
        a packed run's own (None: torch's)."""
        if self.dropout == 0.0:
            return None
        keep = 1.0 - self.dropout
        masks = torch.empty((batch, *self.mask_shape), device=device)
        return masks.bernoulli_(keep, generator=generator).div_(keep)

    def _trunk(
        self,
        index: int,
        x: Tensor,
        masks: Tensor | None,
        record: tuple[list[Tensor], list[Tensor]] | None = None,
    ) -> Tensor:
        """One trunk's layers; ``record`` collects each layer's input and activation."""
        if self.convs is not None:
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            # Frames arrive as 0..255, stored as uint8 or float: the same fp32 quotient.
            x = self.convs[index](x / 255.0)
        elif self.encoders is not None:
            x = self.encoders[index](x)
        elif x.dim() > 2:
            x = x.flatten(1)
        activation, depth = self.activation, self.depth
        for j, (weight, bias) in enumerate(self.layers[index]):
            y = activate_(activation, F.linear(x, weight, bias))
            if record is not None:
                record[0].append(x)
                record[1].append(y)
            x = y if masks is None else y * masks[:, index * depth + j]
        return x

    def forward(self, obs: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Policy head output [B, outputs] and values [B]; masks=None: no dropout."""
        if self.cores is not None:
            raise TypeError("a recurrent network acts through step(obs, masks, state, starts)")
        hidden = self._trunk(0, obs, masks)
        value_hidden = hidden if self.shared else self._trunk(1, obs, masks)
        return self._heads(hidden, value_hidden)

    def _heads(self, policy_in: Tensor, value_in: Tensor) -> tuple[Tensor, Tensor]:
        """Both heads' linear maps: policy output [B, outputs] and values [B]; in fp32 also
        under a mixed precision (they are a few hundred multiply-adds per row, and what they
        output is what the policy samples from and the value loss fits)."""
        (policy_w, policy_b), (value_w, value_b) = self.heads
        device_type = policy_in.device.type
        if not torch.is_autocast_enabled(device_type):  # the per-step path at fp32: no casts
            return F.linear(policy_in, policy_w, policy_b), value_head(value_in, value_w, value_b)
        with fp32_region(device_type):  # inputs cast to the weights' own dtype
            return (
                F.linear(policy_in.to(policy_w.dtype), policy_w, policy_b),
                value_head(value_in.to(value_w.dtype), value_w, value_b),
            )

    @property
    def state_shape(self) -> tuple[int, int] | None:
        """One env's recurrent state: (cores x (2 for LSTM's h and c, else 1), size); None
        without a core."""
        if self.cores is None:
            return None
        return (len(self.cores) * STATE_ROWS[self.recurrent], self.cores[0].hidden_size)

    def initial_state(self, batch: int, device: torch.device | None = None) -> Tensor | None:
        """The state at an episode start (zeros), or None without a core."""
        shape = self.state_shape
        if shape is None:
            return None
        dtype = self.policy_head.weight.dtype
        return torch.zeros((batch, *shape), dtype=dtype, device=device)

    def step(
        self, obs: Tensor, masks: Tensor | None, state: Tensor, starts: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step of a recurrent network: (policy head output [B, outputs], values [B], new
        state). ``state`` [B, *state_shape] is zeroed where ``starts`` [B] is 1 first."""
        if starts is not None:
            state = state * (1.0 - starts).view(-1, 1, 1)
        lstm = self.recurrent == "lstm"
        hidden, parts = [], []
        for index, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.core_weights):
            x = self._trunk(index, obs, masks)
            # Under a mixed precision the core still runs in fp32: its cells and their
            # hand-derived backward through time (recurrent.py) are written for one dtype.
            with fp32_region(x.device.type):
                x = x.to(w_ih.dtype)  # autocast left it in bf16 or fp16
                if lstm:
                    gates_in = F.linear(x, w_ih, b_ih + b_hh)
                    h0, c0 = state[:, 2 * index], state[:, 2 * index + 1]
                    h, c = lstm_cell(gates_in, h0, c0, w_hh)[:2]
                    parts += (h, c)
                else:
                    h = gru_cell(F.linear(x, w_ih, b_ih), state[:, index], w_hh, b_hh)[0]
                    parts.append(h)
            hidden.append(h)
        out, values = self._heads(hidden[0], hidden[-1])
        return out, values, torch.stack(parts, 1)

    def forward_sequence(
        self, obs: Tensor, masks: Tensor | None, state0: Tensor, starts: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Replay [T, n] env sequences from their initial state ``state0`` [n, *state_shape],
        zeroing it where ``starts`` [T, n] is 1: (policy head output [T, n, outputs], values
        [T, n]), as :meth:`step` computed them step by step. The layers before the core run
        on all T x n rows at once; only the core loops over time, with its hand-derived
        backward pass through time (``recurrent.LSTMSequence``, ``GRUSequence``)."""
        steps, n = starts.shape
        flat_masks = None if masks is None else masks.flatten(0, 1)
        keep = (1.0 - starts).unsqueeze(-1)
        lstm = self.recurrent == "lstm"
        hidden = []
        for index, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.core_weights):
            x = self._trunk(index, obs.flatten(0, 1), flat_masks)
            with fp32_region(x.device.type):  # as in step()
                x = x.to(w_ih.dtype)  # autocast left it in bf16 or fp16
                if lstm:
                    gates_in = F.linear(x, w_ih, b_ih + b_hh).view(steps, n, -1)
                    h0, c0 = state0[:, 2 * index], state0[:, 2 * index + 1]
                    outputs = LSTMSequence.apply(gates_in, h0, c0, keep, w_hh)
                else:
                    gates_in = F.linear(x, w_ih, b_ih).view(steps, n, -1)
                    outputs = GRUSequence.apply(gates_in, state0[:, index], keep, w_hh, b_hh)
            hidden.append(outputs.flatten(0, 1))
        out, values = self._heads(hidden[0], hidden[-1])
        return out.view(steps, n, -1), values.view(steps, n)

    @no_grad
    def forward_recorded(self, obs: Tensor, masks: Tensor | None) -> Recorded:
        """The forward pass, keeping what :meth:`backward` needs (MLP trunks only)."""
        inputs: list[list[Tensor]] = []
        outputs: list[list[Tensor]] = []
        hidden = []
        for index in range(len(self.layers)):
            ins: list[Tensor] = []
            outs: list[Tensor] = []
            hidden.append(self._trunk(index, obs, masks, (ins, outs)))
            inputs.append(ins)
            outputs.append(outs)
        (head_w, head_b), (value_w, value_b) = self.heads
        out = torch.addmm(head_b, hidden[0], head_w.t())
        values = value_head(hidden[-1], value_w, value_b)
        return Recorded(inputs, outputs, hidden, masks, out, values)

    @no_grad
    def backward(self, rec: Recorded, dout: Tensor, dvalues: Tensor) -> None:
        """Write d(loss)/d(parameter) of the trunks and heads into their ``.grad`` (overwriting)
        from the loss's gradients at the heads' outputs; tanh or ReLU MLP trunks only."""
        (head_w, head_b), (value_w, value_b) = self.heads
        torch.mm(dout.t(), rec.hidden[0], out=head_w.grad)
        torch.sum(dout, 0, out=head_b.grad)
        torch.mm(dvalues.unsqueeze(0), rec.hidden[-1], out=value_w.grad)
        torch.sum(dvalues, 0, keepdim=True, out=value_b.grad)
        dhidden = [dout @ head_w]
        if len(self.layers) == 1:
            dhidden[0].addr_(dvalues, value_w[0])
        else:
            dhidden.append(torch.outer(dvalues, value_w[0]))
        # torch.tanh too: a network given it back (scripts/profile_ops.py --ab) is still tanh.
        tanh, masks = is_tanh(self.activation), rec.masks
        for index, trunk in enumerate(self.layers):
            d = dhidden[index]
            for j in range(len(trunk) - 1, -1, -1):
                weight, bias = trunk[j]
                if masks is not None:
                    d = d * masks[:, index * self.depth + j]
                y = rec.outputs[index][j]
                if tanh:  # over d, which nothing reads again (activations.activate_)
                    dpre = _tanh_backward_out(d, y, grad_input=d)
                else:
                    dpre = _threshold_backward(d, y, 0)
                weight_grad(dpre, rec.inputs[index][j], weight.grad)
                torch.sum(dpre, 0, out=bias.grad)
                if j > 0:
                    d = dpre @ weight
