"""Bad input, everywhere: a fuzz test of generated and hand-written mistakes (issue 21).

Every command line here is a user's mistake. Each must be refused in one line naming what is
wrong, with exit code 2, before anything trains: the commands run in this process with the
training entry points replaced by a failure, so a case that gets through fails the test
instead of training. The few mistakes that used to crash the process (a SIGSEGV) also run as
real processes, with a timeout. docs/reliability.md ("Bad input") has the tally and the
command to rerun this.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import sharedppo.cli.app as app
import sharedppo.cli.eval as eval_cli
import sharedppo.cli.export as export_cli
import sharedppo.report.cli as report_cli
import sharedppo.tune.cli as tune_cli
from sharedppo.api import train
from sharedppo.config import Config, ConfigError, validate, wrong_type_message
from sharedppo.envs.build import make_envs
from sharedppo.run.budget import check_fits
from tests.conftest import compose_config, run_cli

# Keys the generator leaves to the hand-written cases: free-form values (a path, a list of
# keys, wrappers, constructor keywords) that no type or range describes.
FREE_FORM = {"resume", "resume_allow", "hparams_search", "env.kwargs", "env.wrappers"}
HUGE_INT = "1" + "0" * 30  # past int64
CEILING_PROBE = 10**12  # past every ceiling the schema sets, inside int64


def leaf_fields(schema: type = Config, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for spec in fields(schema):
        sub = spec.default_factory
        if isinstance(sub, type) and is_dataclass(sub):
            yield from leaf_fields(sub, f"{prefix}{spec.name}.")
        else:
            yield prefix + spec.name, spec


def refused_by_check(spec: Any, value: Any) -> bool:
    check = spec.metadata.get("check")
    return check is not None and not check.test(value)


def values_for(spec: Any) -> list[str]:
    """The mistakes a key's type and check allow one to make: wrong type, inf, nan, past its
    range at either end, and numbers too large for any int."""
    kind = str(spec.type)
    if kind.startswith("bool"):
        return ["maybe", "[1]"]
    if kind.startswith("str"):
        return ["nosuch_value"] if spec.metadata.get("check") else ["[1,2]"]
    out = ["abc", "inf", "nan"]
    if kind.startswith("int"):
        out += ["1.5", HUGE_INT]
        if refused_by_check(spec, CEILING_PROBE):
            out.append(str(CEILING_PROBE))
    else:
        if refused_by_check(spec, 1e12):
            out.append("1e12")
    if refused_by_check(spec, -1):
        out.append("-1")
    return out


GENERATED = [
    (f"{key}={value}", key)
    for key, spec in leaf_fields()
    if key not in FREE_FORM
    for value in values_for(spec)
]

# The issue's own list, and their neighbours: (argv, what the line must name).
HAND_WRITTEN = [
    (["ppo.clip_ratio=1.5"], "ppo.clip_ratio"),
    (["seed=4294967296"], "seed"),
    (["seed=-1"], "seed"),
    (["network.width=1000000"], "network.width"),
    (["network.width=200000", "network.depth=2"], "network.width"),
    (["network.recurrent=lstm", "network.recurrent_size=500000"], "recurrent_size"),
    (["torch_threads=100000"], "torch_threads"),
    (["ppo.num_steps=100000000"], "ppo.num_steps"),
    (["ppo.num_steps=1e8"], "ppo.num_steps"),
    (["env.num_envs=60000", "ppo.num_steps=100000"], "ppo.num_steps"),
    (["network.depth=100000"], "network.depth"),
    (["ppo.update_epochs=1000000000"], "ppo.update_epochs"),
    (["ppo.lr=inf"], "ppo.lr"),
    (["ppo.vf_coef=inf"], "ppo.vf_coef"),
    (["ppo.adam_eps=inf"], "ppo.adam_eps"),
    (["env.target_return=nan"], "env.target_return"),
    (["network.log_std_init=1e30"], "network.log_std_init"),
    (["ppo.lr=-inf"], "ppo.lr"),
    (["ppo.gamma=1e400"], "ppo.gamma"),
    (["ppo.max_grad_norm=[1]"], "ppo.max_grad_norm"),
    (["env.obs_clip=-inf"], "env.obs_clip"),
    (["hydra.output_subdir="], "hydra.output_subdir"),
    (["hydra.output_subdir=.hydra"], "hydra.output_subdir"),
    (["hydra.output_subdir=meta"], "hydra.output_subdir"),
    (["resume=~nonuser_sharedppo/job"], "~nonuser_sharedppo"),
    (["resume=${oc.env:SHAREDPPO_NO_SUCH_VAR}/job"], "resume="),
    # Resolved as Hydra would, not taken for a folder named "${oc.env:HOME}".
    (["resume=${oc.env:HOME}/no_such_job_sharedppo"], f"{Path.home()}/no_such_job_sharedppo "),
    (["hydra.foo=1"], "hydra.foo"),
    (["hydra.run.dri=x"], "hydra.run.dri"),
    (["hydra.job.chdir=maybe"], "hydra.job.chdir"),
    (["hydra.job_logging=nosuch"], "hydra"),
    (["hydra/launcher=nosuch"], "hydra/launcher"),
    (["env.kwargs.foo=0"], "env.kwargs.foo"),
    (["env.id=NoSuchEnv-v9"], "env.id"),
    (["env=nosuch"], "env"),
    (["-cd"], "--config-dir"),
    (["-cn", "nosuch"], "--config-name"),
    (["--cfg", "job", "ppo.clip_ratio=1.5"], "ppo.clip_ratio"),
    (["--nosuchflag"], "--nosuchflag"),
    # Sweeps: every job is checked, whatever flags come with -m.
    (["-m", "ppo.clip_ratio=0.2,1.5"], "job 1"),
    (["-m", "--cfg", "job", "ppo.clip_ratio=0.2,1.5"], "job 1"),
    (["-m", "env.kwargs.foo=0,1"], "env.kwargs.foo"),
    (["-m", "seed=0,4294967296"], "seed"),
    (["-m", "ppo.lr=0.001,inf"], "ppo.lr"),
    (["-m", "network.width=64,1000000"], "network.width"),
    (["-m", "hydra.run.dri=x", "seed=0,1"], "hydra.run.dri"),
    (["-m", "hydra/launcher=packed", "hydra.launcher.max_pack=0", "seed=0,1"], "max_pack=0"),
    (["-m", "hydra/launcher=packed", "hydra.launcher.n_jobs=-1", "seed=0,1"], "n_jobs=-1"),
    (["-m", "hydra/launcher=packed", "hydra.launcher.max_pack=two", "seed=0,1"], "max_pack"),
    (["--multirun", "ppo.gamma=0.9,2"], "ppo.gamma"),
    (["hydra.mode=MULTIRUN", "ppo.gamma=0.9,2"], "job 1"),
    (["-m", "ppo.clip_ratio=0.2,1.5", "hydra.sweep.dir=/tmp/x"], "job 1"),
]
if not torch.cuda.is_available():
    HAND_WRITTEN += [
        (["device=cuda"], "device"),
        (["device=cuda:1"], "device"),
        (["-m", "device=cpu,cuda"], "device"),
    ]


class Trained(AssertionError):
    """Raised where a refused command got as far as Hydra's app, a run or a trial."""


