"""A folder that cannot be written is the user's to fix: every command says so in one line
and exits 2, never with a traceback. Real OS errors (a file where a folder must be, a folder
where a file must be), since root writes into read-only permissions anyway; a truly read-only
file system is in docs/reliability.md."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sharedppo import jobdir
from sharedppo.cli import app, export
from sharedppo.cli import eval as evaluate
from sharedppo.jobdir import JobDir
from sharedppo.report import cli as report_cli
from sharedppo.run.session import train
from sharedppo.tune import cli as tune_cli
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("job")
    cfg = compose_config("total_steps=512")
    JobDir(folder).write_job(cfg, ["total_steps=512"])
    train(cfg, folder)
    return folder


def one_line(capsys, command: Callable[[], None]) -> str:
    with pytest.raises(SystemExit) as stop:
        command()
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "\n" not in err and "Traceback" not in err, err
    return err


def test_train_and_resume(tmp_path, job, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "run"
    monkeypatch.setattr(sys, "argv", ["sharedppo", "total_steps=256", f"hydra.run.dir={out}"])
    assert one_line(capsys, app.main) == f"sharedppo: error: cannot write to {out}: Not a directory"

    def read_only(path: Path, note: str) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(jobdir, "lock", read_only)  # the lock file is the first write
    monkeypatch.setattr(sys, "argv", ["sharedppo", f"resume={job}", "total_steps=1024"])
    err = one_line(capsys, app.main)
    assert err == f"sharedppo: error: cannot write to {job}: Read-only file system"


def test_eval_export_tune_and_report(tmp_path, job, capsys):
    (tmp_path / "file").write_text("not a folder")
    (job / "videos").write_text("a file where the videos go")
    try:
        err = one_line(capsys, lambda: evaluate.main([str(job), "--episodes", "1", "--video"]))
        assert err == f"sharedppo-eval: error: cannot write {job / 'videos'}: File exists"
    finally:
        (job / "videos").unlink()
    out = tmp_path / "file" / "policy.onnx"
    err = one_line(capsys, lambda: export.main([str(job), "--out", str(out)]))
    # (a folder that is a file is refused by --out's own check, before anything is written)
    assert err.startswith("sharedppo-export: error: --out ") and "does not exist" in err
    study = tmp_path / "file" / "study"
    err = one_line(
        capsys,
        lambda: tune_cli.main(["--search", "cartpole", "--trials", "1", "--out", str(study)]),
    )
    assert err == f"sharedppo-tune: error: cannot write {study}: Not a directory"
    (job / "report.csv").mkdir()
    err = one_line(capsys, lambda: report_cli.main([str(job)]))
    assert err == f"sharedppo-report: error: cannot write {job / 'report.csv'}: Is a directory"
