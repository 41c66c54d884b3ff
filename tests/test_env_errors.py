"""A bug in the user's env keeps its traceback into the user's file, with one note saying
which phase failed; only a real keyword mismatch is a kwargs problem; a multi-agent env is
refused as one."""

from __future__ import annotations

import json
import traceback

import pytest

from sharedppo.config import ConfigError
from sharedppo.run.session import train
from tests.conftest import run_cli
from tests.test_custom_env import project  # noqa: F401 (the fixture)

ENV = "env.id=custom_env_module:Broken-v0"


def _frames(err: BaseException) -> list[str]:
    return [frame.filename for frame in traceback.extract_tb(err.__traceback__)]


@pytest.mark.parametrize(
    ("fail", "kind", "phase"),
    [
        ("init", TypeError, "constructing the env"),
        ("reset", ValueError, "resetting"),
        ("step", RuntimeError, "stepping"),
    ],
)
def test_a_bug_in_the_env_keeps_its_traceback(project, cfg_factory, fail, kind, phase):  # noqa: F811
    cfg = cfg_factory(ENV, f"+env.kwargs.fail={fail}", "total_steps=256")
    with pytest.raises(kind) as err:
        train(cfg, project / "job")
    assert not isinstance(err.value, ConfigError)
    assert any(name.endswith("custom_env_module.py") for name in _frames(err.value))
    notes = getattr(err.value, "__notes__", [])
    assert len(notes) == 1 and phase in notes[0]


def test_only_a_real_keyword_mismatch_is_a_kwargs_problem(project, cfg_factory):  # noqa: F811
    with pytest.raises(ConfigError, match=r"env.kwargs=\{'nope': 1\} were refused"):
        train(cfg_factory(ENV, "+env.kwargs.nope=1", "total_steps=256"), project / "job")


def test_a_multi_agent_env_is_refused_as_one(project, cfg_factory):  # noqa: F811
    cfg = cfg_factory("env.id=custom_env_module:Crowd-v0", "total_steps=256")
    with pytest.raises(ConfigError, match="PettingZoo") as err:
        train(cfg, project / "job")
    assert "kwargs" not in str(err.value) and "\n" not in str(err.value)


def test_the_command_line_shows_the_users_traceback(project):  # noqa: F811
    """The env's own error is the user's code speaking (its traceback, a note naming the
    phase, exit 1); the job's folder records the failure rather than ending at its config."""
    job = project / "job"
    proc = run_cli(
        ENV, "env.kwargs.fail=init", "total_steps=256", f"hydra.run.dir={job}", cwd=project
    )
    assert proc.returncode == 1
    assert "custom_env_module.py" in proc.stderr and "np.zeros(5, 5)" in proc.stderr
    assert "raised this while constructing the env" in proc.stderr
    assert "were refused" not in proc.stderr and "vectorization_mode" not in proc.stderr
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("TypeError")
    assert "failed: TypeError" in (job / "sharedppo.log").read_text()
