"""Export for deployment (the ``sharedppo-export`` command is ``cli/export.py``).

The exported model takes the raw observation (a Dict or Tuple observation: one input per
part, named as ``Part.key``; Discrete and MultiDiscrete parts as integers) and
returns the policy head's output (action logits, or the Gaussian's mean) and the value; the
saved observation normalisation is inside it. Dropout is off, as when evaluating. A recurrent
network's model also takes its state (input ``state``, zeros at an episode start) and returns
the next one (output ``state_out``).
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..envs.spaces import Layout
from ..extras import require
from ..nn.act import run_network
from ..nn.actor_critic import ActorCritic
from ..nn.heads import Gaussian
from ..nn.normalize import EPS, ObsNormalizer
from .evaluate import load_policy


class Deployed(nn.Module):
    """Raw observation in; (policy output, value) out; a recurrent network's state goes in
    after the observation and comes out last."""

    def __init__(self, net: ActorCritic, obs_norm: ObsNormalizer) -> None:
        super().__init__()
        self.net = net
        self.layout: Layout | None = net.layout
        self.normalise = obs_norm.enabled
        rms = obs_norm.rms
        self.register_buffer("obs_mean", torch.as_tensor(rms.mean, dtype=torch.float32))
        self.register_buffer(
            "obs_std", torch.as_tensor((rms.var + EPS) ** 0.5, dtype=torch.float32)
        )
        raw = obs_norm.raw if obs_norm.raw is not None else torch.zeros(rms.mean.shape, dtype=bool)
        self.register_buffer("obs_raw", torch.as_tensor(raw, dtype=torch.bool))
        self.clip = float(obs_norm.clip)

    def _flat(self, inputs: tuple[Tensor, ...]) -> Tensor:
        if self.layout is None:
            return inputs[0].float()
        pieces = []
        for part, value in zip(self.layout, inputs, strict=True):
            if part.onehot is not None:  # as spaces.flatten encodes it: a one-hot per entry
                codes = value.long().reshape(value.shape[0], -1)
                for i, (n, start) in enumerate(zip(part.onehot, part.starts, strict=True)):
                    pieces.append(F.one_hot(codes[:, i] - start, n).float())
            else:
                pieces.append(value.float().reshape(value.shape[0], -1))
        return torch.cat(pieces, dim=-1)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        recurrent = self.net.state_shape is not None
        x = self._flat(inputs[:-1] if recurrent else inputs)
        if self.normalise:
            z = ((x - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
            x = torch.where(self.obs_raw, x, z)
        # The network's outputs as acting computes them; masking and choosing are the
        # runtime's, on the logits (or means) this returns.
        out, values, state = run_network(self.net, x, None, inputs[-1] if recurrent else None)
        return (out, values) if state is None else (out, values, state)


def input_names(net: ActorCritic) -> list[str]:
    names = ["obs"] if net.layout is None else [part.key for part in net.layout]
    return names if net.state_shape is None else [*names, "state"]


def output_names(net: ActorCritic) -> list[str]:
    head = "mean" if isinstance(net.dist, Gaussian) else "logits"
    return [head, "value"] if net.state_shape is None else [head, "value", "state_out"]


def example_inputs(net: ActorCritic, obs_shape: tuple[int, ...], batch: int) -> tuple[Tensor, ...]:
    """Random observations of the env's raw shapes, and a random state for a recurrent
    network (for tracing and for tests)."""
    state = () if net.state_shape is None else (torch.randn(batch, *net.state_shape),)
    if net.layout is None:
        return (torch.randn(batch, *obs_shape) * 2, *state)
    inputs = []
    for part in net.layout:  # each part in the shape the env gives it
        if part.onehot is not None:
            sizes = zip(part.onehot, part.starts, strict=True)
            codes = [torch.randint(0, n, (batch, 1)) + start for n, start in sizes]
            inputs.append(torch.cat(codes, 1).reshape(batch, *part.raw))
        elif part.image:
            inputs.append(torch.randint(0, 256, (batch, *part.raw)).float())
        else:
            inputs.append(torch.randn(batch, *part.raw))
    return (*inputs, *state)


def export_onnx(job: Path, out: Path) -> tuple[list[str], list[str]]:
    """Write the ONNX model of a job folder or checkpoint; returns its input and output
    names."""
    require("export", "sharedppo-export --format onnx")
    net, _, _, obs_norm = load_policy(job, torch.device("cpu"))
    return export_model(net, obs_norm, out)


def export_model(
    net: ActorCritic, obs_norm: ObsNormalizer, out: Path
) -> tuple[list[str], list[str]]:
    """Write a loaded policy's ONNX model to ``out``, one self-contained file (the weights
    inside it, not in a ``.data`` file beside it); returns its input and output names."""
    require("export", "ONNX export")
    if next(net.parameters()).device.type != "cpu":
        net = copy.deepcopy(net).cpu()
    model = Deployed(net.eval(), obs_norm).eval()
    names, outputs = input_names(net), output_names(net)
    inputs = example_inputs(net, tuple(obs_norm.rms.mean.shape), batch=2)
    batch = torch.export.Dim("batch", min=1)
    dynamic = (tuple({0: batch} for _ in inputs),)  # forward(*inputs): one tuple argument
    out.parent.mkdir(parents=True, exist_ok=True)
    # The exporter warns about torchvision ops this model does not use.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():  # torch.export's own deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(out),
            input_names=names,
            output_names=outputs,
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,  # a policy of a few MB at most: one file to ship
            verbose=False,
        )
    return names, outputs
