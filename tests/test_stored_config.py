"""A config read back from a checkpoint or a job folder is data: a crafted one that passes
``torch.load(weights_only=True)`` runs no code in eval, export, ``sharedppo.load`` or
``resume=`` (issue 21), and a legitimate stored wrapper still works."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import sharedppo
from sharedppo.cli.app import main as cli_main
from sharedppo.cli.app import resume_args
from sharedppo.cli.eval import main as eval_main
from sharedppo.cli.export import main as export_main
from sharedppo.config import ConfigError
from sharedppo.envs.stored import check_stored_wrappers
from sharedppo.run.checkpoint import read, save_atomic

KEEP = "sharedppo.wrappers.KeepObservation"
TINY = [
    "env=cartpole_novel",  # its stored wrapper: KeepObservation(indices=[0, 2])
    "total_steps=128",
    "ppo.num_steps=32",
    "env.num_envs=2",
    "ppo.num_minibatches=2",
    "checkpoint.every_steps=null",
    "device=cpu",
]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """One tiny trained job (checkpoint and .hydra/) that every test copies from."""
    folder = tmp_path_factory.mktemp("stored") / "job"
    sharedppo.train(TINY, out_dir=folder)
    return folder


class CreateFile:
    """Unpickling this opens (creates) ``path`` for writing."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def pickle_chain(marker: Path) -> dict:
    """Issue 21's chain: torch.load(weights_only=False) of bytes decoded from hex."""
    payload = io.BytesIO()
    torch.save(CreateFile(marker), payload)
    hex_bytes = {"_target_": "builtins.bytes.fromhex", "_args_": [payload.getvalue().hex()]}
    return {
        "_target_": "torch.load",
        "weights_only": False,
        "f": {"_target_": "io.BytesIO", "initial_bytes": hex_bytes},
    }


def opened(victim: Path) -> dict:
    return {"_target_": "builtins.open", "file": str(victim), "mode": "w"}


def payloads(tmp: Path) -> dict[str, list]:
    victim, source = str(tmp / "victim.txt"), str(tmp / "source.txt")
    copied = {"_target_": "shutil.copyfile", "src": source, "dst": victim}
    decoded = f"\\${{oc.decode:'{{_target_: builtins.open, file: {victim}, mode: w}}'}}"
    return {
        "pickle": [{"_target_": KEEP, "indices": pickle_chain(tmp / "marker")}],
        "open": [{"_target_": KEEP, "indices": opened(tmp / "victim.txt")}],
        "copyfile": [{"_target_": KEEP, "indices": copied}],
        "open_target": [{"_target_": "builtins.open", "_args_": [victim, "w"]}],
        "interpolation": [{"_target_": KEEP, "indices": decoded}],
        # resolved before the wrapper check, this read the environment into an argument
        "env_read": [{"_target_": KEEP, "indices": "${oc.env:SHAREDPPO_TEST_SECRET}"}],
    }


def craft(job: Path, tmp: Path, wrappers: list | dict) -> Path:
    """A copy of the job's last.pt whose config carries ``wrappers``; it loads safely."""
    state = read(job / "checkpoints" / "last.pt")
    state["config"]["env"]["wrappers"] = wrappers
    path = tmp / "crafted.pt"
    # Sealed as sharedppo seals its own: a checksum says nothing of who wrote the file.
    save_atomic(state, path)
    read(path)  # what the attack relies on: a "safe" file (weights_only, a valid checksum)
    return path


def untouched(tmp: Path) -> bool:
    return not (tmp / "marker").exists() and (tmp / "victim.txt").read_text() == "precious\n"