def reached(*_: Any, **__: Any) -> None:
    raise Trained("a bad command line reached training")


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(app, "_app", reached)
    monkeypatch.setattr(eval_cli, "evaluate", reached)
    monkeypatch.setattr(export_cli, "export_onnx", reached)
    monkeypatch.setattr(report_cli, "report", reached)
    monkeypatch.setattr(tune_cli, "work", reached)
    monkeypatch.setattr(tune_cli, "run_local", reached)
    monkeypatch.chdir(tmp_path)  # nothing a case writes lands in the checkout
    return tmp_path


def one_line(main: Callable[[], Any], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main``; it must exit 2 with one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def sharedppo(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    monkeypatch.setattr(sys, "argv", ["sharedppo", *argv])
    return app.main


@pytest.mark.parametrize(("override", "key"), GENERATED, ids=[c[0] for c in GENERATED])
def test_generated_mistakes_are_one_line(override, key, no_training, monkeypatch, capsys):
    err = one_line(sharedppo([override], monkeypatch), capsys)
    assert err.startswith("sharedppo: error:") and key in err, err
    if override.endswith(("=abc", "=maybe")):  # a value of the wrong type: what is allowed
        spec = next(spec for name, spec in leaf_fields() if name == key)
        kinds = ("an integer", "a number", "true or false")
        allowed = err.partition(f"{override} is not allowed: must be ")[2]
        assert any(allowed.removeprefix("null or ").startswith(k) for k in kinds), err
        assert "null or" in err or str(spec.type) not in {"int | None", "float | None"}, err
        check = spec.metadata.get("check")
        rule = check.allowed.removeprefix("must be ").removeprefix("null or ") if check else ""
        assert rule in err, err  # the key's own rule, whole


def test_a_wrong_type_names_the_keys_own_rule():
    from sharedppo.groups import EnvConfig, NetworkConfig, PPOConfig

    assert wrong_type_message("ppo.lr", "fast", PPOConfig) == (
        "ppo.lr=fast is not allowed: must be a number > 0"
    )
    assert wrong_type_message("seed", "x", Config).endswith("must be an integer in [0, 2^32 - 1]")
    assert wrong_type_message("ppo.clip_vloss", "x", PPOConfig).endswith(
        "must be null or a number > 0"
    )
    assert wrong_type_message("network.shared", "x", NetworkConfig).endswith("true or false")
    assert wrong_type_message("total_steps", None, Config).startswith("total_steps=null is")
    for key, owner in (("env.kwargs", EnvConfig), ("resume_allow", Config), ("env", Config)):
        assert wrong_type_message(key, "x", owner) is None, key  # no plain type to name


@pytest.mark.parametrize(
    ("argv", "named"), HAND_WRITTEN, ids=[" ".join(c[0]) for c in HAND_WRITTEN]
)
def test_hand_written_mistakes_are_one_line(argv, named, no_training, monkeypatch, capsys):
    err = one_line(sharedppo(argv, monkeypatch), capsys)
    assert err.startswith("sharedppo: error:") and named in err, err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["hydra/launcher=packed", "hydra.launcher.n_jobs=-1"], "hydra.launcher.n_jobs=-1 is"),
        (["ppo.lr=-1"], "ppo.lr=-1.0 is not allowed"),  # every job's: not job 0's alone
        (["ppo.clip_ratio=1.5,0.2"], "job 0 (ppo.clip_ratio=1.5 seed=0): ppo.clip_ratio=1.5"),
        (["ppo.clip_ratio=1.5,2.0"], "job 0 (ppo.clip_ratio=1.5 seed=0): ppo.clip_ratio=1.5"),
        (["++ppo.lr=-1,0.1"], "job 0 (++ppo.lr=-1 seed=0): ppo.lr=-1.0 is"),
        (["totl_steps=5"], "totl_steps is not a known key"),  # names every key, seed too
        (["env=cartpole,pendulum", "env.num_envs=0"], "env.num_envs=0 is not allowed"),
    ],
)
def test_a_sweep_names_a_job_only_for_its_own_mistake(argv, said, no_training, monkeypatch, capsys):
    err = one_line(sharedppo(["-m", *argv, "seed=0,1"], monkeypatch), capsys)
    assert err.startswith(f"sharedppo: error: {said}"), err


