"""Optional features without their extra: one line naming the extra, exit 2, nothing trains.

The test venv holds every extra, so a missing package is simulated: a ``sitecustomize`` on
PYTHONPATH puts an import blocker in front of Python's finders in the command's process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sharedppo.config import Config, ConfigError, EnvConfig
from sharedppo.envs.requirements import check_extras
from tests.conftest import compose_config, run_cli

# What the extras install (top-level modules), as a bare `pip install sharedppo` lacks them.
BARE = (
    "Box2D",
    "pygame",
    "mujoco",
    "glfw",
    "OpenGL",
    "imageio",
    "imageio_ffmpeg",
    "moviepy",
    "ale_py",
    "cv2",
    "matplotlib",
    "optuna",
    "joblib",
    "submitit",
    "hydra_plugins.hydra_joblib_launcher",
    "hydra_plugins.hydra_submitit_launcher",
    "onnx",
    "onnxscript",
    "onnxruntime",
)

BLOCKER = '''
import os
import sys

BLOCKED = tuple(filter(None, os.environ["SHAREDPPO_TEST_BLOCK"].split(",")))


class Blocker:
    """Makes the blocked modules (and their submodules) look not installed."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker)
'''


def without(tmp_path: Path, *args: str, blocked=BARE, module: str = "sharedppo"):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": str(site), "SHAREDPPO_TEST_BLOCK": ",".join(blocked)}
    return run_cli(*args, cwd=tmp_path, module=module, env=env)


def assert_one_line(proc, extra: str, *named: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.endswith(f'pip install "sharedppo[{extra}]"'), err
    for text in named:
        assert text in err, err


@pytest.mark.parametrize(
    ("args", "extra", "named"),
    [
        (["env=halfcheetah"], "mujoco", "env.id='HalfCheetah-v5'"),
        (["env=lunarlander"], "box2d", "env.id='LunarLander-v3'"),
        (["env=atari"], "atari", "env.id='ALE/Breakout-v5'"),
        (["experiment=walker2d"], "mujoco", "env.id='Walker2d-v5'"),
        (["eval.video=true"], "video", "eval.video=true"),
        (["-m", "hydra/launcher=joblib", "seed=0,1"], "sweep", "hydra/launcher=joblib"),
        (["-m", "hydra/launcher=submitit_local", "seed=0,1"], "sweep", "hydra/launcher=submitit"),
        (["-m", "hydra/launcher=slurm", "seed=0,1"], "sweep", "hydra/launcher=slurm"),
        (["-m", "env=cartpole,hopper"], "mujoco", "job 1 (env=hopper)"),
    ],
)
def test_bare_install_names_the_extra_before_training(tmp_path, args, extra, named):
    out = tmp_path / "out"
    proc = without(tmp_path, *args, "total_steps=64", f"hydra.run.dir={out}")
    assert_one_line(proc, extra, named)
    assert not out.exists() and not (tmp_path / "multirun").exists()


def test_bare_install_report_tune_and_export_name_the_extra(tmp_path):
    (tmp_path / "sweep" / "0" / ".hydra").mkdir(parents=True)
    proc = without(tmp_path, str(tmp_path / "sweep"), module="sharedppo.report")
    assert_one_line(proc, "sweep", "sharedppo-report needs matplotlib")
    assert not (tmp_path / "sweep" / "report.csv").exists()
    proc = without(tmp_path, "--trials", "1", module="sharedppo.tune")
    assert_one_line(proc, "sweep", "sharedppo-tune needs Optuna")
    out = tmp_path / "policy.onnx"
    proc = without(tmp_path, str(tmp_path), "--out", str(out), module="sharedppo.cli.export")
    assert_one_line(proc, "export", "sharedppo-export --format onnx needs ONNX")
    assert not out.exists()


def test_bare_install_still_trains_the_default(tmp_path):
    proc = without(tmp_path, "total_steps=256", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.parametrize(
    ("args", "blocked", "extra"),
    [
        # The cases: an extra installed without a package gymnasium's env module needs.
        (["env=halfcheetah"], ("imageio",), "mujoco"),
        (["env=lunarlander"], ("pygame",), "box2d"),
        (["env=halfcheetah"], ("glfw",), "mujoco"),
        (["eval.video=true"], ("imageio_ffmpeg",), "video"),
    ],
)
def test_an_extra_missing_one_package_is_named(tmp_path, args, blocked, extra):
    proc = without(tmp_path, *args, "total_steps=64", blocked=blocked)
    assert_one_line(proc, extra, blocked[0])


def test_check_extras_takes_a_composed_config_or_the_dataclass(monkeypatch):
    check_extras(compose_config("env=halfcheetah", "eval.video=true"))
    check_extras(Config(env=EnvConfig(id="LunarLander-v3")))
    monkeypatch.setitem(sys.modules, "Box2D", None)  # None in sys.modules: import fails
    with pytest.raises(ConfigError, match=r'^env\.id=.LunarLander-v3. needs Box2D .*box2d\]"$'):
        check_extras(Config(env=EnvConfig(id="LunarLander-v3")))
    with pytest.raises(ConfigError, match="not a registered gymnasium id"):
        check_extras(Config(env=EnvConfig(id="NoSuchEnv-v9")))
