"""One run across processes: data-parallel PPO on ``torch.distributed``.

``torchrun --nproc_per_node=N -m sharedppo ...`` starts N processes (ranks) of one job. Each
steps its own ``env.num_envs`` envs (seeded after the other ranks', so N ranks of n envs are
seeded as one process of N x n), acts locally and computes its minibatch gradient; the
update's global quantities go through :class:`AllReduce` (``algo/reduce.py``): one flat
all-reduce of the gradient before every optimizer step, so all ranks hold the same weights.
The normalisers' statistics are merged across ranks after every rollout (:class:`StatsSync`).

Rank 0 alone writes the job folder; a checkpoint holds every rank's own parts (envs, RNGs,
episodes, the rollout carry) under ``ranks`` so that a resume with the same N continues each
rank exactly. Backend: gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import atexit
import datetime
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..algo.reduce import LOCAL, Reducer
from ..config import ConfigError
from ..extras import first_line
from ..nn.normalize import RunningMeanStd
from .result import TrainingError

# How long a rank waits in a collective for the others (an evaluation on rank 0, a slow
# checkpoint write) before the run is ended as failed; SHAREDPPO_TIMEOUT_S changes it.
TIMEOUT_S = 1800.0

# The parts of a checkpoint that are each rank's own; the rest is the same on every rank.
RANK_PARTS = ("reward_scale", "memory", "episodes", "env", "rng")


class AllReduce:
    """The reducer of a process group: sums in place over every rank."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        collective(dist.all_reduce, x)
        return x


def collective(op: Any, *args: Any, **kwargs: Any) -> Any:
    """A collective; a rank that has gone (it failed, or was killed) ends this one too, in
    one line, as a TrainingError (summary.json then says "failed" and why)."""
    try:
        return op(*args, **kwargs)
    except RuntimeError as err:  # gloo's and NCCL's errors (DistBackendError) among them
        why = first_line(err).split(". This is typically")[0]  # gloo's advice: not ours
        raise TrainingError(
            f"another process of this run has stopped ({why}); every rank stops"
        ) from None