def test_a_yaml_error_in_a_users_config_is_one_line(no_training, monkeypatch, capsys):
    own = no_training / "own"
    (own / "env").mkdir(parents=True)
    (own / "env" / "mine.yaml").write_text("id: [CartPole-v1\n")
    for argv in (
        [f"hydra.searchpath=[file://{own}]", "env=mine"],
        ["-cd", str(own), "env=mine"],
        ["-m", "-cd", str(own), "env=mine", "seed=0,1"],
    ):
        err = one_line(sharedppo(argv, monkeypatch), capsys)
        assert "mine.yaml, line 2 is not valid YAML" in err, err


def test_other_flags_keep_the_sweep_precheck(no_training, monkeypatch, capsys):
    own = no_training / "own"
    own.mkdir()
    argv = ["-m", "-cd", str(own), "ppo.clip_ratio=0.2,1.5"]
    err = one_line(sharedppo(argv, monkeypatch), capsys)
    assert "job 1 (ppo.clip_ratio=1.5)" in err


@pytest.mark.parametrize(
    "argv", [["--hydra-help"], ["hydra.mode=MULTIRUN", "seed=0,1"], ["-m", "-cd", ".", "seed=0,1"]]
)
def test_good_command_lines_still_reach_hydra(argv, no_training, monkeypatch):
    with pytest.raises(Trained):
        sharedppo(argv, monkeypatch)()


