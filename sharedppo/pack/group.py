"""Which jobs of a sweep may share a pack: those whose configs are equal once the keys a pack
lets differ are set aside (:data:`PACKABLE`), and that a population can train at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Keys that may differ inside a pack: the seed and the scalar hyperparameters that change no
# tensor's shape. Per run they become a row of a [runs] tensor (lr, clip, coefficients), a
# per-run switch (annealing, normalisation, value clipping, the KL stop) or a run's own RNG
# and envs (seed). ``resume`` is the sweep's own per-job decision (``cli.sweep.plan``).
PACKABLE = frozenset(
    {
        "seed",
        "resume",
        "ppo.lr",
        "ppo.anneal_lr",
        "ppo.clip_ratio",
        "ppo.anneal_clip",
        "ppo.clip_vloss",
        "ppo.vf_coef",
        "ppo.ent_coef",
        "ppo.gamma",
        "ppo.lam",
        "ppo.max_grad_norm",
        "ppo.norm_adv",
        "ppo.target_kl",
        "ppo.adam_eps",
        "network.dropout",
        "env.normalize_obs",
        "env.obs_clip",
        "env.normalize_reward",
        "env.reward_clip",
    }
)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flat(v, f"{name}.")
        else:
            out[name] = v
    return out


def pack_key(config: dict[str, Any]) -> str:
    """Jobs with equal keys may train in one pack (``config``: the job's resolved config as a
    plain dict, without ``hydra``)."""
    shared = {k: v for k, v in _flat(config).items() if k not in PACKABLE}
    return json.dumps(shared, sort_keys=True, default=str)


def unpackable(config: dict[str, Any]) -> str | None:
    """Why a job trains alone, from its config; None when it may share a pack. (Spaces the
    config does not show, a Dict observation say, are found when the pack builds its envs.)"""
    network, precision = config.get("network", {}), config.get("precision", "fp32")
    if network.get("recurrent") is not None:
        return f"network.recurrent={network['recurrent']} (a recurrent core)"
    if network.get("type", "mlp") != "mlp":
        return f"network.type={network['type']} (convolutions)"
    if precision != "fp32":
        return f"precision={precision}"
    return None


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """The packable keys whose values differ between ``configs`` (for the grouping line)."""
    flats = [_flat(c) for c in configs]
    return sorted(k for k in PACKABLE if len({json.dumps(f.get(k)) for f in flats}) > 1)


@dataclass
class Pack:
    """Jobs that train in one process: their indices in the sweep's order, and for a job
    that trains alone, why (``unpackable``'s reason)."""

    jobs: list[int]
    alone: str | None = None


def group(configs: list[dict[str, Any]], max_pack: int) -> list[Pack]:
    """The sweep's jobs (their resolved configs, in order) in packs of at most ``max_pack``:
    jobs with equal :func:`pack_key` share packs, in the order their first job comes; a job
    :func:`unpackable` names a reason for is a pack of its own."""
    if max_pack < 1:
        raise ValueError(f"max_pack must be at least 1, not {max_pack}")
    packs: list[Pack] = []
    open_packs: dict[str, Pack] = {}
    for i, config in enumerate(configs):
        why = unpackable(config)
        if why is not None:
            packs.append(Pack([i], why))
            continue
        key = pack_key(config)
        pack = open_packs.get(key)
        if pack is None or len(pack.jobs) >= max_pack:
            pack = open_packs[key] = Pack([])
            packs.append(pack)
        pack.jobs.append(i)
    return packs


def _spans(nums: list[int]) -> str:
    """``0-7, 12`` for [0..7, 12]."""
    spans: list[list[int]] = []
    for n in nums:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def pack_line(number: int, nums: list[int], pack: Pack, configs: list[dict[str, Any]]) -> str:
    """One line on how a pack was grouped: ``pack 1: jobs 0-7 (8 jobs; differ in seed,
    ppo.lr)``, or for a job that trains alone, why. ``nums``: the pack's job numbers."""
    if pack.alone is not None:
        return f"pack {number}: job {nums[0]} trains alone: {pack.alone}"
    if len(nums) == 1:
        return f"pack {number}: job {nums[0]} (1 job)"
    differ = differing([configs[i] for i in pack.jobs])
    what = f"differ in {', '.join(differ)}" if differ else "identical configs"
    return f"pack {number}: jobs {_spans(nums)} ({len(nums)} jobs; {what})"
