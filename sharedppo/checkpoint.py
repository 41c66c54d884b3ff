"""Checkpoints written atomically and loaded without running code from the file."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the requested run."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it.

    A crash or kill at any moment leaves either the previous file or the new one, never a
    half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain containers only, no pickled code."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as err:
        # torch's own message suggests weights_only=False, which would run code from the file.
        safe = "Weights only" in str(err)
        kind = "holds objects a safe load refuses" if safe else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({kind})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} holds no sharedppo state")
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy (global) and torch RNG states as checkpoint-safe values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss_np = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss_np))
    torch.set_rng_state(state["torch"])


def check_writable(folder: Path) -> None:
    """Fail before training, with one line, if checkpoints cannot be written to ``folder``."""
    target = folder / "checkpoints"
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

    def __init__(self, folder: Path, every_steps: int | None, keep: int, next_step: int) -> None:
        self.folder = folder
        self.every_steps = every_steps
        self.keep = keep
        self.next_step = next_step
        self.best = -float("inf")

    def due(self, step: int) -> bool:
        return self.every_steps is not None and step >= self.next_step

    def save(self, state: dict[str, Any], step: int, mean_return: float) -> None:
        try:
            save_atomic(state, self.folder / "last.pt")
            if mean_return > self.best:
                self.best = mean_return
                save_atomic(state, self.folder / "best.pt")
            if self.keep > 0:
                save_atomic(state, self.folder / f"step_{step:012d}.pt")
                for old in sorted(self.folder.glob("step_*.pt"))[: -self.keep]:
                    old.unlink()
        except OSError as err:
            raise CheckpointError(
                f"could not write a checkpoint to {self.folder} ({err.strerror}); the previous "
                "last.pt is intact"
            ) from None
        if self.every_steps is not None:
            while self.next_step <= step:
                self.next_step += self.every_steps
