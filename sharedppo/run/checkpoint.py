"""Checkpoints: their layout and compatibility check, atomic writes, safe loads, when to write.

A checkpoint is a dict with the config it was trained under and one entry per stateful part
of a run, each that part's own ``state_dict()``:

    version       LAYOUT_VERSION
    config        the resolved config (a plain dict)
    model         the network's parameters (and a Gaussian head's log-std)
    optimizer     Adam's moments, step count and learning rate
    obs_norm      observation statistics      reward_scale  return statistics
    memory        what carries into the next rollout (whether each env's last step ended)
    episodes      running returns, the return window, episode count, target step, best, AUC
    env           the env's current observation and its plain-data state (exact resume)
    checkpointer  the best window mean so far and the next periodic step
    rng           Python, numpy and torch generators
    progress      global step, updates, elapsed seconds, seconds to the target

The file is the dict as ``torch.save`` writes it, sealed (``durable.sealed``): metadata (the
env step; whether the run had finished, and then its summary) and a SHA-256 of both, checked
on every load, so a changed bit is refused instead of resuming from altered weights, moments
or RNG state. Resume, evaluation and export read checkpoints through :func:`read`, which
upgrades an older layout (unsealed before layout 3) or refuses it in one line.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..config import Config, Role, has_role
from ..durable import Corrupt, sealed, unsealed, write_atomic
from ..jobdir import LAST, JobDir
from ..keys import dotted

LAYOUT_VERSION = 3
SEALED_SINCE = 3  # the first layout written with a checksum, which it then must carry


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the requested run."""


