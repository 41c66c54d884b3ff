"""Sweeps: parallel launchers, a failing job, the report, and tuning with pruning."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from sharedppo.report.stats import bootstrap_ci, curve_stats, rolling_mean
from sharedppo.report.sweep import report
from tests.conftest import run_cli

TINY = ["total_steps=512", "checkpoint.every_steps=null"]


def jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir())


def test_bootstrap_ci_and_curve_stats_on_known_inputs():
    # Two seeds: a resampled mean is a, (a+b)/2 or b with chances 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% percentiles are a and b: the interval never leaves the seeds' range.
    assert bootstrap_ci([100.0, 500.0]) == (300.0, 100.0, 500.0)
    assert math.isnan(bootstrap_ci([7.0])[1])
    # Many seeds: close to the normal-theory interval mean +- 1.96 sd / sqrt(n).
    x = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    mean, low, high = bootstrap_ci(x.tolist())
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert (high - low) / 2 == pytest.approx(half, rel=0.1) and low < mean < high
    assert rolling_mean(np.array([1.0, 3.0, 5.0]), 2).tolist() == [1.0, 2.0, 4.0]
    # Returns 1, 3, 5 at steps 0, 10, 20 with a window of 2: curve 1, 2, 4.
    stats = curve_stats(np.array([0, 10, 20]), np.array([1.0, 3.0, 5.0]), 2)
    assert (stats.final, stats.best) == (4.0, 4.0)
    assert stats.auc == pytest.approx(((1 + 2) * 10 / 2 + (2 + 4) * 10 / 2) / 20)


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
    # The swept key leads, one column per key; seed is what repeats, not a column.
    assert list(table[0])[:3] == ["ppo.clip_ratio", "seeds", "failed"]
    assert [t["ppo.clip_ratio"] for t in table] == ["0.1", "0.2"] and table[0]["seeds"] == "2"
    from sharedppo.report.sweep import read_job

    finals = [
        float(j.returns[-20:].mean())
        for j in map(read_job, folders)
        if "ppo.clip_ratio=0.1" in j.overrides
    ]
    assert len(finals) == 2
    # The CSV rounds returns to 2 decimals.
    assert float(table[0]["final_return_mean"]) == pytest.approx(np.mean(finals), abs=0.005)
    # Two seeds: the bootstrap interval runs from one seed's value to the other's.
    assert float(table[0]["final_return_ci95_low"]) == pytest.approx(min(finals), abs=0.005)
    assert float(table[0]["final_return_ci95_high"]) == pytest.approx(max(finals), abs=0.005)
    assert float(table[0]["final_return_sd"]) == pytest.approx(np.std(finals, ddof=1), abs=0.005)
    assert (sweep / "report.md").is_file() and (sweep / "report_curves.png").stat().st_size > 0
    page = (sweep / "report.html").read_text()
    assert "<th>ppo.clip_ratio</th>" in page and "bootstrap" in page
    assert "data:image/png;base64,iVBOR" in page  # the plot travels inside the page


def test_a_bad_value_in_any_job_stops_the_sweep_before_any_job_runs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m", "ppo.clip_ratio=0.2,1.5", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "sharedppo: error: job 2 (ppo.clip_ratio=1.5 seed=0): "
        "ppo.clip_ratio=1.5 is not allowed: must be in (0, 1)"
    )
    assert not sweep.exists()


def test_a_job_failing_while_training_lets_the_others_finish(tmp_path):
    # test_checkpoint's NaN env, registered in the command's own process by sitecustomize.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('Test/NaNReward-v0', "
        "entry_point='tests.test_checkpoint:NaNRewardEnv', max_episode_steps=50)\n"
    )
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "env.id=Test/NaNReward-v0,CartPole-v1",
        "total_steps=2560",  # its rewards turn NaN after 2000 steps
        "checkpoint.every_steps=null",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parents[1])])},
    )
    # Every job ran; the command still reports the failure in its exit code and last line.
    assert proc.returncode == 1, proc.stderr
    assert "not finite" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("sharedppo: 1 of 2 jobs failed")
    statuses = {j.name: json.loads((j / "summary.json").read_text())["status"] for j in jobs(sweep)}
    assert statuses == {"id=CartPole-v1": "completed", "id=Test_NaNReward-v0": "failed"}
    rows = {r.config: r for r in report(sweep)}
    assert rows["env.id=CartPole-v1"].seeds == 1 and rows["env.id=CartPole-v1"].failed == 0
    assert rows["env.id=Test/NaNReward-v0"].seeds == 0
    assert rows["env.id=Test/NaNReward-v0"].failed == 1
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


def test_sweep_check_expands_jobs_as_hydra_does_and_names_unparsable_overrides():
    from sharedppo.cli.precheck import check_command, expand_sweep
    from sharedppo.config import ConfigError

    jobs, keys = expand_sweep(["seed=range(0,2)", "env=glob(cart*)", "total_steps=64"])
    assert jobs == [
        ["seed=0", "env=cartpole", "total_steps=64"],
        ["seed=0", "env=cartpole_novel", "total_steps=64"],
        ["seed=1", "env=cartpole", "total_steps=64"],
        ["seed=1", "env=cartpole_novel", "total_steps=64"],
    ]
    assert keys == {"seed", "env"}
    with pytest.raises(ConfigError, match=r"^seed=range\(0,3 cannot be parsed: "):
        check_command(["-m", "seed=range(0,3"])
    check_command(["-m", "seed=0,1", "hydra.sweep.dir=/tmp/sweep", "total_steps=64"])
    # Hydra's own keys are checked too: the basic launcher has no n_jobs, so Hydra would
    # refuse it in many lines after the check.
    with pytest.raises(ConfigError, match=r"^hydra.launcher.n_jobs is not a"):
        check_command(["-m", "seed=0,1", "hydra.launcher.n_jobs=2", "total_steps=64"])


def test_report_compares_folders_and_carries_evaluation(cfg_factory, tmp_path):
    """Two sweeps in one table and plot, each job's latest evaluation as a column, and the
    CSV's numbers rounded."""
    from sharedppo.jobdir import JobDir
    from sharedppo.report.cli import main
    from sharedppo.run.session import train

    for sweep, clip in (("a", "0.1"), ("b", "0.3")):
        for seed in (0, 1):
            given = [f"ppo.clip_ratio={clip}", f"seed={seed}", *TINY, "eval.every_steps=256"]
            cfg = cfg_factory(*given, "eval.episodes=2")
            JobDir(tmp_path / sweep / f"seed={seed}").write_job(cfg, given)
            train(cfg, tmp_path / sweep / f"seed={seed}")
    out = tmp_path / "both"
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    with open(out / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert [(t["sweep"], t["ppo.clip_ratio"]) for t in table] == [
        (str(tmp_path / "a"), "0.1"),
        (str(tmp_path / "b"), "0.3"),
    ]
    assert all(t["seeds"] == "2" and float(t["eval_return_mean"]) > 0 for t in table)
    for t in table:
        assert all(len(v.partition(".")[2]) <= 2 for k, v in t.items() if k != "sweep"), t
    assert "| eval return |" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "module_name, launcher",
    [("processes_launcher", "ProcessesLauncher"), ("packed_launcher", "PackedLauncher")],
)
def test_hydras_plugin_scan_can_load_the_launchers(module_name, launcher):
    """Hydra's plugin scan executes a plugin module before putting it in sys.modules (an
    installed, non-editable sharedppo is scanned on every run): it must load that way."""
    import importlib.util
    import sys

    name = f"hydra_plugins.sharedppo_launcher.{module_name}"
    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    loaded = sys.modules.pop(name, None)  # as in a process that has not imported it yet
    try:
        spec.loader.exec_module(module)  # as hydra.core.plugins._scan_all_plugins does
    finally:
        if loaded is not None:
            sys.modules[name] = loaded
    assert getattr(module, launcher).__name__ == launcher
