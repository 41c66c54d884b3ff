"""What may change when a job is continued, and the record of what did.

``resume=JOB`` continues a job in its own folder. Its structure must match (checked by
``checkpoint.check_resumable``); its hyperparameters stay as they were unless the user names
the keys to change in ``resume_allow``; run-control keys (how long, how often to checkpoint
or evaluate, where to run: ``Role.RUN_CONTROL`` in the schema) may change freely. Every
allowed change is appended to the job's ``resume_history.jsonl`` and written to TensorBoard
as text, so the curves can be read with it in mind.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, Role, has_role
from ..jobdir import JobDir
from ..keys import dotted
from .checkpoint import check_resumable


def check_resume(saved: dict[str, Any], config: dict[str, Any], job: Path) -> dict[str, list]:
    """Refuse in one line what cannot or may not continue; returns the allowed changes as
    {key: [in the job, now]}."""
    check_resumable(saved["config"], config, job)
    done = saved["progress"]
    batch = config["ppo"]["num_steps"] * config["env"]["num_envs"]
    if math.ceil(config["total_steps"] / batch) <= done["updates"]:
        raise ConfigError(
            f"resume={job}: the job has already run {done['global_step']:,} env steps, which "
            f"total_steps={config['total_steps']} does not go beyond; to train on, give a "
            f"larger total, e.g. total_steps={2 * done['global_step']}"
        )
    # A key added to the schema after the job was written counts as its default.
    defaults = dotted(asdict(Config()))
    old, new = defaults | dotted(saved["config"]), defaults | dotted(config)
    changed = {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and not has_role(key, Role.RUN_CONTROL)
    }
    allowed = set(config.get("resume_allow") or [])
    refused = [key for key in changed if key not in allowed]
    if refused:
        diff = ", ".join(
            f"{k}={changed[k][0]!r} in the job, {changed[k][1]!r} now" for k in refused
        )
        raise ConfigError(
            f"resume={job} would change hyperparameters ({diff}); to change them on purpose, "
            f"name them: resume_allow=[{','.join(refused)}]"
        )
    return changed


def record_resume(job: Path, step: int, changes: dict[str, list]) -> None:
    """Append this resume to the job's history (once the checkpoint has loaded)."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "from_step": step, "changes": changes}
    with open(JobDir(job).history_file, "a") as f:
        f.write(json.dumps(entry) + "\n")


def resume_note(step: int, changes: dict[str, list]) -> str:
    """The resume's line for TensorBoard."""
    listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()) or "no changes"
    return f"resumed at env step {step:,}; {listed}"
