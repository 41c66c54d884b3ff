"""One owner per job folder: the process training in it holds an OS lock (released however it
dies); a second writer, and a fresh run into a folder that holds a job, are refused in one
line before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sharedppo.cli import app
from sharedppo.jobdir import LOCK, JobDir, JobFolderError
from sharedppo.run.session import Interrupted, train
from tests.conftest import run_cli

TINY = ("total_steps=512", "checkpoint.every_steps=256")
HOLD = (
    "import sys, time; from sharedppo.jobdir import JobDir;"
    "owned = JobDir(sys.argv[1]).own(); owned.__enter__();"  # kept: the lock lives with it
    "print('owned', flush=True); time.sleep(120)"
)


def hold(folder: Path) -> subprocess.Popen[str]:
    """Another process that owns ``folder`` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "owned"
    return proc


def files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock's note (who last owned the folder)."""
    found = (p for p in folder.rglob("*") if p.is_file() and p.name != LOCK)
    return {str(p.relative_to(folder)): p.read_bytes() for p in found}


def main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The ``sharedppo`` command in this process, for refusals that come before Hydra starts."""
    monkeypatch.setattr(sys, "argv", ["sharedppo", *args])
    with pytest.raises(SystemExit) as stop:
        app.main()
    return stop.value.code, capsys.readouterr().err.strip()


def test_a_folder_has_one_owner_and_kill_9_frees_it(cfg_factory, tmp_path):
    job = JobDir(tmp_path / "job")
    with job.own(), job.own():  # re-entrant within the process that owns it
        pass
    proc = hold(job.path)
    try:
        with pytest.raises(JobFolderError, match=rf"in use by process {proc.pid} on ") as err:
            train(cfg_factory(*TINY), job.path)
        assert "\n" not in str(err.value)
        assert not job.started() and not job.checkpoints.exists(), "a refused run wrote"
    finally:
        proc.kill()  # SIGKILL: no chance to unlock; the OS drops the lock with the process
        proc.wait()
    with job.own():
        pass


def test_a_fresh_run_into_a_jobs_folder_is_refused_with_the_command_that_continues_it(
    cfg_factory, tmp_path
):
    with pytest.raises(Interrupted):
        train(cfg_factory(*TINY), tmp_path, on_update=lambda step, _: step >= 256)
    before = files(tmp_path)
    with pytest.raises(JobFolderError) as err:
        train(cfg_factory(*TINY), tmp_path)
    assert str(err.value) == (
        f"{tmp_path} already holds a job (interrupted at env step 256); continue it with: "
        f"sharedppo resume={tmp_path}"
    )
    assert files(tmp_path) == before, "the refused run must not touch the job's files"

    train(cfg_factory(*TINY, f"resume={tmp_path}"), tmp_path)
    with pytest.raises(JobFolderError) as err:
        train(cfg_factory(*TINY), tmp_path)
    assert str(err.value).endswith(
        f"(completed at env step 512); train it on with: sharedppo resume={tmp_path} "
        "total_steps=1024"
    )


def test_a_folder_whose_run_left_no_checkpoint_is_refused_too(cfg_factory, tmp_path):
    # No checkpoint to continue, but its curves and summary would be mixed with a new run's.
    train(cfg_factory("total_steps=256", "checkpoint.every_steps=null"), tmp_path)
    JobDir(tmp_path).last.unlink()
    with pytest.raises(JobFolderError, match="with no checkpoint to continue; train into another"):
        train(cfg_factory("total_steps=256"), tmp_path)


def test_the_command_refuses_before_hydra_writes(cfg_factory, tmp_path, monkeypatch, capsys):
    job = tmp_path / "job"
    with pytest.raises(Interrupted):
        train(cfg_factory(*TINY), job, on_update=lambda step, _: step >= 256)
    JobDir(job).write_job(cfg_factory(*TINY), list(TINY))
    before = files(job)
    code, err = main(monkeypatch, capsys, *TINY, f"hydra.run.dir={job}")
    assert code == 2 and err.count("\n") == 0
    assert err == (
        f"sharedppo: error: {job} already holds a job (interrupted at env step 256); "
        f"continue it with: sharedppo resume={job}"
    )
    # A resume while the job is training elsewhere: refused, naming the process.
    proc = hold(job)
    try:
        code, err = main(monkeypatch, capsys, f"resume={job}")
    finally:
        proc.kill()
        proc.wait()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith(f"sharedppo: error: {job} is in use by process {proc.pid} on ")
    assert files(job) == before


def test_a_sweep_job_never_writes_into_a_folder_another_job_owns(tmp_path):
    sweep = tmp_path / "sweep"
    taken = sweep / "seed=0"
    proc = hold(taken)
    try:
        done = run_cli(
            "-m", "seed=0,1", "total_steps=256", f"hydra.sweep.dir={sweep}", cwd=tmp_path
        )
    finally:
        proc.kill()
        proc.wait()
    assert done.returncode == 2, done.stderr
    assert f"job 0 (seed=0) not run: {taken} is in use by process {proc.pid}" in done.stderr
    assert "Traceback" not in done.stderr
    # Only Hydra's log of the job (opened before the job starts) is in the taken folder.
    assert sorted(p.name for p in taken.iterdir()) == [".lock", "sharedppo.log"]
    summary = json.loads((sweep / "seed=1" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (sweep / "seed=1" / ".hydra" / "config.yaml").is_file()
