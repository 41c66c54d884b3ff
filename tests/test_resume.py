"""Honest resume: changed hyperparameters are refused unless named, finished jobs are not
rewritten, and allowed changes are recorded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sharedppo.run.result import closing_line
from sharedppo.run.session import TrainResult
from sharedppo.tb.logger import Logger, shown_return
from tests.conftest import run_cli

TINY = ["total_steps=1024", "checkpoint.every_steps=null"]


def _job(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    proc = run_cli(*TINY, f"hydra.run.dir={job}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return job


def _records(job: Path) -> tuple[str, str]:
    return (job / ".hydra" / "config.yaml").read_text(), (job / "summary.json").read_text()


def test_changed_hyperparameters_are_refused_unless_named(tmp_path):
    job = _job(tmp_path)
    before = _records(job)
    refused = run_cli(f"resume={job}", "total_steps=2048", "ppo.lr=0.01", cwd=tmp_path)
    assert refused.returncode == 2
    line = refused.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "ppo.lr=0.001 in the job, 0.01 now" in line and "resume_allow=[ppo.lr]" in line
    assert _records(job) == before, "a refused resume must not rewrite the job's records"

    allowed = run_cli(
        f"resume={job}", "total_steps=2048", "ppo.lr=0.01", "resume_allow=[ppo.lr]", cwd=tmp_path
    )
    assert allowed.returncode == 0, allowed.stderr
    history = [json.loads(line) for line in (job / "resume_history.jsonl").read_text().splitlines()]
    assert history[-1]["changes"] == {"ppo.lr": [0.001, 0.01]}
    assert history[-1]["from_step"] == 1024
    assert "lr: 0.01" in (job / ".hydra" / "config.yaml").read_text()
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 2048
    acc = EventAccumulator(str(job))
    acc.Reload()
    assert "resume/history/text_summary" in acc.Tags()["tensors"]


def test_run_control_keys_may_change(tmp_path):
    job = _job(tmp_path)
    proc = run_cli(f"resume={job}", "total_steps=2048", "checkpoint.every_steps=512", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_resuming_a_finished_job_is_refused_without_rewriting_it(tmp_path):
    job = _job(tmp_path)
    before = _records(job)
    for total in ("1024", "512"):
        proc = run_cli(f"resume={job}", f"total_steps={total}", cwd=tmp_path)
        assert proc.returncode == 2
        assert "already run 1,024 env steps" in proc.stderr and "Traceback" not in proc.stderr
        assert _records(job) == before


def test_closing_line_without_a_target_says_nothing_untrue():
    result = TrainResult(
        status="completed",
        global_step=2048,
        updates=8,
        episodes=0,
        mean_return=float("nan"),
        best_return=None,
        auc_return=float("nan"),
        seconds=1.5,
        target_return=None,
        target_step=None,
        target_seconds=None,
        started_at=0.0,
    )
    line = closing_line(result)
    assert "None" not in line and "nan" not in line and "no episode finished" in line
    reached = closing_line(
        TrainResult(**{**result.summary(), "episodes": 3, "mean_return": 9.0, "target_return": 5})
    )
    assert "target 5 not reached" in reached and "mean return" in reached


def test_small_returns_keep_their_digits_in_every_line(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(Logger, "live", False)  # the log line, not a terminal's live line
    logger = Logger(tmp_path, {}, resume_step=None, overrides=[], has_target=False)
    with caplog.at_level(logging.INFO, logger="sharedppo"):
        logger.progress(100, 100, 1000.0, 5, 0.957)  # the last step: always written
    logger.close()
    assert "mean return 0.957" in caplog.text, caplog.text
    assert shown_return(-0.043) == "-0.043" and shown_return(475.24) == "475.2"


def test_the_final_metrics_are_written_once_per_step_and_value(tmp_path):
    logger = Logger(tmp_path, {}, resume_step=None, overrides=[], has_target=False)
    metrics = {"final_return": 20.0, "best_return": 21.0}
    logger.final_metrics(metrics, step=64)
    logger.final_metrics(metrics, step=64)  # a checkpoint, then the close, at one step
    logger.final_metrics({**metrics, "final_return": 22.0}, step=64)  # a new value
    logger.final_metrics({**metrics, "final_return": 22.0}, step=128)  # a new step
    logger.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    written = [(e.step, e.value) for e in acc.Scalars("hparams/final_return")]
    assert written == [(64, 20.0), (64, 22.0), (128, 22.0)]
