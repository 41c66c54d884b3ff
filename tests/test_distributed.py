"""Data-parallel PPO (run/distributed.py, algo/reduce.py): N ranks are one PPO run.

The spawned tests cost a few seconds each (process start-up and gloo's rendezvous), so they
are few and each checks several things."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sharedppo.algo.agent import PPOAgent
from sharedppo.algo.batch import Batch
from sharedppo.algo.reduce import share_gradient
from sharedppo.config import ConfigError, NetworkConfig, PPOConfig
from sharedppo.nn.actor_critic import ActorCritic
from sharedppo.nn.heads import sample_categorical
from sharedppo.nn.normalize import RunningMeanStd
from sharedppo.nn.precision import Precision
from sharedppo.run.checkpoint import read
from sharedppo.run.distributed import AllReduce, Ranks, StatsSync
from sharedppo.run.session import TrainingError, train
from sharedppo.run.signals import Interrupted, stop_requests

from .conftest import compose_config, run_cli

STEPS, ENVS, RANKS = 16, 8, 2
# fp32 with each gradient; bf16 with the autograd one (the fused gradient is fp32 maths).
VARIANTS = [("fp32", True), ("fp32", False), ("bf16", False)]


def _net() -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(4, 2, NetworkConfig())


def _rollout() -> Batch:
    """STEPS x ENVS transitions, flattened time-major (row t * ENVS + i) as the memory does."""
    torch.manual_seed(1)
    n = STEPS * ENVS
    obs = torch.randn(n, 4)
    with torch.no_grad():
        logits, values = _net()(obs)
    actions, logprobs = sample_categorical(logits)
    advantages, returns = torch.randn(n), values + torch.randn(n)
    return Batch(obs, actions, logprobs, values, advantages, returns, None)


def _rank_part(batch: Batch, rank: int) -> Batch:
    """The rows of rank ``rank``'s envs (ENVS // RANKS of them), in the same time-major order."""
    per = ENVS // RANKS
    rows = torch.arange(STEPS * ENVS).view(STEPS, ENVS)[:, rank * per : (rank + 1) * per]
    return batch[rows.flatten()]


def _update(batch: Batch, precision: str, fused: bool, reducer=None) -> torch.Tensor:
    """One update from the same weights, without shuffling (so the ranks' minibatches are
    together the one process's), with every global quantity in play."""
    cfg = PPOConfig(num_minibatches=2, update_epochs=2, target_kl=1.0, fused=fused)
    args = (_net(), cfg, Precision(precision, "cpu"))
    agent = PPOAgent(*args) if reducer is None else PPOAgent(*args, reducer=reducer)
    agent.update(batch)
    return agent.optimizer.flat.clone()


def _identity_order(n: int, device=None) -> torch.Tensor:
    return torch.arange(n, device=device)


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=RANKS)
    torch.randperm = _identity_order  # this process only
    reducer = AllReduce(RANKS)
    part = _rank_part(_rollout(), rank)
    result = {v: _update(part, *v, reducer=reducer) for v in VARIANTS}
    # The normalisers' statistics: each rank saw its own data after a common start.
    ranks = Ranks(rank, RANKS, rank, reducer)
    stats = RunningMeanStd((3,))
    stats.update(np.arange(12.0).reshape(4, 3))  # the common start
    sync = StatsSync([stats], ranks)
    sync.begin()
    stats.update(np.random.default_rng(rank).normal(size=(5 + rank, 3)))
    sync.end()
    result["stats"] = (stats.mean, stats.var, stats.count)
    result["agree"] = (ranks.agree(rank == 1), ranks.agree(False))
    torch.save(result, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_are_one_process_with_the_global_batch(tmp_path: Path, monkeypatch):
    mp.spawn(_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=RANKS)
    got = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(RANKS)]
    monkeypatch.setattr(torch, "randperm", _identity_order)
    batch = _rollout()
    for variant in VARIANTS:
        want = _update(batch, *variant)
        assert not torch.equal(want, _net().state_dict()["policy_head.weight"].flatten())
        tol = 1e-5 if variant[0] == "fp32" else 2e-3
        for r in range(RANKS):
            assert torch.allclose(got[r][variant], want, atol=tol), (variant, r)
        assert torch.equal(got[0][variant], got[1][variant])  # identical weights on every rank
    one = RunningMeanStd((3,))
    one.update(np.arange(12.0).reshape(4, 3))
    for r in range(RANKS):
        one.update(np.random.default_rng(r).normal(size=(5 + r, 3)))
    for r in range(RANKS):
        mean, var, count = got[r]["stats"]
        assert np.allclose(mean, one.mean) and np.allclose(var, one.var) and count == one.count
        assert got[r]["agree"] == (True, False)


