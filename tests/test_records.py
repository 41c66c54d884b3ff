"""Records that stay true: summaries written whole, checkpoints sealed with a checksum, a full
disk as one line, the report counting each episode once across a crash and resume."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from sharedppo import durable
from sharedppo.jobdir import JobDir
from sharedppo.report.sweep import read_job, read_returns
from sharedppo.run.checkpoint import CheckpointError, load, read
from sharedppo.run.session import Interrupted, train
from tests.conftest import compose_config

TINY = ("total_steps=1024", "checkpoint.every_steps=256")
V1_CHECKPOINT = Path(__file__).parent / "data" / "v1_cartpole_step2048.pt"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A job trained to its end, shared by the tests that only read it (or rebuild what a
    kill would have lost)."""
    folder = tmp_path_factory.mktemp("finished")
    train(compose_config(*TINY), folder)
    return folder


def full_disk(monkeypatch, after: int = 0, when=lambda: True) -> None:
    """The writer every file goes through fails as on a full disk (ENOSPC) once ``after``
    more bytes are written, whenever ``when()`` is true."""
    room = [after]

    def write(fd: int, data: memoryview) -> int:
        if when() and room[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = durable.os.write(fd, data[: room[0]] if when() else data)
        room[0] -= n if when() else 0
        return n

    monkeypatch.setattr(durable, "_write", write)


def test_a_summary_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    job = JobDir(tmp_path)
    job.write_summary({"status": "completed", "global_step": 1024})
    before = job.summary_file.read_bytes()
    full_disk(monkeypatch, after=10)  # the disk fills ten bytes into the new summary
    with pytest.raises(OSError, match="No space left"):
        job.write_summary({"status": "interrupted", "global_step": 2048})
    assert job.summary_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"], "no tmp left behind"
    # A summary cut short by an older sharedppo reads as none, not a JSONDecodeError.
    job.summary_file.write_text('{"status": "compl')
    assert job.read_summary() is None


def test_a_finished_job_that_lost_its_summary_gets_it_back(cfg_factory, finished, tmp_path):
    job = JobDir(finished)
    expected = job.read_summary()
    # As if killed between the final last.pt and summary.json: none, or a stale one.
    for stale in (None, {**expected, "status": "interrupted", "global_step": 512}):
        if stale is None:
            job.summary_file.unlink()
        else:
            job.write_summary(stale)
        assert read_job(finished).status == "completed"  # sharedppo-report rebuilds it
        assert job.read_summary()["global_step"] == expected["global_step"] == 1024
    # resume= rebuilds it too, before refusing to run a finished job again.
    job.summary_file.unlink()
    with pytest.raises(ValueError, match="already run 1,024 env steps"):
        train(cfg_factory(*TINY, f"resume={finished}"), finished)
    rebuilt = job.read_summary()
    assert {k: rebuilt[k] for k in ("status", "episodes", "mean_return", "auc_return")} == {
        k: expected[k] for k in ("status", "episodes", "mean_return", "auc_return")
    }


def test_every_flipped_bit_is_refused_and_older_checkpoints_still_load(finished, tmp_path):
    good = JobDir(finished).last.read_bytes()
    size = len(good)
    # 12 bits spread over the file (weights, moments, RNG, the metadata) and 4 in the trailer:
    # its magic, the metadata's length and the SHA-256 itself.
    spots = [int(x) for x in np.random.default_rng(0).integers(0, size - 48, 12)]
    spots += [size - 48, size - 40 + 7, size - 32, size - 1]
    path = tmp_path / "flipped.pt"
    for spot in spots:
        flipped = bytearray(good)
        flipped[spot] ^= 1 << (spot % 8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="is corrupt") as err:
            read(path)
        assert "\n" not in str(err.value)
    path.write_bytes(good)
    assert read(path)["progress"]["global_step"] == 1024
    # A v1 checkpoint (before the seal) still loads and is upgraded.
    assert read(V1_CHECKPOINT)["version"] == 3


def test_a_full_disk_is_one_line_and_never_promises_a_missing_checkpoint(
    cfg_factory, tmp_path, monkeypatch
):
    full_disk(monkeypatch)  # full from the start: the first last.pt fails
    with pytest.raises(CheckpointError) as err:
        train(cfg_factory(*TINY), tmp_path / "first")
    assert str(err.value) == (
        f"could not write {tmp_path / 'first' / 'checkpoints' / 'last.pt'} (No space left on "
        "device); no last.pt has been written yet"
    )
    monkeypatch.undo()

    job = JobDir(tmp_path / "later")
    fill = {"on": False}
    full_disk(monkeypatch, when=lambda: fill["on"])

    def fills(step: int, _: float) -> bool:
        fill["on"] = step >= 768  # the disk fills after the checkpoint at 512
        return False

    with pytest.raises(CheckpointError, match=r"the previous last.pt \(env step 512\) is intact"):
        train(cfg_factory(*TINY), job.path, on_update=fills)
    monkeypatch.undo()
    assert load(job.last)["progress"]["global_step"] == 512
    assert not list(job.checkpoints.glob(".*.tmp")) and not list(job.path.glob(".*.tmp"))


def test_stale_temporary_files_of_a_killed_save_go_when_the_folder_is_next_owned(tmp_path):
    job = JobDir(tmp_path)
    job.checkpoints.mkdir()
    stale = [job.checkpoints / ".last.pt.k3j2h1g0.tmp", tmp_path / ".summary.json.0a1b2c3d.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 4096)
    (job.checkpoints / "notes.tmp").write_text("not ours")
    with job.own():
        assert not any(p.exists() for p in stale)
    assert (job.checkpoints / "notes.tmp").exists()


def test_an_interrupted_summary_offers_a_resume_only_where_a_checkpoint_exists(
    cfg_factory, tmp_path
):
    def second_ctrl_c(step: int, _: float) -> bool:
        raise KeyboardInterrupt  # arrives before the first checkpoint is written

    with pytest.raises(KeyboardInterrupt):
        train(
            cfg_factory("total_steps=1024", "checkpoint.every_steps=null"), tmp_path, second_ctrl_c
        )
    summary = JobDir(tmp_path).read_summary()
    assert summary["status"] == "interrupted" and summary["resume"] is None
    assert "none" in summary["checkpoint"] and not JobDir(tmp_path).last.exists()

    job = JobDir(tmp_path / "saved")
    with pytest.raises(Interrupted):
        train(cfg_factory(*TINY), job.path, on_update=lambda step, _: step >= 512)
    summary = job.read_summary()
    assert summary["resume"] == f"sharedppo resume={job.path}" and summary["resume_step"] == 512
    assert load(job.last)["progress"]["global_step"] == 512


def test_started_at_survives_a_resume(cfg_factory, tmp_path):
    with pytest.raises(Interrupted):
        train(cfg_factory(*TINY), tmp_path, on_update=lambda step, _: step >= 512)
    first = JobDir(tmp_path).read_summary()
    train(cfg_factory(*TINY, f"resume={tmp_path}"), tmp_path)
    assert JobDir(tmp_path).read_summary()["started_at"] == first["started_at"]


def test_the_report_counts_each_episode_once_across_a_crash_and_resume(
    cfg_factory, finished, tmp_path
):
    def crash(step: int, _: float) -> bool:
        if step >= 768:  # after the checkpoint at 512: the episodes since are logged twice
            raise RuntimeError("simulated crash")
        return False

    with pytest.raises(RuntimeError):
        train(cfg_factory(*TINY, "checkpoint.every_steps=512"), tmp_path, on_update=crash)
    train(cfg_factory(*TINY, "checkpoint.every_steps=512", f"resume={tmp_path}"), tmp_path)
    steps, returns, _ = read_returns(tmp_path)
    summary = JobDir(tmp_path).read_summary()
    assert len(returns) == summary["episodes"]
    assert returns[-20:].mean() == pytest.approx(summary["mean_return"])
    # CartPole resumes exactly: the same curve as the job that ran without a crash.
    full_steps, full_returns, _ = read_returns(finished)
    assert np.array_equal(steps, full_steps) and np.array_equal(returns, full_returns)
