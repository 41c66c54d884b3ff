"""Sweeps: parallel launchers, a failing job, the report, and tuning with pruning."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from sharedppo.compose import compose_checked
from sharedppo.report import ci95, report, rolling_mean
from tests.conftest import run_cli

TINY = ["total_steps=512", "checkpoint.every_steps=null"]


def jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


def test_ci95_on_known_inputs():
    mean, half = ci95([1.0, 2.0, 3.0, 4.0])
    # sd = sqrt(5/3) = 1.29099; t(0.975, 3 df) = 3.182; half = 3.182 * 1.29099 / 2
    assert mean == 2.5
    assert half == pytest.approx(3.182 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert math.isnan(ci95([7.0])[1])
    assert rolling_mean(np.array([1.0, 3.0, 5.0]), 2).tolist() == [1.0, 2.0, 4.0]


def test_joblib_grid_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=0,1",
        "ppo.clip_ratio=0.1,0.2",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    folders = jobs(sweep)
    assert len(folders) == 4
    for job in folders:
        assert list(job.glob("events.out.tfevents.*"))
        assert json.loads((job / "summary.json").read_text())["status"] == "completed"

    rows = report(sweep, threshold=30.0)
    assert [r.config for r in rows] == ["ppo.clip_ratio=0.1", "ppo.clip_ratio=0.2"]
    assert all(r.seeds == 2 and r.failed == 0 for r in rows)
    with open(sweep / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and table[0]["seeds"] == "2"
    # The CI in the table is the t-interval over the two seeds' final returns.
    from sharedppo.report import read_job

    finals = [
        float(j.returns[-20:].mean())
        for j in map(read_job, folders)
        if "ppo.clip_ratio=0.1" in j.overrides
    ]
    assert len(finals) == 2
    assert float(table[0]["final_return_mean"]) == pytest.approx(np.mean(finals))
    assert float(table[0]["final_return_ci95"]) == pytest.approx(
        12.706 * np.std(finals, ddof=1) / math.sqrt(2)
    )
    assert (sweep / "report.md").is_file() and (sweep / "report_curves.png").stat().st_size > 0


def test_failing_job_does_not_take_the_sweep_down(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "ppo.clip_ratio=0.2,1.5", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    # Every job ran; the command still reports the failure in its exit code and last line.
    assert proc.returncode == 1, proc.stderr
    assert "ppo.clip_ratio=1.5 is not allowed" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("sharedppo: 1 of 2 jobs failed")
    statuses = [json.loads((j / "summary.json").read_text())["status"] for j in jobs(sweep)]
    assert statuses == ["completed", "failed"]
    rows = {r.config: r for r in report(sweep)}
    assert rows["ppo.clip_ratio=0.2"].seeds == 1 and rows["ppo.clip_ratio=0.2"].failed == 0
    assert rows["ppo.clip_ratio=1.5"].seeds == 0 and rows["ppo.clip_ratio=1.5"].failed == 1
    assert "| 0 | 1 |" in (sweep / "report.md").read_text()


def test_submitit_local_multirun(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "seed=0,1",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(jobs(sweep)) == 2
    assert all((j / "checkpoints" / "last.pt").is_file() for j in jobs(sweep))


def test_slurm_preset_composes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run_cli("hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SlurmLauncher" in proc.stdout and "partition: cpu" in proc.stdout


def test_tuning_prunes_resumes_and_writes_a_preset(tmp_path):
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text(
        "study_name: tiny\nn_trials: 3\nseed: 0\n"
        "overrides: [total_steps=2048, checkpoint.every_steps=null]\n"
        "pruner: {type: median, n_startup_trials: 1, n_warmup_steps: 0}\n"
        "params:\n  ppo.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
        "  ppo.update_epochs: {type: int, low: 1, high: 4}\n"
    )
    out = tmp_path / "tune"
    cmd = [sys.executable, "-m", "sharedppo.tune", "--search", str(space), "--out", str(out)]
    import subprocess

    first = subprocess.run([*cmd, "--trials", "2"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr

    import optuna

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3  # the second command added one trial, not three
    assert sorted(p.name for p in out.glob("trial_*")) == ["trial_000", "trial_001", "trial_002"]
    assert all(t.intermediate_values for t in study.trials)
    preset = out / "experiment" / "tiny_best.yaml"
    assert preset.read_text().startswith("# @package _global_")
    cfg = compose_checked([f"hydra.searchpath=[file://{out}]", "experiment=tiny_best"])
    assert cfg.ppo.lr == pytest.approx(study.best_params["ppo.lr"])


def test_search_spaces_compose_as_a_config_group():
    from sharedppo.config import ConfigError
    from sharedppo.tune import load_space

    space = load_space("cartpole")
    assert space.study_name == "cartpole" and "ppo.lr" in space.params
    with pytest.raises(ConfigError, match="cartpole"):
        load_space("no_such_space")
    # A training run composed with it ignores the search space.
    assert compose_checked(["hparams_search=cartpole"]).ppo.lr == compose_checked([]).ppo.lr
