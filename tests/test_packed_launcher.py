"""``hydra/launcher=packed``: a sweep's jobs grouped into packs, each pack in a watched process
of its own, each job still a job (its folder, records, log and checkpoints); a sweep folder
continues as under any launcher; a pack that dies takes only its own jobs with it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import initialize_config_module
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf

from sharedppo.cli import packed
from sharedppo.compose import register_configs
from sharedppo.overrides import register_resolvers
from sharedppo.pack import train as pack_train
from sharedppo.pack.group import group, pack_lines
from tests.conftest import compose_config, run_cli


def plain(*overrides: str) -> dict:
    return OmegaConf.to_container(compose_config(*overrides), resolve=True)


def lines(configs: list[dict], max_pack: int = 64, processes: int = 1) -> list[str]:
    packs = group(configs, max_pack, processes)
    return pack_lines(packs, configs, list(range(len(configs))), max_pack, processes)


def test_seeds_and_learning_rates_share_a_pack():
    configs = [plain(f"seed={s}", f"ppo.lr={lr}") for s in (0, 1) for lr in (1e-3, 3e-4)]
    assert lines(configs) == ["pack 1: jobs 0-3 (4 jobs; differ in ppo.lr, seed)"]


def test_shapes_split_packs_and_a_recurrent_job_trains_alone():
    configs = [
        plain("seed=0"),
        plain("seed=0", "env.num_envs=4"),
        plain("seed=1"),
        plain("seed=0", "network.width=32"),
        plain("seed=0", "network.recurrent=lstm"),
        plain("seed=2", "env.num_envs=4"),
    ]
    assert lines(configs) == [
        "pack 1: jobs 0, 2 (2 jobs; differ in seed; other env.num_envs than pack 2)",
        "pack 2: jobs 1, 5 (2 jobs; differ in seed; other env.num_envs than pack 1)",
        "pack 3: job 3 trains alone: other network.width than pack 1",
        "pack 4: job 4 trains alone: network.recurrent=lstm (a recurrent core)",
    ]


def test_max_pack_splits_a_pack_in_job_order():
    configs = [plain(f"seed={s}") for s in range(5)]
    assert [p.jobs for p in group(configs, 2)] == [[0, 1], [2, 3], [4]]
    assert lines(configs, max_pack=2) == [
        "pack 1: jobs 0-1 (2 jobs; differ in seed; at most max_pack=2 a pack)",
        "pack 2: jobs 2-3 (2 jobs; differ in seed; at most max_pack=2 a pack)",
        "pack 3: job 4 (1 job; at most max_pack=2 a pack)",
    ]
    assert [p.jobs for p in group(configs, 4)] == [[0, 1, 2], [3, 4]]  # as even as it allows
    with pytest.raises(ValueError):
        group(configs, 0)


def test_packs_are_split_where_n_jobs_processes_would_stand_idle():
    configs = [plain(f"seed={s}", f"ppo.lr={lr}") for s in (0, 1) for lr in (1e-3, 3e-4)]
    assert lines(configs, processes=2) == [
        "pack 1: jobs 0-1 (2 jobs; differ in ppo.lr; split so that n_jobs=2 packs train at once)",
        "pack 2: jobs 2-3 (2 jobs; differ in ppo.lr; split so that n_jobs=2 packs train at once)",
    ]
    assert [p.jobs for p in group(configs, 64, processes=8)] == [[0], [1], [2], [3]]
    # A job that trains alone is a process of its own already.
    alone = [*configs[:2], plain("seed=0", "network.recurrent=gru")]
    assert [p.jobs for p in group(alone, 64, processes=2)] == [[0, 1], [2]]


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def test_a_packed_sweep_keeps_each_job_a_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "hydra/launcher=packed",
        "hydra.launcher.n_jobs=1",  # one pack (the default: one per CPU)
        "seed=0,1",
        "ppo.lr=1e-3,3e-4",
        "total_steps=512",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "pack 1: jobs 0-3 (4 jobs; differ in ppo.lr, seed)" in output
    assert f"sharedppo: sweep {sweep}: 4 completed" in proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == [
        "lr=0.0003,seed=0",
        "lr=0.0003,seed=1",
        "lr=0.001,seed=0",
        "lr=0.001,seed=1",
    ]
    for job in jobs:
        assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= {
            p.name for p in (job / ".hydra").iterdir()
        }
        assert summary(job)["status"] == "completed" and summary(job)["global_step"] == 512
        assert (job / "checkpoints" / "last.pt").is_file()
        assert list(job.glob("events.out.tfevents.*"))
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        assert f"ppo.lr={'0.001' if 'lr=0.001' in job.name else '0.0003'}" in overrides
        # Its own log: its lines, not its pack-mates'.
        log = (job / "sharedppo.log").read_text()
        (num,) = {n for n in range(4) if f"[job {n}]" in log}
        assert f"sharedppo: job {num} ({job.name}) starts" in log
        assert f"[job {num}] job {num} ({job.name}) done: 512 steps" in log


@pytest.fixture
def launch_in_process(tmp_path, monkeypatch):
    """``packed.launch`` in this process, as Hydra's sweeper calls it, for a sweep folder in
    tmp_path; the logging Hydra would configure is left as pytest set it."""
    monkeypatch.setattr(packed, "configure_log", lambda *a, **k: None)
    register_configs()
    register_resolvers()
    sweep = tmp_path / "sweep"

    def launch(jobs: list[list[str]], n_jobs: int = 1, max_pack: int = 64) -> list[JobReturn]:
        with initialize_config_module("sharedppo.conf", version_base="1.3"):
            hydra = GlobalHydra.instance().hydra
            config = hydra.compose_config(
                "config",
                ["hydra/launcher=packed", f"hydra.sweep.dir={sweep}", "device=cpu"],
                run_mode=RunMode.MULTIRUN,
            )
            context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks())
            return packed.launch(config, context, n_jobs, max_pack, jobs, 0)

    return sweep, launch


COMMON = ["total_steps=512", "device=cpu"]


def test_a_rerun_keeps_the_completed_job_and_resumes_the_one_with_a_checkpoint(
    launch_in_process, caplog, capsys
):
    sweep, launch = launch_in_process
    jobs = [[f"seed={s}", *COMMON, "checkpoint.every_steps=256"] for s in (0, 1, 2)]
    first = launch(jobs)
    assert all(r.return_value == r.return_value for r in first)  # mean returns, not NaN
    done, resumable, failed = sorted(p for p in sweep.iterdir() if p.is_dir())
    kept = (done / "summary.json").stat().st_mtime_ns
    # Job 1 as a job killed after its checkpoint at step 256: only that checkpoint is left.
    checkpoints = resumable / "checkpoints"
    os.replace(checkpoints / "step_000000000256.pt", checkpoints / "last.pt")
    for stale in [resumable / "summary.json", *resumable.glob("events.out.tfevents.*")]:
        stale.unlink()
    # Job 2 as a job that failed: rerun only when asked (retry_failed=true).
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "error": "a NaN"}))
    caplog.clear()
    capsys.readouterr()

    with caplog.at_level("INFO"):
        again = launch(jobs)
    assert f"sharedppo: job 0 ({done.name}) kept: it completed earlier" in caplog.messages
    assert (
        f"sharedppo: job 2 ({failed.name}) failed earlier; not retried" in capsys.readouterr().err
    )
    assert "pack 1: job 1 (1 job)" in caplog.messages  # the only job left to train
    assert (done / "summary.json").stat().st_mtime_ns == kept
    assert summary(resumable)["status"] == "completed"
    history = [json.loads(line) for line in (resumable / "resume_history.jsonl").open()]
    assert [h["from_step"] for h in history] == [256]
    assert summary(resumable)["global_step"] == 512
    assert summary(failed) == {"status": "failed", "error": "a NaN"}
    assert again[0].return_value == summary(done)["mean_return"]
    assert again[1].return_value == summary(resumable)["mean_return"]
    assert again[2].return_value != again[2].return_value  # NaN: no mean return


def test_a_pack_that_dies_marks_its_jobs_failed_and_the_other_pack_completes(
    launch_in_process, monkeypatch, capsys
):
    sweep, launch = launch_in_process
    real = packed.train_pack

    def dies_with_width_32(members):
        if any(m.cfg.network.width == 32 for m in members):
            os._exit(3)  # in the pack's process, forked: as a segfault would end it
        return real(members)

    monkeypatch.setattr(packed, "train_pack", dies_with_width_32)
    jobs = [[f"seed={s}", f"network.width={w}", *COMMON] for w in (32, 64) for s in (0, 1)]
    returns = launch(jobs, n_jobs=2)
    names = {p.name: p for p in sweep.iterdir() if p.is_dir()}
    dead = [names[n] for n in names if "width=32" in n]
    alive = [names[n] for n in names if "width=64" in n]
    assert len(dead) == len(alive) == 2
    for job in dead:
        assert summary(job) == {
            "status": "failed",
            "error": "its pack's process (pack 1) exited with code 3 before recording how the "
            "job ended",
        }
    assert all(summary(job)["status"] == "completed" for job in alive)
    values = [r.return_value for r in returns]
    assert values[0] != values[0] and values[1] != values[1]  # NaN: no mean return
    assert values[2] == values[2] and values[3] == values[3]
    assert "failed: its pack's process (pack 1) exited with code 3" in capsys.readouterr().err


def test_a_stopped_pack_starts_none_of_its_remaining_jobs(monkeypatch, tmp_path):
    """Jobs a population cannot hold train one after another: once one is stopped by a signal
    (Ctrl-C, passed on by the command), the jobs after it wait for the sweep's rerun instead
    of training to their end."""
    trained = []

    def stopped_first(member):
        trained.append(member.label)
        return 130

    monkeypatch.setattr(pack_train, "_train_alone", stopped_first)
    members = [pack_train.Member(None, tmp_path / str(n), f"job {n}") for n in range(3)]
    codes = [None] * 3
    pack_train._one_after_another(members, [0, 1, 2], codes)
    assert codes == [130, 130, 130]
    assert trained == ["job 0"]
