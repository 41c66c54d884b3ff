"""Flip one bit at 16 random places of a CartPole last.pt and load each copy as resume= does
(docs/reliability.md, row 8).

usage: [PYTHONPATH=OLD_TREE] python scripts/reliability/bit_flips.py SCRATCH_DIR [SEED]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_module

from sharedppo.compose import register_configs
from sharedppo.run.checkpoint import CheckpointError, read
from sharedppo.run.session import train


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a NaN return is a value the checkpoint holds)."""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape:
            return False
        return bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b).all())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


def main() -> None:
    out = Path(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    register_configs()
    with initialize_config_module("sharedppo.conf", version_base="1.3"):
        cfg = compose("config", overrides=["device=cpu", "total_steps=4096"])
    train(cfg, out / f"job{seed}")
    good = (out / f"job{seed}" / "checkpoints" / "last.pt").read_bytes()
    reference = read(out / f"job{seed}" / "checkpoints" / "last.pt")
    loaded = changed = crashed = 0
    for spot in np.random.default_rng(seed).integers(0, len(good), 16):
        flipped = bytearray(good)
        flipped[spot] ^= 1 << int(spot % 8)
        path = out / "flipped.pt"
        path.write_bytes(bytes(flipped))
        try:
            state = read(path)
        except CheckpointError:
            continue
        except Exception:  # anything but the one-line refusal: a traceback for the user
            crashed += 1
            continue
        loaded += 1
        changed += not same(state, reference)
    print(
        f"seed {seed}: {loaded} of 16 flipped copies loaded, {changed} of them with changed "
        f"contents; {crashed} raised something other than the one-line CheckpointError"
    )


if __name__ == "__main__":
    main()
