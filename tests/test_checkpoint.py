"""Nothing lost: atomic checkpoints, exact resume, signals, NaN, corrupt files, evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.jobdir import JobFolderError
from sharedppo.run.checkpoint import CheckpointError, load, save_atomic
from sharedppo.run.evaluate import evaluate, load_policy
from sharedppo.run.session import Interrupted, TrainingError, train
from tests.conftest import run_cli

NAN_ID = "SharedPPOTest/NaNReward-v0"


class NaNRewardEnv(gym.Env):
    """A buggy env: finite rewards at first, then NaN from its 2000th step on."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        NaNRewardEnv.steps += 1
        reward = float("nan") if NaNRewardEnv.steps > 2000 else 1.0
        return np.zeros(2, np.float32), reward, False, False, {}


if NAN_ID not in gym.registry:
    gym.register(NAN_ID, entry_point=NaNRewardEnv, max_episode_steps=50)


def params(result) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.agent.net.state_dict().items()}


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"model": {"w": torch.ones(3)}}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        save_atomic({"model": {"w": torch.zeros(3)}, "x": Boom()}, path)
    assert torch.equal(load(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_kill_during_write_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"model": {"w": torch.ones(2)}}, path)
    code = (
        "import torch, sys; from pathlib import Path;"
        "from sharedppo.run.checkpoint import save_atomic;"
        "big = {'model': {'w': torch.zeros(50_000_000)}};"
        "print('writing', flush=True);"
        f"save_atomic(big, Path({str(path)!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert torch.equal(load(path)["model"]["w"], torch.ones(2))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04garbage"])
def test_corrupt_checkpoint_is_one_clear_error(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "missing.pt")


