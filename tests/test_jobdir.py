"""JobDir on a real folder: where the layout's files are, and how they are read and written."""

from __future__ import annotations

import json
import math

from omegaconf import OmegaConf

from sharedppo.jobdir import JobDir


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
