"""Which jobs of a sweep may share a pack: those whose configs are equal once the keys a pack
lets differ are set aside (:data:`PACKABLE`), and that a population can train at all."""

from __future__ import annotations

import json
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