@pytest.fixture
def not_a_checkpoint(no_training: Path) -> Path:
    path = no_training / "notes.pt"
    path.write_text("not a checkpoint\n")
    return path


SECONDARY = [
    (eval_cli, ["--device", "foo"], "--device foo"),
    (eval_cli, ["--device", "cuda:99"], "--device cuda:99"),
    (eval_cli, ["--seed", "-5"], "--seed -5"),
    (eval_cli, ["--seed", str(2**32)], "--seed"),
    (eval_cli, ["--episodes", "0"], "--episodes"),
    (eval_cli, ["--episodes", "many"], "--episodes"),
    (eval_cli, [], "corrupt or unreadable"),
    (export_cli, ["--out", "."], "it is a folder"),
    (export_cli, ["--out", "no/such/folder/x.onnx"], "--out"),
    (export_cli, ["--format", "tflite", "--out", "x.onnx"], "--format"),
    (export_cli, [], "--out"),
    (report_cli, ["--window", "-3"], "--window -3"),
    (report_cli, ["--window", "0"], "--window"),
    (report_cli, ["--threshold", "nan"], "--threshold"),
    (report_cli, ["--threshold", "inf"], "--threshold"),
]
if not torch.cuda.is_available():
    SECONDARY.append((eval_cli, ["--device", "cuda"], "--device cuda"))


@pytest.mark.parametrize(
    ("cli", "args", "named"), SECONDARY, ids=[f"{c[0].__name__} {c[1]}" for c in SECONDARY]
)
def test_secondary_commands_check_their_arguments(cli, args, named, not_a_checkpoint, capsys):
    path = not_a_checkpoint if cli is not report_cli else not_a_checkpoint.parent
    if cli is export_cli and args == ["--out", "."]:
        args = ["--out", str(not_a_checkpoint.parent)]
    err = one_line(lambda: cli.main([str(path), *args]), capsys)
    assert err.startswith(f"{cli.main.__module__.split('.')[-1]}") or "error:" in err
    assert named in err, err


SPACES = {
    "a YAML error": ("study_name: s\nparams: {ppo.lr: {type: float, low: [1\n", "not valid YAML"),
    "empty choices": (
        "study_name: s\nparams:\n  network.activation: {type: categorical, choices: []}\n",
        "choices",
    ),
    "low > high": (
        "study_name: s\nparams:\n  ppo.lr: {type: float, low: 0.1, high: 0.01}\n",
        "low=0.1 > high=0.01",
    ),
    "a string bound": (
        "study_name: s\nparams:\n  ppo.lr: {type: float, low: small, high: 0.01}\n",
        "params.ppo.lr.low",
    ),
    "log from 0": (
        "study_name: s\nparams:\n  ppo.lr: {type: float, low: 0, high: 0.01, log: true}\n",
        "log",
    ),
    "a path as study_name": (
        "study_name: ../../escape\nparams:\n  ppo.lr: {type: float, low: 0.001, high: 0.01}\n",
        "study_name",
    ),
    "a list, not a mapping": ("- 1\n- 2\n", "mapping"),
}


