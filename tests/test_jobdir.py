"""The job folder's layout lives in sharedppo/jobdir.py alone: JobDir on a real folder, and a
scan of the package's string literals for the layout's names anywhere else."""

from __future__ import annotations

import ast
import json
import math
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

import sharedppo
from sharedppo.jobdir import JobDir

PACKAGE = Path(sharedppo.__file__).parent
# Names of the layout that no string literal outside jobdir.py may hold ("step_{}" is an
# f-string with its fields blanked), each where a name starts (so not hydra_plugins.hydra_...),
# and path parts that may not stand as a literal by themselves.
NAMES = (
    ".hydra",
    "overrides.yaml",
    "config.yaml",
    "summary.json",
    "last.pt",
    "best.pt",
    "last_good.pt",
    "step_{}",
    "step_*",
    "events.out",
    "resume_history",
)
LAYOUT = re.compile("|".join(rf"(?<![\w.]){re.escape(name)}" for name in NAMES))
PARTS = ("checkpoints", "videos")


def test_a_job_folder_is_written_and_read_through_jobdir(tmp_path):
    job = JobDir(str(tmp_path / "job"))
    assert job.path == tmp_path / "job" and job == JobDir(tmp_path / "job")
    assert not job.is_job() and job.read_overrides() == [] and job.read_summary() is None
    job.write_job(OmegaConf.create({"seed": 3}), ["seed=3", "env=acrobot"])
    assert job.is_job()
    assert job.overrides_file == tmp_path / "job" / ".hydra" / "overrides.yaml"
    assert job.read_overrides() == ["seed=3", "env=acrobot"]
    assert OmegaConf.load(job.hydra_dir / "config.yaml") == {"seed": 3}
    assert job.config_file == job.hydra_dir / "config.yaml"

    job.write_summary({"status": "completed", "mean_return": math.nan, "steps": 8})
    assert job.summary_file == tmp_path / "job" / "summary.json"
    text = job.summary_file.read_text()
    assert text == '{\n  "status": "completed",\n  "mean_return": null,\n  "steps": 8\n}\n'
    assert job.read_summary() == json.loads(text)


def test_checkpoints_snapshots_events_and_the_job_of_a_checkpoint(tmp_path):
    job = JobDir(tmp_path)
    assert job.last == tmp_path / "checkpoints" / "last.pt"
    assert job.best == tmp_path / "checkpoints" / "best.pt"
    assert job.last_good == tmp_path / "checkpoints" / "last_good.pt"
    assert job.snapshot(2048).name == "step_000000002048.pt"
    assert job.history_file == tmp_path / "resume_history.jsonl"
    assert job.videos == tmp_path / "videos"
    job.checkpoints.mkdir()
    for step in (30_000, 512, 4096):
        job.snapshot(step).touch()
    job.last.touch()
    assert [p.name for p in job.snapshots()] == [
        "step_000000000512.pt",
        "step_000000004096.pt",
        "step_000000030000.pt",
    ]
    assert JobDir.checkpoint_file(tmp_path) == job.last
    assert JobDir.checkpoint_file(job.best) == job.best
    assert JobDir.of(job.last) == job and JobDir.of(tmp_path) == job
    for name in ("events.out.tfevents.2.host", "events.out.tfevents.1.host", "notes.txt"):
        (tmp_path / name).touch()
    assert [p.name for p in job.events()] == [
        "events.out.tfevents.1.host",
        "events.out.tfevents.2.host",
    ]


def test_the_jobs_of_a_sweep_are_the_folders_with_hydras_files(tmp_path):
    for name in ("1_seed=1", "0_seed=0"):
        JobDir(tmp_path / name).write_job(OmegaConf.create({}), [])
    (tmp_path / "not_a_job").mkdir()
    jobs = JobDir.in_sweep(tmp_path)
    assert jobs == [JobDir(tmp_path / "0_seed=0"), JobDir(tmp_path / "1_seed=1")]


def _docstrings(tree: ast.AST) -> set[int]:
    scopes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, scopes)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def string_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal but docstrings, an f-string as one text with
    its fields written ``{}``; comments and docstrings document the layout, code spells it."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            skip.update(id(p) for p in parts)
            text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in parts)
            found.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            found.append((node.lineno, node.value))
    return found


def layout_literals(package: Path) -> list[str]:
    """``file:line: text`` of each literal outside jobdir.py that spells the job layout."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "jobdir.py" and path.parent == package:
            continue
        for line, text in string_literals(path.read_text()):
            if LAYOUT.search(text) or text.strip("/") in PARTS:
                bad.append(f"{path.relative_to(package)}:{line}: {text!r}")
    return bad


def test_only_jobdir_spells_the_job_folder_layout():
    assert layout_literals(PACKAGE) == []


def test_the_scan_sees_plain_strings_f_strings_and_not_docstrings():
    source = '''"""Writes summary.json."""
def f(job, step):
    """Reads .hydra/overrides.yaml."""
    # checkpoints/last.pt
    return job / "checkpoints" / f"step_{step:012d}.pt", f"see {job}/summary.json"
'''
    # "012d": the format spec, an f-string of its own.
    texts = {text for _, text in string_literals(source)}
    assert texts == {"checkpoints", "step_{}.pt", "012d", "see {}/summary.json"}


def test_jobdir_sits_at_the_bottom():
    """The standard library, omegaconf or yaml, sharedppo.config and sharedppo.durable: any
    front end, run/ or tb/ can use it without an import cycle."""
    tree = ast.parse((PACKAGE / "jobdir.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {"omegaconf", "yaml", ".config", "sharedppo.config", ".durable", "sharedppo.durable"}
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names and name not in allowed
    }
    assert outside == set()