@dataclass
class Ranks:
    """Which process of the run this is: rank 0 of 1 for a plain ``sharedppo`` run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    reducer: Reducer = field(default=LOCAL)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # collectives'

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world_size > 1

    def command(self, command: str) -> str:
        """``command`` (a ``sharedppo ...`` line) as this launch runs it: under torchrun on
        one node, with its process count; on several nodes, as each node's launch gives it."""
        if not self.many:
            return command
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        if per_node != self.world_size:
            nodes = self.world_size // per_node
            launch = f"torchrun --nnodes={nodes} --nproc_per_node={per_node} <rendezvous>"
            return f"{launch} -m {command}"
        return f"torchrun --nproc_per_node={self.world_size} -m {command}"

    def agree(self, flag: bool) -> bool:
        """Whether any rank says ``flag`` (a stop request, a target reached): every rank
        leaves the loop together, never one alone while the others wait in a collective."""
        if not self.many:
            return flag
        return bool(self.reducer.sum_(torch.tensor([float(flag)], device=self.device)) > 0)

    def broadcast_(self, x: torch.Tensor) -> None:
        """Rank 0's ``x`` on every rank (the initial weights)."""
        if self.many:
            collective(dist.broadcast, x, 0)

    def gather_parts(self, parts: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every rank's own checkpoint parts (:data:`RANK_PARTS`), on rank 0; None when the
        run is one process (its checkpoint holds them already) and on other ranks."""
        if not self.many:
            return None
        # As torch.save bytes: gather_object's own pickling of tensors fails to load them
        # (torch 2.13), and a safe load checks what the other ranks sent.
        buffer = io.BytesIO()
        torch.save({k: parts[k].state_dict() for k in RANK_PARTS}, buffer)
        blobs = self.gather(buffer.getvalue())
        if blobs is None:
            return None
        return [torch.load(io.BytesIO(b), map_location="cpu", weights_only=True) for b in blobs]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None on the others)."""
        if not self.many:
            return [obj]
        out = [None] * self.world_size if self.main else None
        collective(dist.gather_object, obj, out, dst=0)
        return out


class Silent:
    """The logger of a rank other than 0: every call does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def launched() -> bool:
    """Whether this process is one of a ``torchrun`` launch of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as the launcher set it (0 outside a launch)."""
    return int(os.environ.get("RANK", "0"))


def join(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the launch's process group (gloo on CPU, NCCL on CUDA); returns this rank and
    its device (``cuda:LOCAL_RANK`` for CUDA). Outside a launch: rank 0 of 1, ``device``."""
    if not launched():
        return Ranks(), device
    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if not dist.is_nccl_available():
            raise ConfigError("device=cuda across processes needs NCCL, which this torch lacks")
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {local} has no GPU: this machine has {torch.cuda.device_count()}; "
                "launch at most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"device={device} is not allowed across processes: use cpu or cuda")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = float(os.environ.get("SHAREDPPO_TIMEOUT_S", TIMEOUT_S))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        atexit.register(leave)
    return Ranks(rank, world, local, AllReduce(world), device), device


def check_world(saved: dict[str, Any], world_size: int, job: Any) -> None:
    """Refuse to resume a job with another number of processes than trained it: its
    checkpoint holds each rank's envs and RNGs, so it continues exactly only as it was."""
    before = int(saved.get("world_size", 1))
    if before != world_size:
        how = (
            "a plain sharedppo command"
            if before == 1
            else f"torchrun with --nnodes x --nproc_per_node = {before}, or "
            f"hydra/launcher=slurm with tasks_per_node x nodes = {before}"
        )
        raise ConfigError(
            f"resume={job}: the job was trained by {before} process(es) and this launch has "
            f"{world_size}; its checkpoint holds each process's envs and RNGs, so it "
            f"continues only with {before}: {how}"
        )


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class StatsSync:
    """Running mean/std statistics merged across ranks once per rollout.

    Within a rollout each rank normalises with the statistics as of its start plus its own
    steps; at its end every rank's new data is merged (Chan et al., about the start's mean),
    so every rank holds the statistics of all ranks' data, as one process would.
    """

    def __init__(self, stats: list[RunningMeanStd], ranks: Ranks) -> None:
        self.stats, self.reducer, self.device = stats, ranks.reducer, ranks.device
        self.start: list[tuple[np.ndarray, np.ndarray, float]] = []

    def begin(self) -> None:
        if self.reducer.world_size == 1:
            return
        self.start = [(np.array(s.mean), np.array(s.var), s.count) for s in self.stats]

    def end(self) -> None:
        if not self.stats or self.reducer.world_size == 1:
            return
        parts = []
        for s, (mean0, _, _) in zip(self.stats, self.start, strict=True):
            d = s.mean - mean0  # this rank's shift of the mean about the start's
            parts += [
                np.atleast_1d(s.count),
                (s.count * d).ravel(),
                (s.count * (s.var + d * d)).ravel(),
            ]
        sums = torch.from_numpy(np.concatenate(parts).astype(np.float64)).to(self.device)
        sums = self.reducer.sum_(sums).cpu()
        n, offset = self.reducer.world_size, 0
        for s, (mean0, var0, count0) in zip(self.stats, self.start, strict=True):
            size = int(np.size(mean0))
            count = sums[offset].item() - (n - 1) * count0
            shift = sums[offset + 1 : offset + 1 + size].numpy().reshape(np.shape(mean0)) / count
            second = (
                sums[offset + 1 + size : offset + 1 + 2 * size].numpy().reshape(np.shape(mean0))
            )
            second = (second - (n - 1) * count0 * var0) / count
            s.mean, s.var, s.count = mean0 + shift, second - shift * shift, count
            offset += 1 + 2 * size
