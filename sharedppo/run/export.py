"""Export for deployment: ``sharedppo-export JOB --format onnx --out FILE``.

The exported model takes the raw observation (a Dict observation: one input per key) and
returns the policy head's output (action logits, or the Gaussian's mean) and the value; the
saved observation normalisation is inside it. Dropout is off, as when evaluating. A recurrent
network's model also takes its state (input ``state``, zeros at an episode start) and returns
the next one (output ``state_out``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError
from ..envs.spaces import Layout
from ..extras import require
from ..nn.actor_critic import ActorCritic
from ..nn.heads import Gaussian
from ..nn.normalize import EPS, ObsNormalizer
from .checkpoint import CheckpointError
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
            if part.onehot_start is not None:
                pieces.append(F.one_hot(value.long() - part.onehot_start, part.shape[0]).float())
            else:
                pieces.append(value.float().reshape(value.shape[0], -1))
        return torch.cat(pieces, dim=-1)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        recurrent = self.net.state_shape is not None
        x = self._flat(inputs[:-1] if recurrent else inputs)
        if self.normalise:
            z = ((x - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
            x = torch.where(self.obs_raw, x, z)
        if recurrent:
            return self.net.step(x, None, inputs[-1])
        return self.net(x)


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
    for part in net.layout:
        if part.onehot_start is not None:
            inputs.append(torch.randint(0, part.shape[0], (batch,)) + part.onehot_start)
        elif part.image:
            inputs.append(torch.randint(0, 256, (batch, *part.shape)).float())
        else:
            inputs.append(torch.randn(batch, *part.shape))
    return (*inputs, *state)


def export_onnx(job: Path, out: Path) -> tuple[list[str], list[str]]:
    """Write the ONNX model of a job folder or checkpoint; returns its input and output
    names."""
    require("export", "sharedppo-export --format onnx")
    net, _, _, obs_norm = load_policy(job, torch.device("cpu"))
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
            verbose=False,
        )
    return names, outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sharedppo-export", description="Export a trained sharedppo policy."
    )
    parser.add_argument("path", type=Path, help="a job folder or a .pt checkpoint")
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    args = parser.parse_args(argv)
    try:
        inputs, outputs = export_onnx(args.path, args.out)
    except (CheckpointError, ConfigError) as err:
        print(f"sharedppo-export: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # --out in a read-only folder, a full disk
        where = err.filename or args.out
        print(f"sharedppo-export: error: cannot write {where}: {err.strerror}", file=sys.stderr)
        sys.exit(2)
    extra = " and state" if "state" in inputs else ""
    print(f"wrote {args.out}: raw observation{extra} in, {', '.join(outputs)} out")


if __name__ == "__main__":
    main()
