"""Sweeps that continue: a job that dies is recorded and the others run on, under each
launcher; a stopped sweep stops every process it started and continues exactly when its
command is rerun with its folder; failed jobs are retried only when asked."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
FAULTY = "env.id=tests.faulty_env:Faulty-v0"
# CartPole's recipe and budget (a bare env.id would run the general recipe, env=generic)
RECIPE = "env=cartpole"


def flagged(tmp_path: Path) -> dict[str, str]:
    """The environment for a run whose faulty env acts once (tests/faulty_env.py)."""
    flag = tmp_path / "flag"
    flag.touch()
    return {"PYTHONPATH": str(ROOT), "SHAREDPPO_TEST_FLAG": str(flag)}


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def continue_args(stderr: str) -> list[str]:
    """The arguments of the command the sweep printed to continue it."""
    prefix = "sharedppo: continue it with: sharedppo "
    (line,) = [line for line in stderr.splitlines() if line.startswith(prefix)]
    return shlex.split(line[len(prefix) :])


def test_a_job_that_dies_is_marked_failed_and_retried_only_when_asked(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        RECIPE,
        FAULTY,
        "env.kwargs.crash_at=64,0",  # job 0's process dies after its checkpoint at step 512
        "total_steps=1024",
        "checkpoint.every_steps=256",
        f"hydra.sweep.dir={sweep}",
    ]
    env = flagged(tmp_path)
    proc = run_cli(*args, cwd=tmp_path, env=env)
    crashed, healthy = sweep / "crash_at=64", sweep / "crash_at=0"
    # The job after the dead one ran; the command names the dead one last.
    assert proc.returncode == 1, proc.stderr
    assert summary(healthy)["status"] == "completed"
    assert summary(crashed) == {
        "status": "failed",
        "error": "its process exited with code 3 before recording how the job ended",
    }
    assert proc.stderr.strip().splitlines()[-1] == (
        f"sharedppo: 1 of 2 jobs failed (see summary.json in {crashed})"
    )
    assert continue_args(proc.stderr) == args[:-1] + [f"hydra.sweep.dir={sweep}"]

    # Rerun as printed: the completed job is kept as it was, the failed one is not retried.
    kept = (healthy / "summary.json").stat().st_mtime_ns
    (tmp_path / "flag").touch()  # it would crash again
    again = run_cli(*continue_args(proc.stderr), cwd=tmp_path, env=env)
    assert again.returncode == 1, again.stderr
    assert "job 0 (crash_at=64) failed earlier; not retried" in again.stderr
    assert (healthy / "summary.json").stat().st_mtime_ns == kept
    assert summary(crashed)["status"] == "failed"

    # Asked to: it resumes from its last checkpoint and completes.
    (tmp_path / "flag").unlink()
    retried = run_cli(*continue_args(proc.stderr), "retry_failed=true", cwd=tmp_path, env=env)
    assert retried.returncode == 0, retried.stderr
    assert summary(crashed)["status"] == "completed" and summary(crashed)["global_step"] == 1024
    history = (crashed / "resume_history.jsonl").read_text().splitlines()
    assert [json.loads(line)["from_step"] for line in history] == [512]
    assert (healthy / "summary.json").stat().st_mtime_ns == kept


def _weights(job: Path) -> dict[str, torch.Tensor]:
    return torch.load(job / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_a_stopped_sweep_continues_exactly_when_rerun_with_its_folder(tmp_path):
    sweep = tmp_path / "sweep"
    common = [
        RECIPE,
        FAULTY,
        "env.kwargs.stop_at=64",
        "total_steps=4096",
        "checkpoint.every_steps=1024",
    ]
    args = ["-m", *common, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    # Ctrl-C, typed in the sweep's terminal (its process group) while job 0 trains.
    stopped = subprocess.run(
        [sys.executable, "-m", "sharedppo", *args],
        cwd=tmp_path,
        env=dict(os.environ, HYDRA_FULL_ERROR="0", **flagged(tmp_path)),
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,
    )
    assert stopped.returncode == 130, stopped.stderr
    assert "job 0 stopped by SIGINT" in stopped.stderr
    assert f"sweep {sweep}: 1 interrupted, 1 not started; stopped by SIGINT" in stopped.stderr
    interrupted = summary(sweep / "seed=0")
    assert interrupted["status"] == "interrupted" and interrupted["global_step"] < 4096
    assert not (sweep / "seed=1" / "summary.json").exists()

    resumed = run_cli(*continue_args(stopped.stderr), cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert resumed.returncode == 0, resumed.stderr
    assert f"sweep {sweep}: 2 completed" in resumed.stderr
    assert summary(sweep / "seed=1")["status"] == "completed"

    # Job 0, stopped and continued, ends where it would have ended without the stop.
    alone = tmp_path / "alone"
    proc = run_cli(
        *common, "seed=0", f"hydra.run.dir={alone}", cwd=tmp_path, env={"PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stderr
    continued = _weights(sweep / "seed=0")
    assert continued.keys() == _weights(alone).keys()
    assert all(torch.equal(continued[k], _weights(alone)[k]) for k in continued)
    same = ("global_step", "updates", "episodes", "mean_return", "best_return", "auc_return")
    assert {k: summary(sweep / "seed=0")[k] for k in same} == {k: summary(alone)[k] for k in same}


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found.update(kids)
        todo += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _healthy_trains_on(crashed: Path, healthy: Path) -> bool:
    """The dead job is recorded, and the healthy one has checkpointed since."""
    record, last = crashed / "summary.json", healthy / "checkpoints" / "last.pt"
    if not (record.is_file() and last.is_file()):
        return False
    return last.stat().st_mtime_ns > record.stat().st_mtime_ns


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("launcher", ["processes", "packed", "joblib"])
def test_parallel_jobs_survive_a_dead_neighbour_and_sigterm_stops_every_process(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        f"hydra/launcher={launcher}",
        "hydra.launcher.n_jobs=2",
        RECIPE,
        FAULTY,
        "env.kwargs.crash_at=64,0",
        "total_steps=1000000",
        "checkpoint.every_steps=512",
        f"hydra.sweep.dir={sweep}",
    ]
    crashed, healthy = sweep / "crash_at=64", sweep / "crash_at=0"
    sweep_cmd = subprocess.Popen(
        [sys.executable, "-m", "sharedppo", *args],
        cwd=tmp_path,
        env=dict(os.environ, HYDRA_FULL_ERROR="0", **flagged(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _healthy_trains_on(crashed, healthy):
            assert sweep_cmd.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        started = _descendants(sweep_cmd.pid)
        sweep_cmd.send_signal(signal.SIGTERM)  # to the command alone, not its group
        _, stderr = sweep_cmd.communicate(timeout=120)
    finally:
        if sweep_cmd.poll() is None:
            sweep_cmd.kill()
    assert sweep_cmd.returncode == 143, stderr
    deadline = time.monotonic() + 10
    while any(map(_alive, started)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if _alive(pid)], "a process of the sweep outlived it"
    assert summary(crashed)["status"] == "failed" and "code 3" in summary(crashed)["error"]
    assert summary(healthy)["status"] == "interrupted"
    assert stderr.strip().splitlines()[-1] == (
        f"sharedppo: 1 of 2 jobs failed (see summary.json in {crashed})"
    )
