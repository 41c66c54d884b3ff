"""The configuration reference, read from the schema: every key with its default, what it
allows and what it does. ``sharedppo --help`` prints it; ``docs/configuration.md`` is
written from it (``python scripts/config_reference.py``; a test checks the page is current),
so neither can drift from ``config.py``."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from typing import Any

from omegaconf import OmegaConf

from ..compose import compose_checked
from ..config import Config

# Groups of keys, in the order the reference lists them, each with a one-line summary.
SECTIONS = {
    "": "Top-level keys",
    "env": "env: the environment",
    "env.atari": "env.atari: Atari preprocessing (env=atari turns it on)",
    "network": "network: the trunk and the heads",
    "ppo": "ppo: the algorithm",
    "checkpoint": "checkpoint: checkpoints/",
    "eval": "eval: evaluation during training",
}
OTHER_COMMANDS = [
    ("sharedppo-report SWEEP [SWEEP ...]", "one table and plot of sweeps' jobs (mean, CIs)"),
    ("sharedppo-tune --search NAME --trials N", "tune on Optuna; writes a preset"),
    ("sharedppo-eval JOB [--episodes N]", "evaluate a job's policy"),
    ("sharedppo-export JOB --out FILE.onnx", "export a job's policy to ONNX"),
]


# What a key without a check takes, by its type.
TYPE_WORDS = {
    "bool": "true, false",
    "float": "a number",
    "float | None": "a number or null",
    "str": "text",
    "str | None": "text or null",
    "list[str]": "a list of keys",
    "list[Any]": "a list",
    "dict[str, Any]": "a mapping",
    "Any": "an option of the group",
}


@dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str  # the value of a bare `sharedppo` (CartPole), as written on a command line
    allowed: str
    help: str


def package_version() -> str:
    try:
        return version("sharedppo")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _allowed(spec: Any) -> str:
    check = spec.metadata.get("check")
    if check is not None:
        text = check.allowed.replace("choose one of ", "one of ")
        return text[len("must be ") :] if text.startswith("must be ") else text
    return TYPE_WORDS.get(str(spec.type), str(spec.type))


def _walk(schema: type, defaults: dict[str, Any], prefix: str = "") -> list[KeyDoc]:
    out = []
    for spec in fields(schema):
        sub = spec.default_factory
        if isinstance(sub, type) and is_dataclass(sub):
            out += _walk(sub, defaults.get(spec.name) or {}, f"{prefix}{spec.name}.")
            continue
        doc = spec.metadata.get("help", "")
        value = _shown(defaults.get(spec.name))
        out.append(KeyDoc(prefix + spec.name, str(spec.type), value, _allowed(spec), doc))
    return out


@cache
def key_docs() -> tuple[KeyDoc, ...]:
    """Every key of the schema, in schema order, with the defaults of a bare ``sharedppo``."""
    composed = OmegaConf.to_container(compose_checked([]), resolve=True)
    return tuple(_walk(Config, composed))


def section_of(key: str) -> str:
    return key.rpartition(".")[0]


def config_groups() -> dict[str, list[str]]:
    """The config groups and their options (``env=acrobot``), from the shipped conf/."""
    root = files("sharedppo.conf")
    groups = {}
    for name in ("env", "network", "ppo", "experiment", "hparams_search"):
        options = sorted(p.name[:-5] for p in (root / name).iterdir() if p.name.endswith(".yaml"))
        groups[name] = options
    launchers = root / "hydra" / "launcher"
    groups["hydra/launcher"] = sorted(
        [p.name[:-5] for p in launchers.iterdir() if p.name.endswith(".yaml")]
        + ["joblib", "packed", "processes", "submitit_local", "submitit_slurm"]
    )
    return groups


def by_section() -> dict[str, list[KeyDoc]]:
    out: dict[str, list[KeyDoc]] = {name: [] for name in SECTIONS}
    for doc in key_docs():
        out[section_of(doc.key)].append(doc)
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/configuration.md: the groups, then every key by section."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from sharedppo/groups.py and sharedppo/config.py by "
        "`python scripts/config_reference.py`; tests/test_reference.py checks it is current. -->",
        "",
        "Every key can be set on the command line as `KEY=VALUE` (`ppo.lr=3e-4`), in a preset "
        "under `experiment/`, or in `sharedppo.train([...])`. The default is what a bare "
        "`sharedppo` uses (CartPole-v1); each `env=NAME` brings its own `ppo` recipe and "
        "budget (`conf/ppo/NAME.yaml`, `env.default_steps`). A value outside what a key allows "
        "is one line and exit 2, before anything trains. `sharedppo --help` prints the same.",
        "",
        "## Config groups",
        "",
        "A group picks a whole file of values: `env=acrobot`, `network=nature_cnn`, "
        "`experiment=cartpole_fast`.",
        "",
        "| group | options |",
        "|---|---|",
    ]
    for group, options in config_groups().items():
        lines.append(f"| `{group}` | {', '.join(f'`{o}`' for o in options)} |")
    for section, docs in by_section().items():
        lines += ["", f"## {SECTIONS[section]}", ""]
        lines += ["| key | default | allowed | what it does |", "|---|---|---|---|"]
        for d in docs:
            cells = [f"`{d.key}`", f"`{_md(d.default)}`", _md(d.allowed), _md(d.help)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def terminal(width: int = 100) -> str:
    """``sharedppo --help``: how to run it, the groups, every key, the other commands."""
    lines = [
        f"sharedppo {package_version()}: fast, config-driven PPO (PyTorch, Hydra, TensorBoard)",
        "",
        "Usage:",
        "  sharedppo [KEY=VALUE ...]             one run, into outputs/DATE/TIME_...",
        "  sharedppo -m KEY=A,B seed=0,1,2       a sweep, into multirun/DATE/TIME/...",
        "  sharedppo resume=JOB [total_steps=N]  continue a job in its own folder",
        "  sharedppo --cfg job [KEY=VALUE ...]   print the composed config",
        "  sharedppo --version | --hydra-help    the version; Hydra's own flags",
        "",
        "Config groups (GROUP=OPTION):",
    ]
    for group, options in config_groups().items():
        lines += _wrapped(f"{group}: {', '.join(options)}", "  ", width, "      ")
    lines += ["", "Keys (KEY=VALUE; the default is a bare `sharedppo`'s):"]
    for section, docs in by_section().items():
        lines += ["", f"  {SECTIONS[section]}"]
        for d in docs:
            head = f"    {d.key}={d.default}"
            lines.append(f"{head}  [{d.allowed}]")
            lines += _wrapped(d.help, "        ", width)
    lines += ["", "Other commands:"]
    lines += [f"  {command:<40} {what}" for command, what in OTHER_COMMANDS]
    lines += ["", "Docs: README.md and docs/ (docs/configuration.md lists these keys)."]
    return "\n".join(lines)


def _wrapped(text: str, indent: str, width: int, more: str | None = None) -> list[str]:
    more = indent if more is None else more
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=more)