@pytest.mark.parametrize("case", list(SPACES))
def test_bad_search_spaces_are_one_line(case, no_training, capsys):
    text, named = SPACES[case]
    space = no_training / "space.yaml"
    space.write_text(text)
    err = one_line(lambda: tune_cli.main(["--search", str(space), "--out", "t"]), capsys)
    assert err.startswith("sharedppo-tune: error:") and named in err, err
    assert not (no_training.parent / "escape").exists()


def test_an_override_the_space_searches_is_refused(no_training, capsys):
    space = no_training / "space.yaml"
    space.write_text("study_name: s\nparams:\n  ppo.lr: {type: float, low: 0.001, high: 0.01}\n")
    argv = ["--search", str(space), "--out", "t", "ppo.lr=0.1"]
    err = one_line(lambda: tune_cli.main(argv), capsys)
    assert "ppo.lr=0.1 is not allowed: the search space searches ppo.lr" in err


def test_tune_argument_errors_are_one_line(no_training, capsys):
    err = one_line(lambda: tune_cli.main(["--trials", "x"]), capsys)
    assert err.startswith("sharedppo-tune: error: argument --trials")


def test_the_trainer_estimates_memory_with_the_envs_observation():
    # Before building, the trainer asks again with the env's own observation size: a
    # rollout of big frames is refused there, where the pre-check had to assume one number.
    cfg = compose_config("ppo.num_steps=4096", "env.num_envs=64")
    validate(cfg)
    check_fits(cfg, torch.device("cpu"), obs_size=1)
    with pytest.raises(ConfigError, match=r"ppo.num_steps=4096 x env.num_envs=64 .* needs?"):
        check_fits(cfg, torch.device("cpu"), obs_size=10**7)


@pytest.mark.parametrize("override", ["torch_threads=100000", "network.width=1000000"])
def test_former_crashes_are_one_line_in_a_real_process(override, tmp_path):
    # These used to end in a SIGSEGV with no summary; a process shows what a user sees.
    proc = run_cli(override, f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and override.split("=")[0] in proc.stderr
    assert not (tmp_path / "r").exists()


class NoInfoReset(gym.Env):
    """reset() returns the observation alone (gymnasium < 0.26's API)."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return np.zeros(3, np.float32)

    def step(self, action: Any) -> Any:
        return np.zeros(3, np.float32), 0.0, False, False, {}


class MaskAtStepOnly(NoInfoReset):
    """Masks in step()'s info, of the wrong shape, and none at reset()."""

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return np.zeros(3, np.float32), {}

    def step(self, action: Any) -> Any:
        return np.zeros(3, np.float32), 0.0, False, False, {"action_mask": np.ones(5, np.int8)}


gym.register("sharedppo_test/NoInfoReset-v0", entry_point=NoInfoReset, max_episode_steps=20)
gym.register("sharedppo_test/MaskAtStepOnly-v0", entry_point=MaskAtStepOnly, max_episode_steps=20)


def test_an_env_whose_reset_returns_no_tuple_is_one_line():
    cfg = compose_config("env.id=sharedppo_test/NoInfoReset-v0", "env.num_envs=2")
    with pytest.raises(ConfigError, match=r"reset\(\) must return \(observation, info\)") as err:
        make_envs(cfg.env, seed=0)
    assert "\n" not in str(err.value)


def test_masks_given_by_step_only_are_refused(tmp_path):
    overrides = ["env.id=sharedppo_test/MaskAtStepOnly-v0", "env.num_envs=2", "total_steps=64"]
    with pytest.raises(ConfigError, match=r"step\(\) but not by reset\(\)"):
        train([*overrides, "device=cpu"], out_dir=tmp_path / "job")