class _OtherRank:
    """A stand-in reducer of two ranks: the other rank's values, one per call."""

    world_size = 2

    def __init__(self, *values: torch.Tensor) -> None:
        self.values = list(values)

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        return x.add_(self.values.pop(0).to(x.dtype))


def test_ranks_gradients_are_weighted_by_their_rows():
    """Ranks whose minibatches differ in size (reset steps are no rows): the shared gradient
    is the mean over all rows, not the mean of the ranks' means."""
    mine, theirs = torch.tensor([1.0, 2.0]), torch.tensor([5.0, 6.0])
    grad = mine.clone()
    share_gradient(grad, 3, torch.tensor(8.0, dtype=torch.float64), _OtherRank(theirs * 5 / 8))
    assert torch.allclose(grad, (mine * 3 + theirs * 5) / 8)


OVERRIDES = (
    "env=pendulum",  # both normalisers on, a Gaussian head
    "env.num_envs=2",
    "ppo.num_steps=128",
    "ppo.update_epochs=2",
    "total_steps=2048",
    "checkpoint.every_steps=1024",  # every other update: every rank must save at the same one
)


def _train_worker(rank: int, port: int, root: str) -> None:
    """Rank ``rank`` of a 2-rank torchrun-like launch: a full run, a run stopped halfway, its
    resume; and a resume refused for a different world size (faked in the checkpoint)."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(RANKS),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        SHAREDPPO_TIMEOUT_S="60",  # a rank left waiting fails the test, not hangs it
    )
    torch.set_num_threads(1)
    base = Path(root)
    overrides = OVERRIDES
    out = {}
    out["full"] = train(compose_config(*overrides), base / f"full{rank}").agent.optimizer.flat
    job = base / "job"  # one folder: rank 0 writes it; the other ranks must not touch it
    try:
        train(compose_config(*overrides), job, on_update=lambda step, _: step >= 1024)
    except Interrupted:
        out["interrupted"] = True
    resumed = train(compose_config(*overrides, "total_steps=2048", f"resume={job}"), job)
    out["resumed"] = resumed.agent.optimizer.flat
    out["step"] = resumed.global_step
    torch.save(out, base / f"out{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_job(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A 2-rank torchrun-like launch of OVERRIDES (``_train_worker``): its folder and what
    each rank returned."""
    root = tmp_path_factory.mktemp("ranks")
    mp.spawn(_train_worker, args=(_free_port(), str(root)), nprocs=RANKS)
    return root, [torch.load(root / f"out{r}.pt") for r in range(RANKS)]


def test_two_ranks_train_one_job_that_resumes_exactly(two_rank_job):
    tmp_path, got = two_rank_job
    for r in range(RANKS):
        assert got[r]["interrupted"] and got[r]["step"] == 2048  # global steps: 2 ranks x 2 envs
        assert torch.equal(got[r]["full"], got[r]["resumed"])  # the resume is exact
        assert torch.equal(got[r]["full"], got[0]["full"])  # every rank holds the same weights
    assert not (tmp_path / "full1").exists()  # rank 1 wrote no folder
    job = tmp_path / "job"
    state = read(job / "checkpoints" / "last.pt")
    assert state["world_size"] == RANKS and len(state["ranks"]) == RANKS
    assert state["progress"]["global_step"] == 2048
    assert not torch.equal(state["ranks"][0]["env"]["obs"], state["ranks"][1]["env"]["obs"])
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 2048
    # Another number of processes is refused in one line (here: one process).
    with pytest.raises(ConfigError, match="trained by 2 process"):
        train(compose_config(*OVERRIDES, "total_steps=4096", f"resume={job}"), job)