def test_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError):
        load(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("env", ["cartpole", "pendulum"])  # pendulum: a rollout's noise at once
def test_resume_is_exact(cfg_factory, tmp_path, env):
    overrides = (
        f"env={env}",
        "total_steps=4096",
        "network.dropout=0.1",
        "checkpoint.every_steps=1024",
    )
    full = train(cfg_factory(*overrides), tmp_path / "full")

    job = tmp_path / "job"
    with pytest.raises(Interrupted):
        train(cfg_factory(*overrides), job, on_update=lambda step, _: step >= 2048)
    assert load(job / "checkpoints" / "last.pt")["progress"]["global_step"] == 2048
    resumed = train(cfg_factory(*overrides, f"resume={job}"), job)

    assert resumed.global_step == full.global_step == 4096
    assert resumed.episodes == full.episodes
    a, b = params(full), params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_network(cfg_factory, tmp_path):
    train(cfg_factory("total_steps=512"), tmp_path)
    with pytest.raises(CheckpointError, match="network.width"):
        train(cfg_factory("total_steps=1024", "network.width=32", f"resume={tmp_path}"), tmp_path)


def test_resume_accepts_a_checkpoint_older_than_a_new_network_key(cfg_factory, tmp_path):
    train(cfg_factory("total_steps=512"), tmp_path)
    path = tmp_path / "checkpoints" / "last.pt"
    state = load(path)
    del state["config"]["network"]["log_std_init"]  # as written before that key existed
    save_atomic(state, path)
    resumed = train(cfg_factory("total_steps=1024", f"resume={tmp_path}"), tmp_path)
    assert resumed.global_step >= 1024


def test_checkpoints_are_bounded_and_best_is_kept(cfg_factory, tmp_path):
    train(
        cfg_factory("total_steps=5000", "checkpoint.every_steps=256", "checkpoint.keep=2"), tmp_path
    )
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last.pt" in names and "best.pt" in names
    assert len([n for n in names if n.startswith("step_")]) == 2
    state = load(tmp_path / "checkpoints" / "last.pt")
    from sharedppo.run.checkpoint import LAYOUT_VERSION

    assert state["version"] == LAYOUT_VERSION
    for key in ("model", "optimizer", "progress", "episodes", "memory", "rng", "env", "config"):
        assert key in state
    assert state["progress"]["global_step"] == 5120 and state["progress"]["updates"] == 20


def _nan_job(cfg_factory, every_steps: str):
    """A job on the env whose rewards turn NaN at its 2000th step."""
    NaNRewardEnv.steps = 0
    return cfg_factory(
        f"env.id={NAN_ID}",
        "env.vectorization_mode=sync",
        "env.num_envs=1",
        "ppo.num_steps=64",
        f"checkpoint.every_steps={every_steps}",
        "total_steps=10000",
    )


def test_nan_stops_with_message_and_keeps_good_checkpoint(cfg_factory, tmp_path):
    cfg = _nan_job(cfg_factory, "512")
    with pytest.raises(TrainingError, match=r"not finite at update \d+") as err:
        train(cfg, tmp_path)
    state = load(tmp_path / "checkpoints" / "last.pt")
    assert 0 < state["progress"]["global_step"] <= 2000
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    # The weights from just before the bad update are kept, and the message says where.
    good = tmp_path / "checkpoints" / "last_good.pt"
    assert str(good) in str(err.value) and "last.pt at env step" in str(err.value)
    net, _, _, _ = load_policy(good, torch.device("cpu"))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "not finite" in summary["error"]


def test_nan_before_any_checkpoint_says_so(cfg_factory, tmp_path):
    cfg = _nan_job(cfg_factory, "null")
    with pytest.raises(TrainingError, match="no resumable checkpoint was written before it"):
        train(cfg, tmp_path)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_unwritable_output_folder_fails_before_training(cfg_factory, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # The folder cannot even be owned (its lock file made): one line, before anything runs.
    with pytest.raises(JobFolderError, match="cannot write to .*job: Not a directory"):
        train(cfg_factory("total_steps=256"), blocker / "job")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_exits_and_resumes_without_duplicate_steps(tmp_path, sig, code):
    job = tmp_path / "job"
    cmd = [
        sys.executable,
        "-m",
        "sharedppo",
        "total_steps=400000",
        "checkpoint.every_steps=2048",
        f"hydra.run.dir={job}",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (job / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"sharedppo resume={job}" in err
    stopped = load(job / "checkpoints" / "last.pt")["progress"]["global_step"]
    assert 0 < stopped < 400000
    # The job's records say what happened: an interrupted job, where, and how to go on.
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["global_step"] == stopped
    assert summary["resume"] == f"sharedppo resume={job}"
    assert f"sharedppo resume={job}" in (job / "sharedppo.log").read_text()

    done = run_cli(f"resume={job}", "total_steps=" + str(stopped + 2048), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load(job / "checkpoints" / "last.pt")["progress"]["global_step"] > stopped

    # One curve across both sessions: what the first wrote after its checkpoint is purged.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(job))
    acc.Reload()
    sps_steps = [e.step for e in acc.Scalars("charts/SPS")]
    assert sps_steps == sorted(set(sps_steps)), "duplicated or out-of-order steps"
    assert sps_steps[-1] == stopped + 2048


def test_eval_of_trained_cartpole_reaches_475(cfg_factory, tmp_path):
    train(cfg_factory("experiment=cartpole_fast", "seed=1"), tmp_path)
    net, cfg, _, obs_norm = load_policy(tmp_path, torch.device("cpu"))
    returns, lengths = evaluate(net, cfg.env, 10, True, 123, torch.device("cpu"), None, obs_norm)
    assert len(returns) == 10 and returns.mean() >= 475
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sharedppo.cli.eval import main; main()",
            str(tmp_path),
            "--episodes",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 episodes: return" in proc.stdout
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert "eval/mean_return" in acc.Tags()["scalars"]


def test_periodic_eval_is_logged(cfg_factory, tmp_path):
    train(cfg_factory("total_steps=2048", "eval.every_steps=1024", "eval.episodes=2"), tmp_path)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert len(acc.Scalars("eval/mean_return")) == 2


def test_video_is_written_when_asked(cfg_factory, tmp_path):
    pytest.importorskip("moviepy", reason="the video extra is not installed")
    pytest.importorskip("pygame", reason="the video extra is not installed")
    train(cfg_factory("total_steps=512", "eval.video=true"), tmp_path)
    assert list((tmp_path / "videos").glob("*.mp4"))


def test_resume_after_a_crash_purges_steps_past_the_checkpoint(cfg_factory, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = ("total_steps=4096", "checkpoint.every_steps=1024")

    def crash(step: int, _: float) -> bool:
        if step >= 2560:
            raise RuntimeError("simulated crash")
        return False

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg_factory(*overrides), tmp_path, on_update=crash)
    assert load(tmp_path / "checkpoints" / "last.pt")["progress"]["global_step"] == 2048
    train(cfg_factory(*overrides, f"resume={tmp_path}"), tmp_path)

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("charts/SPS")]
    assert steps == list(range(256, 4097, 256))
