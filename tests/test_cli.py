"""The command line as a user meets it: installed entry point, any working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import run_cli

TAGS = {
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/SPS",
    "charts/learning_rate",
    "losses/policy_loss",
    "losses/value_loss",
    "losses/entropy",
    "losses/approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
}


def scalar_tags(run_dir: Path) -> set[str]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_tiny_run_writes_tags_hparams_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "total_steps=1024",
        "network.width=32",
        "seed=3",
        "eval.every_steps=512",
        "eval.episodes=2",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # The closing lines say how it went, evaluation included, where it went, how to look.
    done, where = proc.stdout.strip().splitlines()[-2:]
    assert "done: 1,024 steps" in done and "evaluation " in done and "(2 episodes" in done
    assert "results in run (" in where and "tensorboard --logdir run" in where
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval"]["step"] == 1024 and summary["eval"]["episodes"] == 2
    assert scalar_tags(out) >= TAGS
    assert list(out.glob("events.out.tfevents.*")), "events must sit in the job folder itself"
    assert not [p for p in out.iterdir() if p.is_dir() and p.name[:1].isdigit()]
    acc = EventAccumulator(str(out))
    acc.Reload()
    assert "hparams/final_return" in acc.Tags()["scalars"]
    assert (out / ".hydra" / "config.yaml").is_file()
    assert (out / "checkpoints" / "last.pt").is_file()


def test_multirun_makes_one_tensorboard_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "ppo.clip_ratio=0.1,0.2",
        "seed=0,1",
        "total_steps=256",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    # The sweep's end names its folder and the commands that read it.
    # (relative to the working folder, as a user would type it)
    assert "sweep: 4 jobs in sweep; compare them: sharedppo-report sweep" in proc.stderr
    assert "tensorboard --logdir sweep" in proc.stderr
    assert [j.name for j in jobs] == [
        "clip_ratio=0.1,seed=0",
        "clip_ratio=0.1,seed=1",
        "clip_ratio=0.2,seed=0",
        "clip_ratio=0.2,seed=1",
    ]
    for job in jobs:
        assert "charts/SPS" in scalar_tags(job)


def test_cfg_and_help_show_config_and_groups(tmp_path):
    proc = run_cli("--cfg", "job", "network.width=128", cwd=tmp_path)
    assert proc.returncode == 0 and "width: 128" in proc.stdout
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for group in ("env:", "network:", "ppo:", "experiment:"):
        assert group in proc.stdout
    # Every key with its default and what it does, and the other commands.
    assert "ppo.clip_ratio=0.2  [in (0, 1)]" in proc.stdout
    assert "The surrogate's clip range" in proc.stdout
    for command in ("sharedppo-report", "sharedppo-tune", "sharedppo-eval", "sharedppo-export"):
        assert command in proc.stdout


def test_version_is_sharedppos(capsys, monkeypatch):
    import sys

    from sharedppo.cli import main

    monkeypatch.setattr(sys, "argv", ["sharedppo", "--version"])
    main()
    assert capsys.readouterr().out.strip() == "sharedppo 0.1.0"


def test_a_sweep_without_multirun_keeps_hydras_advice():
    from sharedppo.compose import compose_checked
    from sharedppo.config import ConfigError

    with pytest.raises(ConfigError) as err:
        compose_checked(["seed=0,1"])
    message = str(err.value)
    assert "\n" not in message and "To sweep over it, add --multirun" in message


def test_multirun_after_the_overrides_is_a_sweep_and_a_misplaced_flag_says_where():
    from sharedppo.cli.precheck import is_sweep, multirun_first, parse_command
    from sharedppo.config import ConfigError

    given = ["hydra/launcher=packed", "-m", "seed=0,1", "--multirun"]
    args = multirun_first(given)
    assert args == ["-m", "hydra/launcher=packed", "seed=0,1"] and is_sweep(args)
    assert multirun_first(["seed=0"]) == ["seed=0"]
    with pytest.raises(ConfigError) as err:  # argparse takes one run of overrides
        parse_command(["seed=0", "--cfg", "job", "total_steps=9"])
    assert "go before the overrides" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("ppo.clip_ratio=-0.2", "ppo.clip_ratio"),
        ("ppo.clip_ratio=1.0", "ppo.clip_ratio"),
        ("network.dropout=1.0", "network.dropout"),
        ("network.width=0", "network.width"),
        ("env=nosuch", "env"),
        # A preset name that is not one must not train the defaults as if it were.
        ("experiment=cartpole_fastt", "experiment=cartpole_fastt is not allowed"),
        ("env.id=NoSuchEnv-v9", "env.id"),
        ("ppo.num_minibatches=3", "ppo.num_minibatches"),
        ("ppo.gamma=0", "ppo.gamma"),
        ("ppo.gamma=1.01", "ppo.gamma"),
        ("foo=1", "foo"),
        ("ppo.lr=fast", "ppo.lr"),
        pytest.param(
            "device=cuda",
            "device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, override, key):
    proc = run_cli(override, "total_steps=64", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sharedppo: error:") and key in err


def test_records_are_strict_json_and_a_refused_job_says_so(tmp_path):
    # No episode ends in 256 MountainCar steps: the return is unknown, written as null.
    job = tmp_path / "short"
    proc = run_cli("env=mountaincar", "total_steps=256", f"hydra.run.dir={job}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (job / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["mean_return"] is None
    # Refused while the env was being built: the folder Hydra made says why, not nothing.
    refused = tmp_path / "refused"
    # (a keyword the env refuses is caught by the pre-check now, before any folder exists)
    args = ("network.type=nature_cnn", "total_steps=64", f"hydra.run.dir={refused}")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    summary = json.loads((refused / "summary.json").read_text())
    assert summary["status"] == "refused" and "nature_cnn" in summary["error"]


def test_a_sweep_jobs_log_lines_carry_its_label(monkeypatch):
    import logging

    from sharedppo.cli import app
    from sharedppo.tb.logger import Logger

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handlers = [Keep(), Keep()]  # Hydra's console and file handlers: labelled once
    monkeypatch.setattr(logging.getLogger(), "handlers", handlers)
    monkeypatch.setattr(Logger, "live", True)
    app.label_jobs("job 3")
    app.label_jobs("job 3")  # the basic launcher runs jobs in one process: one filter each
    logging.getLogger("sharedppo").warning("step %d", 5)
    assert records == ["[job 3] step 5", "[job 3] step 5"]
    assert Logger.live is False  # parallel jobs' live lines would overwrite each other
    app._LABEL.label = ""
