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
    """Jobs that train in one process: their indices in the sweep's order; for a job that
    trains alone, why (``unpackable``'s reason); where jobs that could share a pack were
    split, what split them (``max_pack``, or ``n_jobs``: processes that would stand idle)."""

    jobs: list[int]
    alone: str | None = None
    split: str | None = None


def group(configs: list[dict[str, Any]], max_pack: int, processes: int = 1) -> list[Pack]:
    """The sweep's jobs (their resolved configs, in order) in packs of at most ``max_pack``:
    jobs with equal :func:`pack_key` share packs, as few and as even as that allows; a job
    :func:`unpackable` names a reason for is a pack of its own. Where there would be fewer
    packs than ``processes`` (packs trained at once), the biggest are split further, so that
    no process stands idle. Packs come in the order of their first jobs."""
    if max_pack < 1:
        raise ValueError(f"max_pack must be at least 1, not {max_pack}")
    kinds: dict[str, list[int]] = {}
    packs: list[Pack] = []
    for i, config in enumerate(configs):
        why = unpackable(config)
        if why is not None:
            packs.append(Pack([i], why))
        else:
            kinds.setdefault(pack_key(config), []).append(i)
    counts = {k: -(-len(jobs) // max_pack) for k, jobs in kinds.items()}
    split = {k: "max_pack" for k, n in counts.items() if n > 1}
    while len(packs) + sum(counts.values()) < processes:
        splittable = [k for k, jobs in kinds.items() if len(jobs) > counts[k]]
        if not splittable:
            break
        biggest = max(splittable, key=lambda k: len(kinds[k]) / counts[k])
        counts[biggest] += 1
        split[biggest] = "n_jobs"
    for key, jobs in kinds.items():
        size, more = divmod(len(jobs), counts[key])
        start = 0
        for n in range(counts[key]):
            end = start + size + (n < more)
            packs.append(Pack(jobs[start:end], split=split.get(key)))
            start = end
    return sorted(packs, key=lambda p: p.jobs[0])


def _spans(nums: list[int]) -> str:
    """``0-7, 12`` for [0..7, 12]."""
    spans: list[list[int]] = []
    for n in nums:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def _nearest(pack: Pack, packs: list[Pack], configs: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """The other pack (its number) whose jobs differ from this pack's in the fewest keys a
    pack may not let differ, and those keys; (0, []) where there is none."""
    mine = _flat(configs[pack.jobs[0]])
    found: list[tuple[int, list[str]]] = []
    for number, other in enumerate(packs, start=1):
        if other is not pack and other.alone is None:
            theirs = _flat(configs[other.jobs[0]])
            keys = sorted(
                k
                for k in mine.keys() | theirs.keys()
                if k not in PACKABLE and json.dumps(mine.get(k)) != json.dumps(theirs.get(k))
            )
            if keys:
                found.append((number, keys))
    return min(found, key=lambda f: len(f[1]), default=(0, []))


def pack_lines(
    packs: list[Pack],
    configs: list[dict[str, Any]],
    nums: list[int],
    max_pack: int,
    processes: int = 1,
) -> list[str]:
    """One line per pack on how it was grouped (``nums``: each config's job number):
    ``pack 1: jobs 0-7 (8 jobs; differ in seed, ppo.lr)``; for a job that trains alone, why."""
    lines = []
    splits = {"max_pack": f"at most max_pack={max_pack} a pack"}
    splits["n_jobs"] = f"split so that n_jobs={processes} packs train at once"
    for number, pack in enumerate(packs, start=1):
        jobs = [nums[i] for i in pack.jobs]
        head = f"pack {number}: job {jobs[0]} trains alone"
        if pack.alone is not None:
            lines.append(f"{head}: {pack.alone}")
            continue
        nearest, apart = _nearest(pack, packs, configs)
        other = (
            f"other {', '.join(apart[:3])}{' ...' if len(apart) > 3 else ''} than pack {nearest}"
        )
        notes = []
        if len(jobs) > 1:
            differ = differing([configs[i] for i in pack.jobs])
            notes.append(f"differ in {', '.join(differ)}" if differ else "identical configs")
        if pack.split is not None:
            notes.append(splits[pack.split])
        elif len(jobs) == 1 and apart:
            lines.append(f"{head}: {other}")
            continue
        elif apart:
            notes.append(other)
        count = f"{len(jobs)} job{'s' if len(jobs) > 1 else ''}"
        which = f"jobs {_spans(jobs)}" if len(jobs) > 1 else f"job {jobs[0]}"
        lines.append(f"pack {number}: {which} ({'; '.join([count, *notes])})")
    return lines