ATTACKS = ["pickle", "open", "copyfile", "open_target", "interpolation", "env_read"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_crafted_checkpoint_runs_no_code(job, tmp_path, capsys, monkeypatch, attack):
    monkeypatch.setenv("SHAREDPPO_TEST_SECRET", "[0]")
    (tmp_path / "victim.txt").write_text("precious\n")
    (tmp_path / "source.txt").write_text("attacker's\n")
    crafted = craft(job, tmp_path, payloads(tmp_path)[attack])
    commands = [(eval_main, []), (export_main, ["--out", str(tmp_path / "m.onnx")])]
    for command, options in commands:
        with pytest.raises(SystemExit) as stop:
            command([str(crafted), *options])
        err = capsys.readouterr().err.strip()
        assert untouched(tmp_path), err
        assert stop.value.code == 2 and "\n" not in err and "Traceback" not in err, err
        assert "env.wrappers[0]" in err and "is not allowed: a stored config's" in err, err
    with pytest.raises(ConfigError, match=r"env\.wrappers\[0\].* is not allowed"):
        sharedppo.load(crafted)
    assert untouched(tmp_path)


def test_a_stored_config_of_another_shape_is_one_line(job, tmp_path, capsys):
    crafted = craft(job, tmp_path, {"x": {"_target_": "builtins.open"}})  # a mapping, not a list
    with pytest.raises(SystemExit) as stop:
        eval_main([str(crafted)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "\n" not in err, err
    assert "holds a config this sharedppo cannot read" in err


def test_a_legitimate_stored_wrapper_still_works(job, tmp_path, capsys):
    eval_main([str(job), "--episodes", "2"])
    assert "CartPole-v1 deterministic, 2 episodes" in capsys.readouterr().out
    policy = sharedppo.load(job)
    assert policy.net_input_shape == (2,)  # KeepObservation(indices=[0, 2]) applied
    assert policy.predict([0.1, -0.02]) in (0, 1)
    pytest.importorskip("onnxscript", reason="the export extra is not installed")
    export_main([str(job), "--out", str(tmp_path / "policy.onnx")])
    assert (tmp_path / "policy.onnx").is_file()


def crafted_job(job: Path, tmp: Path, stored_override: str, wrappers: list | None) -> Path:
    """A copy of the job folder whose .hydra/overrides.yaml gains ``stored_override`` (and
    whose checkpoint, so that the resume's own comparison passes, the same wrappers)."""
    folder = tmp / "crafted_job"
    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    overrides = [*OmegaConf.load(job / ".hydra" / "overrides.yaml"), stored_override]
    (folder / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    if wrappers is None:
        wrappers = torch.load(job / "checkpoints" / "last.pt", weights_only=True)["config"]
        wrappers = wrappers["env"]["wrappers"]
    craft(job, tmp, wrappers).rename(folder / "checkpoints" / "last.pt")
    return folder


def test_a_crafted_job_folder_is_refused_on_resume(job, tmp_path, capsys, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    indices = f"{{_target_:builtins.open,file:'{victim}',mode:w}}"
    line = f"env.wrappers=[{{_target_:{KEEP},indices:{indices}}}]"
    folder = crafted_job(job, tmp_path, line, [{"_target_": KEEP, "indices": opened(victim)}])
    monkeypatch.setattr(sys, "argv", ["sharedppo", f"resume={folder}", "total_steps=256"])
    with pytest.raises(SystemExit) as stop:
        cli_main()
    err = capsys.readouterr().err.strip()
    assert victim.read_text() == "precious\n", err
    assert stop.value.code == 2 and "\n" not in err, err
    assert "env.wrappers[0].indices._target_ is not allowed" in err
    assert "give env.wrappers=[...]" in err
    # The command line is the user's own: wrappers given there replace the stored ones.
    mine = f"env.wrappers=[{{_target_:{KEEP},indices:[0,2]}}]"
    assert mine in resume_args([f"resume={folder}", mine, "total_steps=256"])


def test_stored_overrides_cannot_reach_hydras_own_config(job, tmp_path):
    """Hydra instantiates its callbacks: a stored ++hydra.callbacks... would run on resume."""
    callback = f"++hydra.callbacks.x={{_target_:builtins.open,file:'{tmp_path / 'x'}',mode:w}}"
    folder = crafted_job(job, tmp_path, callback, None)
    args = resume_args([f"resume={folder}", "total_steps=256"])
    assert "env=cartpole_novel" in args  # the job's own overrides are kept ...
    assert not [a for a in args if "callbacks" in a]  # ... but none that sets Hydra's config


@pytest.mark.parametrize(
    "entry",
    [
        {"_target_": KEEP, "indices": [0, 2]},
        {"_target_": "gymnasium.wrappers.TimeLimit", "max_episode_steps": 10},
        {"_target_": "gymnasium.wrappers.ClipReward", "min_reward": -1.0, "max_reward": None},
        {"_target_": KEEP, "indices": [0], "extra": {"nested": [True, "text", {"x": 1.5}]}},
    ],
)
def test_plain_wrapper_classes_are_allowed(entry):
    check_stored_wrappers([entry], "checkpoint x")


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"_target_": "builtins.open", "file": "x"}, "env.wrappers[0]._target_='builtins.open'"),
        ({"_target_": "gymnasium.spaces.Box"}, "._target_='gymnasium.spaces.Box'"),
        ({"_target_": "gymnasium.vector.VectorWrapper"}, "._target_="),  # not a per-env one
        ({"_target_": "no_such_module.Wrap"}, "module 'no_such_module' fails to import"),
        ({"_target_": KEEP, "_args_": [[0]]}, "env.wrappers[0]._args_"),
        ({"_target_": KEEP, "_partial_": True}, "env.wrappers[0]._partial_"),
        ({"_target_": KEEP, "_recursive_": True}, "env.wrappers[0]._recursive_"),
        ({"_target_": KEEP, "_convert_": "all"}, "env.wrappers[0]._convert_"),
        ({"_target_": KEEP, "indices": [{"_target_": "os.getcwd"}]}, "indices[0]._target_"),
        ({"_target_": KEEP, "indices": "${oc.env:HOME}"}, "no ${...} interpolation"),
        ({"_target_": "${oc.env:X}"}, "._target_='${oc.env:X}'"),
        ({"_target_": KEEP, "indices": b"\x00"}, "env.wrappers[0].indices=b'\\x00'"),
        ({"indices": [0]}, "env.wrappers[0]={'indices': [0]}"),
        ("sharedppo.wrappers.KeepObservation", "env.wrappers[0]='sharedppo"),
    ],
)
def test_anything_else_is_refused_in_one_line(entry, key):
    with pytest.raises(ConfigError) as refused:
        check_stored_wrappers([entry], "checkpoint x")
    message = str(refused.value)
    assert message.startswith("checkpoint x: ") and key in message and "\n" not in message
