"""Tuning: pruning, the best preset, continuing without repeats, parallel workers on a journal
file, through submitit, and on a PostgreSQL server shared by two worker commands."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharedppo.compose import compose_checked

optuna = pytest.importorskip("optuna")

TINY = "overrides: [total_steps=1024, checkpoint.every_steps=null, device=cpu]\n"
# 2 x 2 = 4 parameter sets, no pruning: what a continued study tries next is checkable.
GRID = (
    "study_name: grid\nseed: 0\n" + TINY + "pruner: {type: none}\n"
    "params:\n  ppo.update_epochs: {type: int, low: 1, high: 2}\n"
    "  network.activation: {type: categorical, choices: [tanh, relu]}\n"
)
FLOATS = (
    "study_name: tiny\nseed: 0\n" + TINY + "pruner: {type: median, n_startup_trials: 1}\n"
    "params:\n  ppo.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    "  ppo.update_epochs: {type: int, low: 1, high: 4}\n"
)

# Trials long enough (no pruning, 32k steps: about 2 s of training each) that both workers
# get some while the other starts: at 2,048 steps one worker, started a second or two ahead
# on a quiet machine, once finished all four before the other asked for its first.
PARALLEL = FLOATS.replace("total_steps=1024", "total_steps=32768").replace(
    "{type: median, n_startup_trials: 1}", "{type: none}"
)


def tune(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sharedppo.tune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tune_here(*args: str) -> int:
    """The same command in this process: no interpreter to start, for the quick cases."""
    from sharedppo.tune.cli import run

    return run(list(args))


def space_file(tmp_path: Path, text: str, name: str = "space") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def journal(out: Path, name: str) -> optuna.Study:
    from sharedppo.tune.study import journal_storage

    return optuna.load_study(study_name=name, storage=journal_storage(out / "study.journal"))


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from sharedppo.tune.study import counts

    return [t for t in study.get_trials() if counts(t)]


def param_sets(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials]


def test_tuning_prunes_continues_and_writes_a_preset(tmp_path):
    out = tmp_path / "tune"
    cmd = ["--search", space_file(tmp_path, FLOATS), "--out", str(out)]
    assert tune_here(*cmd, "--trials", "2") == 0
    again = tune(*cmd, "--trials", "3", cwd=tmp_path)  # as a user runs it
    assert again.returncode == 0, again.stderr
    assert "best trial" in again.stdout and "experiment=tiny_best" in again.stdout

    study = journal(out, "tiny")
    assert len(study.trials) == 3  # the second command added one trial
    assert sorted(p.name for p in out.glob("trial_*")) == ["trial_000", "trial_001", "trial_002"]
    assert all(t.intermediate_values for t in study.trials)
    assert len(set(param_sets(study.trials))) == 3
    preset = out / "experiment" / "tiny_best.yaml"
    text = preset.read_text()
    assert text.startswith("# @package _global_")
    # Only the experiment: the trial's short budget, seed and bookkeeping stay out of it.
    body = [line for line in text.splitlines() if not line.startswith("#")]
    for run_only in ("seed", "checkpoint", "device"):
        assert not any(line.lstrip().startswith(run_only) for line in body), text
    cfg = compose_checked([f"hydra.searchpath=[file://{out}]", "experiment=tiny_best"])
    assert cfg.ppo.lr == pytest.approx(study.best_params["ppo.lr"])
    assert cfg.ppo.update_epochs == study.best_params["ppo.update_epochs"]
    default = compose_checked([])
    # The budget it was tuned at (its schedules anneal over it), not the env's default.
    assert (cfg.total_steps, cfg.seed) == (1024, default.seed)
    assert cfg.checkpoint.every_steps == default.checkpoint.every_steps


def test_best_preset_keeps_groups_and_values_and_leaves_out_run_only_keys(tmp_path):
    from sharedppo.tune.preset import preset_text

    overrides = [
        "env=acrobot",
        "total_steps=512",
        "seed=3",
        "checkpoint.every_steps=null",
        "eval.every_steps=100",
        "device=cpu",
        "torch_threads=1",
        "ppo.lr=0.0012",
        "network.activation=relu",
    ]
    text = preset_text(overrides, "note")
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "t_best.yaml").write_text(text)
    cfg = compose_checked([f"hydra.searchpath=[file://{tmp_path}]", "experiment=t_best"])
    default = compose_checked([])
    assert (cfg.env.id, cfg.ppo.lr, cfg.network.activation) == ("Acrobot-v1", 0.0012, "relu")
    for key in ("seed", "device", "torch_threads"):
        assert cfg[key] == default[key], key
    # The trial's budget stays: the learning rate annealed over it (issue 22).
    assert cfg.total_steps == 512
    assert cfg.checkpoint == default.checkpoint and cfg.eval == default.eval
    assert "# left out, as they only describe the trial's run: seed=3" in text


def test_ties_on_the_value_go_to_the_trial_that_learnt_sooner():
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from sharedppo.tune.preset import best_trial

    study = optuna.create_study(direction="maximize")
    lr = {"ppo.lr": FloatDistribution(1e-4, 1e-2)}
    for value, auc in ((500.0, 210.0), (500.0, 340.0), (480.0, 400.0), (500.0, 300.0)):
        study.add_trial(
            create_trial(
                value=value, params={"ppo.lr": 1e-3}, distributions=lr, user_attrs={"auc": auc}
            )
        )
    assert best_trial(study).number == 1


def test_continuing_a_study_tries_only_new_parameter_sets(tmp_path, caplog):
    caplog.set_level("INFO", logger="sharedppo.tune")
    out = tmp_path / "tune"
    cmd = ["--search", space_file(tmp_path, GRID), "--out", str(out)]
    assert tune_here(*cmd, "--trials", "2") == 0
    study = journal(out, "grid")
    # Make the next trial ask for trial 0's parameters again, as a sampler reseeded the same
    # way on every run used to: it must be skipped, not trained.
    study.enqueue_trial(study.trials[0].params)
    assert tune_here(*cmd, "--trials", "10") == 0
    assert "all 4 parameter sets of the space have been tried" in caplog.text

    study = journal(out, "grid")
    trials = counted(study)
    assert len(trials) == 4 and len(set(param_sets(trials))) == 4
    repeat = study.trials[2]
    assert repeat.user_attrs["skipped"] == "repeats the parameters of trial 0"
    assert not (out / "trial_002").exists()
    assert sorted(p.name for p in out.glob("trial_*")) == [f"trial_{t.number:03d}" for t in trials]


def test_parallel_trials_share_a_journal(tmp_path):
    out = tmp_path / "tune"
    search = space_file(tmp_path, PARALLEL)
    proc = tune("--search", search, "--out", str(out), "--trials", "4", "--jobs", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    study = journal(out, "tiny")
    trials = counted(study)
    assert len(trials) == 4 and len(set(param_sets(trials))) == 4
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # two processes trained
    folders = sorted(p.name for p in out.glob("trial_*"))
    assert folders == [f"trial_{t.number:03d}" for t in trials]
    assert all((out / f / "summary.json").is_file() for f in folders)
    assert "[worker 0]" in proc.stderr and "[worker 1]" in proc.stderr


def test_seeds_are_averaged_and_reported(tmp_path):
    from sharedppo.report.sweep import report

    out = tmp_path / "tune"
    space = FLOATS.replace("n_startup_trials: 1", "n_startup_trials: 5")
    search = space_file(tmp_path, space)
    assert tune_here("--search", search, "--out", str(out), "--trials=1", "--seeds=2") == 0
    (trial,) = journal(out, "tiny").trials
    folders = sorted((out / "trial_000").iterdir())
    assert [f.name for f in folders] == ["seed_0", "seed_1"]
    returns = [json.loads((f / "summary.json").read_text())["mean_return"] for f in folders]
    assert trial.value == pytest.approx(sum(returns) / 2)
    # The second seed reports after the first one's last step, with the mean of both.
    steps = sorted(trial.intermediate_values)
    assert steps[-1] > 1024 and trial.intermediate_values[steps[-1]] == pytest.approx(trial.value)
    rows = report(out)
    assert len(rows) == 1 and rows[0].seeds == 2
    assert "over 2 seeds" in (out / "experiment" / "tiny_best.yaml").read_text()


def test_an_old_sqlite_study_is_continued(tmp_path):
    out = tmp_path / "tune"
    out.mkdir()
    old = optuna.create_study(
        study_name="grid", storage=f"sqlite:///{out / 'study.db'}", direction="maximize"
    )
    trial = old.ask()
    trial.suggest_int("ppo.update_epochs", 1, 2)
    trial.suggest_categorical("network.activation", ["tanh", "relu"])
    old.tell(trial, 9.0)
    search = space_file(tmp_path, GRID)
    assert tune_here("--search", search, "--out", str(out), "--trials", "2") == 0
    assert (out / "study.db.migrated").is_file() and not (out / "study.db").exists()
    study = journal(out, "grid")
    # The old trial's parameters are unseeded, so the seeded sampler may first repeat them
    # (a skipped trial in between); what matters is one old and one new completed trial.
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.number for t in done][0] == 0 and len(done) == 2
    assert done[0].params == trial.params and done[0].value == 9.0
    assert len(set(param_sets(done))) == 2


def test_tuning_mistakes_are_one_line(tmp_path, capsys):
    good = space_file(tmp_path, GRID)
    bad_key = space_file(tmp_path, GRID + "n_trial: 3\n", "bad_key")
    bad_param = space_file(tmp_path, GRID.replace("update_epochs", "update_epoch"), "bad_param")
    refused = "postgresql://me:secret@127.0.0.1:1/db"  # nothing listens on port 1
    cases = [
        (["--search", bad_key], "search space key 'n_trial' is not allowed"),
        (["--search", bad_param], "ppo.update_epoch"),
        (["--search", good, "--storage", "bogus://x"], "--storage bogus://x is not allowed"),
        (["--search", good, "--storage", refused], "me:***@127.0.0.1:1/db: cannot open"),
        (["--search", good, "--seeds", "0"], "--seeds=0 is not allowed"),
    ]
    for args, message in cases:
        assert tune_here(*args, "--out", str(tmp_path / "out")) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # refused before any study or trial
    # A new study on a folder that holds another study's trials would write into them.
    (tmp_path / "old" / "trial_000").mkdir(parents=True)
    assert tune_here("--search", good, "--out", str(tmp_path / "old")) == 2
    assert "holds trial folders but study 'grid' has no trials" in capsys.readouterr().err


def test_workers_through_the_submitit_launcher(tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "tune"
    search = space_file(tmp_path, GRID)
    launcher = ["--jobs", "2", "hydra/launcher=submitit_local"]
    proc = tune("--search", search, "--out", str(out), "--trials", "2", *launcher, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    trials = counted(journal(out, "grid"))
    assert len(trials) == 2 and len(set(param_sets(trials))) == 2
    assert "submitted 2 workers (local)" in proc.stderr
    assert list((out / "submitit").iterdir())


def test_workers_are_submitted_to_slurm_as_a_job_array(tmp_path, monkeypatch):
    """No SLURM here: a stand-in sbatch keeps the script it is given, so what SLURM would run
    (resources, array, time-limit signal, each worker's command line) is checked."""
    pytest.importorskip("submitit")
    from sharedppo.tune.cli import for_workers, make_plan, parser, run_worker, worker_argv
    from sharedppo.tune.launch import launcher_config, submit
    from sharedppo.tune.space import load_space

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(  # it also keeps the storage the job would get
        f'#!/bin/sh\ncp "$1" {tmp_path}/script.sh\n'
        f'printf %s "$SHAREDPPO_TUNE_STORAGE" > {tmp_path}/storage.txt\n'
        'echo "Submitted batch job 4242"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    storage = "postgresql://tune@db.example/tune"
    where = ["--search", space_file(tmp_path, GRID), "--out", str(tmp_path / "out")]
    launch = ["--storage", storage, "--jobs", "2", "hydra/launcher=slurm"]
    args = parser().parse_args([*where, *launch, "hydra.launcher.partition=gpu", "ppo.lr=0.01"])
    plan, extra = make_plan(args, load_space(args.search))
    argvs = [worker_argv(args, plan, extra, i) for i in range(2)]
    launcher = launcher_config([o for o in args.overrides if o.startswith("hydra")])
    with for_workers(storage):
        jobs = submit(launcher, argvs, plan.out, run_worker)
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1"]
    script = (tmp_path / "script.sh").read_text()
    for line in ("--array=0-1", "--partition=gpu", "--signal=USR2@120", "--time=120"):
        assert f"#SBATCH {line}" in script, script
    for i, argv in enumerate(argvs):
        worker = parser().parse_args(argv)
        assert (worker.child, worker.worker, worker.storage) == (True, i, None)
        assert worker.overrides == ["ppo.lr=0.01", "torch_threads=1"]  # no launcher keys
    # The storage reaches the workers through sbatch's environment, not through any file.
    assert (tmp_path / "storage.txt").read_text() == storage
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and not [p for p in written if storage.encode() in p.read_bytes()]


def test_search_spaces_compose_as_a_config_group():
    from sharedppo.config import ConfigError
    from sharedppo.tune.space import load_space

    space = load_space("cartpole")
    assert space.study_name == "cartpole" and "ppo.lr" in space.params
    with pytest.raises(ConfigError, match="cartpole"):
        load_space("no_such_space")
    # A training run composed with it ignores the search space.
    assert compose_checked(["hparams_search=cartpole"]).ppo.lr == compose_checked([]).ppo.lr


def test_each_worker_and_each_continuation_samples_differently():
    from sharedppo.tune.space import load_space, make_sampler

    space = load_space("cartpole")

    def proposals(trials_so_far: int, worker: int) -> list[float]:
        study = optuna.create_study(sampler=make_sampler(space, trials_so_far, worker))
        return [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(4)]

    assert proposals(0, 0) == proposals(0, 0)  # a fresh study is reproducible
    assert proposals(0, 0) != proposals(2, 0)  # a continued one does not start over
    assert proposals(0, 0) != proposals(0, 1)  # parallel workers do not propose alike


# ---- a study on a PostgreSQL server, shared by two worker commands -------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(reason: str) -> None:
    """Skip, saying why; in CI (which installs PostgreSQL in .ci/run) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres() -> Iterator[str]:
    """A PostgreSQL server of our own on a free port of 127.0.0.1, with a database `tune`."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if initdb[-1] is None:
        unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable('the PostgreSQL driver is missing: pip install "sharedppo[sweep]"')
    bin_dir = Path(initdb[-1]).parent
    # initdb refuses root: as root the server runs as Debian's postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="sharedppo-pg-"))
    if as_user:
        shutil.chown(home, "postgres")
    data, port = home / "data", free_port()

    def pg(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_user, str(bin_dir / tool), *args], capture_output=True, text=True, timeout=120
        )

    started = False
    try:
        server = f"-h 127.0.0.1 -p {port} -k {home} -F"  # -F: no fsync, a throwaway server
        steps = [
            ("initdb", "-D", str(data), "-U", "tune", "--auth=trust", "--no-sync"),
            ("pg_ctl", "-D", str(data), "-l", str(home / "log"), "-w", "-o", server, "start"),
            ("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tune", "tune"),
        ]
        for tool, *args in steps:
            proc = pg(tool, *args)
            started |= tool == "pg_ctl" and proc.returncode == 0
            if proc.returncode != 0:
                log = (home / "log").read_text() if (home / "log").is_file() else ""
                unavailable(f"the PostgreSQL server did not start: {tool}: {proc.stderr} {log}")
        yield f"postgresql://tune@127.0.0.1:{port}/tune"
    finally:
        if started:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_two_workers_share_a_study_on_postgresql(tmp_path, postgres):
    out = tmp_path / "tune"
    search = space_file(tmp_path, PARALLEL)
    args = ["--search", search, "--out", str(out), "--trials", "4", "--storage", postgres]
    command = [sys.executable, "-m", "sharedppo.tune", *args]
    workers = [
        subprocess.Popen(
            [*command, "--worker", str(i)],
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    results = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], results
    study = optuna.load_study(
        study_name="tiny", storage=postgres.replace("postgresql:", "postgresql+psycopg:")
    )
    trials = counted(study)
    assert len(trials) == 4 and len(set(param_sets(trials))) == 4
    assert sorted(t.number for t in trials) == sorted(int(p.name[6:]) for p in out.glob("trial_*"))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2
    assert (out / "experiment" / "tiny_best.yaml").is_file()


def test_no_storage_secret_reaches_a_file(tmp_path, postgres, capsys):
    """A password on the command line stays out of every file the study writes (submitit's
    pickles and logs, trial folders, the preset) and out of what the command prints."""
    pytest.importorskip("submitit")
    from sharedppo.tune.cli import STORAGE_ENV

    secret = "pw-MARKER-7d41"
    storage = postgres.replace("tune@", f"tune:{secret}@")  # trust auth: any password passes
    out = tmp_path / "tune"
    search = space_file(tmp_path, GRID)
    launch = ["--jobs", "1", "hydra/launcher=submitit_local"]
    code = tune_here(
        "--search", search, "--out", str(out), "--trials", "2", "--storage", storage, *launch
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "preset written" in printed.out and list((out / "submitit").iterdir())
    assert not (out / "study.journal").exists()  # the workers did use the database
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert secret not in printed.out + printed.err
    assert STORAGE_ENV not in os.environ  # set for the workers only while they run