def serialise(state: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """The sealed bytes of a checkpoint. Serialised in memory first: a full disk then fails
    the write with an OSError, not torch's RuntimeError from inside its zip writer."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return sealed(buffer.getbuffer(), meta)


def save_atomic(state: dict[str, Any], path: Path, meta: dict[str, Any] | None = None) -> None:
    """Write a checkpoint whole or not at all (``durable.write_atomic``): a crash or kill at
    any moment leaves the previous file or the new one."""
    if meta is None:
        step = state.get("progress", {}).get("global_step")
        meta = {"step": step, "final": False, "summary": None}
    write_atomic(path, serialise(state, meta))


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify the seal, then load with ``weights_only=True``: tensors and plain containers
    only, no pickled code."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload, meta = unsealed(path.read_bytes())
    except Corrupt as err:
        raise CheckpointError(f"checkpoint {path} is corrupt: {err}; it was not loaded") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror})") from None
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:  # a file that is no checkpoint fails in any of pickle's ways
        # torch's own message suggests weights_only=False, which would run code from the file.
        safe = "Weights only" in str(err)
        kind = "holds objects a safe load refuses" if safe else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({kind})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} holds no sharedppo state")
    if meta is None and state.get("version", 1) >= SEALED_SINCE:
        # Its seal is gone (a changed bit in the trailer's magic): nothing vouches for it.
        raise CheckpointError(f"checkpoint {path} is corrupt: its checksum is missing")
    return state


def assemble(config: dict[str, Any], parts: dict[str, Stateful]) -> dict[str, Any]:
    """The checkpoint of a run: its config and each part's state."""
    return {
        "version": LAYOUT_VERSION,
        "config": config,
        **{name: part.state_dict() for name, part in parts.items()},
    }


def restore(state: dict[str, Any], parts: dict[str, Stateful]) -> None:
    for name, part in parts.items():
        part.load_state_dict(state[name])


def read(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint in the current layout, upgrading an older one."""
    state = load(path, map_location)
    version = state.get("version", 1)
    if version == 1:
        return _upgrade_v1(state)
    if version == 2:  # layout 3 only added the seal and progress.started_at (optional)
        return {**state, "version": LAYOUT_VERSION}
    if version != LAYOUT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has layout version {version}; this sharedppo reads versions 1 "
            f"to {LAYOUT_VERSION} (a newer sharedppo wrote it)"
        )
    return state


def _upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """Layout 1 (before 2026-11-24) kept the parts' fields side by side at the top level."""
    config = old["config"]
    ppo = config["ppo"]
    # ppo.clip_vloss was a flag reusing clip_ratio as the value range; now it is the range.
    if isinstance(ppo.get("clip_vloss"), bool):
        ppo["clip_vloss"] = ppo["clip_ratio"] if ppo["clip_vloss"] else None
    steps = int(old["global_step"])
    return {
        "version": LAYOUT_VERSION,
        "config": config,
        "model": old["model"],
        "optimizer": old["optimizer"],
        "obs_norm": old["obs_norm"],
        "reward_scale": old["reward_scale"],
        "memory": {"last_done": old["last_done"]},
        "episodes": {
            **old["tracker"],
            "recent": old["recent_returns"],
            "episodes": old["episodes"],
            "target_step": old["target_step"],
            "best_mean": old["best_return"],
            # The return curve before the upgrade is not in the checkpoint: the AUC starts here.
            "area": 0.0,
            "first_step": None,
            "last_point": None,
        },
        "env": {"obs": old["obs"], "env": old["env"]},
        "checkpointer": {"best": old["best_return"], "next_step": None, "saved_step": steps},
        "rng": old["rng"],
        "progress": {
            "global_step": steps,
            "updates": int(old["updates"]),
            "elapsed": float(old["elapsed"]),
            "target_seconds": old["target_seconds"],
        },
    }


def check_resumable(saved: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """Refuse, in one line, to continue a checkpoint under a config it cannot continue.

    No structural key (``Role.STRUCTURAL`` in the schema: the network, the env's id and
    number of copies, the rollout length) may change, a key added to the schema after the
    checkpoint was written counting as its default.
    """
    defaults = dotted(asdict(Config()))
    old, new = defaults | dotted(saved), defaults | dotted(config)
    diff = ", ".join(
        f"{k}={old.get(k)!r} in the checkpoint, {new.get(k)!r} requested"
        for k in sorted(set(old) | set(new))
        if has_role(k, Role.STRUCTURAL) and old.get(k) != new.get(k)
    )
    if diff:
        raise CheckpointError(f"cannot resume {path}: {diff}")


class GlobalRNG:
    """Python, numpy (global) and torch generators, as checkpoint-safe values."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, gauss_np = state["numpy"]
        np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss_np))
        torch.set_rng_state(state["torch"])


def check_writable(job: JobDir) -> None:
    """Fail before training, with one line, if the job's checkpoints cannot be written."""
    target = job.checkpoints
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / ".write-test"
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoints to {target}: {err.strerror}") from None


class Checkpointer:
    """last.pt every ``every_steps`` env steps, best.pt on a new best, bounded snapshots."""

    def __init__(self, job: JobDir, every_steps: int | None, keep: int, next_step: int) -> None:
        self.job = job
        self.every_steps = every_steps
        self.keep = keep
        self.next_step = next_step
        self.best = -float("inf")
        self.saved_step: int | None = None  # of the last last.pt written

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "next_step": self.next_step, "saved_step": self.saved_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.saved_step = state["saved_step"]
        if state["next_step"] is not None:
            self.next_step = int(state["next_step"])

    def due(self, step: int) -> bool:
        return self.every_steps is not None and step >= self.next_step

    def advance(self, step: int) -> None:
        """The next periodic step after ``step``: as :meth:`save` moves it, and on a rank of
        a data-parallel run that does not write (so that every rank saves at the same step)."""
        if self.every_steps is not None:
            while self.next_step <= step:
                self.next_step += self.every_steps

    def save(
        self,
        make_state: Callable[[], dict[str, Any]],
        step: int,
        mean_return: float,
        final: dict[str, Any] | None = None,
    ) -> None:
        """Write last.pt (and best.pt on a new best, and a snapshot); ``make_state`` is called
        after the best is updated, so the checkpoint records it. ``final``: the run's summary,
        given at its end and sealed into the files, so a job killed before its summary.json
        is written still has one (``JobDir.repair_summary``)."""
        best = mean_return > self.best
        if best:
            self.best = mean_return
        self.advance(step)
        had = self.saved_step if self.job.last.is_file() else None
        meta = {"step": step, "final": final is not None, "summary": final}
        data = serialise(make_state(), meta)  # once for every file below
        targets = [self.job.last, *([self.job.best] if best else [])]
        targets += [self.job.snapshot(step)] if self.keep > 0 else []
        for path in targets:
            try:
                write_atomic(path, data)
            except OSError as err:
                raise CheckpointError(self._failed(path, err, had, step)) from None
            if path == self.job.last:
                self.saved_step = step
        for old in self.job.snapshots()[: -self.keep] if self.keep > 0 else []:
            old.unlink(missing_ok=True)

    def _failed(self, path: Path, err: OSError, had: int | None, step: int) -> str:
        """What a failed write left: never a promise about a last.pt that does not exist."""
        if path != self.job.last:
            kept = f"{LAST} at env step {step:,} was written"
        elif had is not None:
            kept = f"the previous {LAST} (env step {had:,}) is intact"
        elif self.job.last.is_file():
            kept = f"the previous {LAST} is intact"
        else:
            kept = f"no {LAST} has been written yet"
        return f"could not write {path} ({err.strerror}); {kept}"