def test_a_signal_echoed_by_the_launcher_is_one_request():
    """Under torchrun, Ctrl-C reaches a rank from the terminal and again from the launcher:
    within ``echo_s`` the second is the same request (a checkpoint, then the stop); without
    it, a second Ctrl-C stops at once."""
    with stop_requests(echo_s=60.0) as requested:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    assert requested == [signal.SIGINT, signal.SIGINT]
    with pytest.raises(KeyboardInterrupt), stop_requests() as requested:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def _dying_worker(rank: int, port: int, root: str) -> None:
    """Rank 1 dies (as a killed process does: no exception, no clean-up) at its 3rd update;
    rank 0 records what it got."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(RANKS),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        SHAREDPPO_TIMEOUT_S="60",
    )
    torch.set_num_threads(1)
    if rank == 1:
        update, calls = PPOAgent.update, []

        def dying(agent, batch):
            calls.append(1)
            if len(calls) == 3:
                os._exit(9)
            return update(agent, batch)

        PPOAgent.update = dying
    try:
        train(compose_config(*OVERRIDES), Path(root) / "job")
    except TrainingError as err:
        (Path(root) / "error.txt").write_text(str(err))


def test_a_rank_that_dies_ends_the_run_on_every_rank(tmp_path: Path):
    port = _free_port()
    spawn = mp.get_context("spawn")
    ranks = [spawn.Process(target=_dying_worker, args=(r, port, str(tmp_path))) for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(120)
    assert [p.exitcode for p in ranks] == [0, 9]
    error = (tmp_path / "error.txt").read_text()
    assert error.startswith("another process of this run has stopped") and "\n" not in error
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["status"] == "failed" and "another process" in summary["error"]
    assert summary["updates"] == 2


def test_a_slurm_task_is_a_rank_with_submitits_rendezvous(monkeypatch):
    """SLURM's variables, read through submitit, give the variables torchrun would set; the
    port is the one submitit's TorchDistributedEnvironment derives from the job id."""
    submitit = pytest.importorskip("submitit")
    from sharedppo.cli.tasks import torch_env

    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "4",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_NODEID": "1",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    env = torch_env(submitit.JobEnvironment())
    assert env == {
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": env["MASTER_PORT"],
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
    }
    helpers = pytest.importorskip("submitit.helpers")
    if hasattr(helpers, "TorchDistributedEnvironment"):  # submitit >= 1.5
        theirs = helpers.TorchDistributedEnvironment()
        assert (theirs.master_addr, str(theirs.master_port)) == (
            env["MASTER_ADDR"],
            env["MASTER_PORT"],
        )


def _slurm_bin(tmp_path: Path) -> Path:
    """sbatch, srun and sacct on PATH: tests/fake_slurm.py, tasks started on this machine."""
    tool = Path(__file__).with_name("fake_slurm.py")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun", "sacct"):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {sys.executable} {tool} {name} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_a_slurm_job_of_two_tasks_is_the_torchrun_job(tmp_path: Path, two_rank_job):
    """``hydra/launcher=slurm`` with 2 tasks per node, through submitit and a stand-in SLURM
    that starts the job's 2 tasks here with SLURM's variables: one run across the 2 tasks, the
    same weights as the 2-rank torchrun-like launch of the same config, and rank 0 alone wrote
    the job folder (every task's writes under the sweep folder are recorded, submitit's own
    files aside)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    audit = Path(__file__).with_name("write_audit")
    env = {
        "PATH": f"{_slurm_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}",
        "MASTER_PORT": str(_free_port()),  # else derived from the job id, as on SLURM
        "SHAREDPPO_TIMEOUT_S": "60",
        "FAKE_SLURM_AUDIT": str(audit),
        "WRITE_AUDIT_ROOT": str(sweep),
        "WRITE_AUDIT_LOG": str(tmp_path / "writes%t.txt"),
        "WRITE_AUDIT_SKIP": f"{os.sep}.submitit{os.sep}",
    }
    launch = ["-m", "hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2"]
    args = [*launch, f"hydra.sweep.dir={sweep}", "device=cpu", *OVERRIDES]
    proc = run_cli(*args, cwd=tmp_path, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr
    (job,) = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 2048
    state = read(job / "checkpoints" / "last.pt")
    assert state["world_size"] == RANKS and len(state["ranks"]) == RANKS
    torchrun = read(two_rank_job[0] / "full0" / "checkpoints" / "last.pt")["model"]
    assert state["model"].keys() == torchrun.keys()
    for key, value in torchrun.items():
        assert torch.equal(state["model"][key], value), key
    written = {r: (tmp_path / f"writes{r}.txt") for r in range(RANKS)}
    rank0 = written[0].read_text()
    assert f"{job / 'summary.json'}" in rank0 and f"{job / 'checkpoints'}" in rank0
    # Rank 1 made the job's folder at most (Hydra's job machinery runs in every task).
    rank1 = written[1].read_text().splitlines() if written[1].exists() else []
    assert set(rank1) <= {f"os.mkdir {job}"}, rank1


def test_hydras_own_submitit_launchers_refuse_several_tasks():
    """They would run the whole job once per task; the slurm preset runs it across them."""
    from omegaconf import OmegaConf

    from sharedppo.cli.precheck import check_tasks

    def launcher(target: str, tasks: int, nodes: int = 1):
        return OmegaConf.create({"_target_": target, "tasks_per_node": tasks, "nodes": nodes})

    hydra_own = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
    for name, cls in (("submitit_slurm", "SlurmLauncher"), ("submitit_local", "LocalLauncher")):
        with pytest.raises(ConfigError, match=f"= 2 is not allowed with hydra/launcher={name}"):
            check_tasks(launcher(hydra_own + cls, 1, nodes=2))
        check_tasks(launcher(hydra_own + cls, 1))
    check_tasks(launcher("hydra_plugins.sharedppo_launcher.submitit_slurm.SlurmLauncher", 2, 2))
