"""A user's own problem: an env module in the user's folder, trained from the command line
and through the Python API, then evaluated, resumed and reported on."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sharedppo
from sharedppo.compose import compose_checked
from sharedppo.config import ConfigError
from tests.conftest import run_cli

MODULE = Path(__file__).parent / "custom_env_module.py"
ENV = "env.id=custom_env_module:Reach-v0"
TINY = ["total_steps=2048", "checkpoint.every_steps=null"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A user's project folder holding their env module, as the working directory."""
    shutil.copy(MODULE, tmp_path / MODULE.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("custom_env_module", None)


def test_own_env_from_the_command_line_with_eval_resume_and_report(project):
    job = project / "job"
    proc = run_cli(ENV, "env.kwargs.step_size=0.25", *TINY, f"hydra.run.dir={job}", cwd=project)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["episodes"] > 0
    assert summary["target_return"] == 0.5  # the spec's reward_threshold, not CartPole's 475

    evaluated = run_cli_tool("sharedppo.cli.eval", str(job), "--episodes", "2", cwd=project)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "custom_env_module:Reach-v0 deterministic, 2 episodes" in evaluated.stdout
    # Which checkpoint it scored, at which step.
    assert evaluated.stdout.startswith(f"{job / 'checkpoints' / 'last.pt'} (step 2,048)")

    resumed = run_cli(f"resume={job}", "total_steps=4096", cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {job} from step 2,048" in resumed.stdout
    assert json.loads((job / "summary.json").read_text())["global_step"] == 4096

    reported = run_cli_tool("sharedppo.report", str(project), cwd=project)
    assert reported.returncode == 0, reported.stderr
    alone = run_cli_tool("sharedppo.report", str(job), cwd=project)  # one job, as a sweep of one
    assert alone.returncode == 0, alone.stderr
    assert (job / "report.md").is_file()


def run_cli_tool(module: str, *args: str, cwd: Path):
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", f"from {module} import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_python_api_round_trip(project, caplog):
    with caplog.at_level("INFO", logger="sharedppo"):
        result = sharedppo.train([ENV, *TINY], out_dir=project / "api_job")
    assert result.status == "completed" and result.global_step == 2048
    job = project / "api_job"
    assert "done: 2,048 steps in" in caplog.text and f"results in {job}" in caplog.text
    assert (job / ".hydra" / "overrides.yaml").is_file() and (job / "summary.json").is_file()

    policy = sharedppo.load(job)
    action = policy.predict(np.array([0.7], np.float32))
    assert np.asarray(action).shape == () and 0 <= int(action) < 3
    batch = policy.predict(np.array([[0.7], [-0.7]], np.float32))
    assert batch.shape == (2,)
    assert result.out_dir == job and result.agent is not None
    assert set(json.loads((job / "summary.json").read_text())) == set(result.summary())
    with pytest.raises(ValueError, match=r"^observation has shape \(3,\); this policy takes"):
        policy.predict(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="^action_mask has shape"):
        policy.predict(np.array([0.7], np.float32), action_mask=[True, False])
    with pytest.raises(ValueError, match="rules out every action"):
        policy.predict(np.array([0.7], np.float32), action_mask=[False, False, False])
    assert policy.predict(np.array([0.7], np.float32), action_mask=[False, False, True]) == 2

    resumed = run_cli(f"resume={job}", "total_steps=4096", cwd=project)
    assert resumed.returncode == 0, resumed.stderr


def test_python_api_takes_an_env_class_made_in_process(tmp_path):
    from tests.custom_env_module import Reach

    result = sharedppo.train(TINY, out_dir=tmp_path / "job", env=Reach)
    assert result.global_step == 2048
    assert sharedppo.load(tmp_path / "job").predict(np.zeros(1, np.float32)) in (0, 1, 2)
    # Another process knows only the id: the class is handed to load again, and the command
    # line says how to get there instead of "not a registered id".
    gym.registry.pop("sharedppo_api/Reach-v0")
    with pytest.raises(ConfigError, match=r"sharedppo\.load\(JOB, env=\.\.\.\)"):
        sharedppo.load(tmp_path / "job")
    policy = sharedppo.load(tmp_path / "job", env=Reach)
    assert policy.predict(np.zeros(1, np.float32)) in (0, 1, 2)
    evaluated = run_cli_tool("sharedppo.cli.eval", str(tmp_path / "job"), cwd=tmp_path)
    assert evaluated.returncode == 2 and "sharedppo.load(JOB, env=...)" in evaluated.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.id=no_such_module:Reach-v0", "module 'no_such_module' could not be imported"),
        ("env.id=custom_env_module:Nope-v0", "registers no env 'Nope-v0'"),
        ("env.kwargs.bogus=1", "refused by env.id"),
    ],
)
def test_own_env_mistakes_are_one_line(project, override, message):
    env = [ENV] if "kwargs" in override else []
    proc = run_cli(*env, override, *TINY, cwd=project)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert message in line and "\n" not in line and "Traceback" not in line


def test_kwargs_need_no_plus():
    assert compose_checked(["env.kwargs.step_size=0.2"]).env.kwargs == {"step_size": 0.2}
    with pytest.raises(ConfigError):
        compose_checked(["env.kwarg.step_size=0.2"])


def test_own_wrappers_apply_to_every_sub_env(project):
    wrappers = "env.wrappers=[{_target_:custom_env_module.ScaleReward,factor:10.0}]"
    result = sharedppo.train([ENV, wrappers, *TINY], out_dir=project / "job")
    plain = sharedppo.train([ENV, *TINY], out_dir=project / "plain")
    # Every step pays -0.1 (or +1 at the goal): scaled tenfold, the returns say so.
    assert result.mean_return < 2 * plain.mean_return < 0 or result.mean_return > 5


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("[{_target_:no_such_module.Wrap}]", "module 'no_such_module' could not be imported"),
        ("[{_target_:custom_env_module.Nope}]", "module 'custom_env_module' has no 'Nope'"),
        # The wrapper's own refusal names its entry, not env.kwargs or the vector env.
        (
            "[{_target_:custom_env_module.ScaleReward,fctor:2}]",
            "env.wrappers[0]._target_='custom_env_module.ScaleReward' failed on the env: TypeError",
        ),
        ("[{factor:2}]", "env.wrappers[0]="),
    ],
)
def test_bad_wrappers_are_one_line(project, entry, message):
    proc = run_cli(ENV, f"env.wrappers={entry}", *TINY, cwd=project)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert message in line and "\n" not in line and "Traceback" not in line


class Picky(gym.Env):
    """An env whose constructor checks its keyword's value, as a user's env may."""

    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self, step_size: float = 0.1) -> None:
        self.step_size = float(step_size)


def test_a_value_the_env_refuses_blames_the_kwargs_not_the_vectorisation(cfg_factory):
    from omegaconf import OmegaConf

    from sharedppo.config import Config
    from sharedppo.envs.build import make_envs

    gym.register("PickyTest-v0", entry_point=Picky)
    try:
        cfg = OmegaConf.to_object(cfg_factory("env.id=PickyTest-v0", "++env.kwargs.step_size=abc"))
        assert isinstance(cfg, Config)
        with pytest.raises(ValueError) as err:  # the env's own error, its traceback kept
            make_envs(cfg.env, seed=0)
    finally:
        gym.registry.pop("PickyTest-v0")
    note = " ".join(getattr(err.value, "__notes__", []))
    assert "env.id='PickyTest-v0' raised this while constructing the env" in note
    assert "with env.kwargs={'step_size': 'abc'}" in note
    assert "vectorization_mode" not in note + str(err.value)
