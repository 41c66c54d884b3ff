"""ONNX export: the model runs in ONNX Runtime and matches torch on raw observations (and a
recurrent network's state, in and out)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sharedppo.cli.export import main
from sharedppo.envs.spaces import flatten
from sharedppo.run.evaluate import load_policy
from sharedppo.run.export import example_inputs, input_names
from tests.conftest import Frames
from tests.test_dict_obs import DICT_ID

ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
pytest.importorskip("onnxscript", reason="the export extra is not installed")

FRAMES_ID = "SharedPPOTest/Frames-v0"


if FRAMES_ID not in gym.registry:
    gym.register(FRAMES_ID, entry_point=Frames, max_episode_steps=20)

CASES = {
    "mlp": ["env.normalize_obs=true", "total_steps=512"],
    "cnn": [f"env.id={FRAMES_ID}", "network=nature_cnn", "env.num_envs=2", "total_steps=128"],
    "dict": [f"env.id={DICT_ID}", "env.normalize_obs=true", "total_steps=256"],
    "box": ["env=pendulum", "total_steps=512"],
    "lstm": ["network.recurrent=lstm", "env.normalize_obs=true", "total_steps=512"],
    "dict_gru": [f"env.id={DICT_ID}", "network.recurrent=gru", "total_steps=256"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_matches_torch_on_raw_observations(cfg_factory, tmp_path, case):
    from sharedppo.run.session import train

    overrides = [*CASES[case], "env.vectorization_mode=sync", "checkpoint.every_steps=null"]
    train(cfg_factory(*overrides, "ppo.num_steps=32"), tmp_path / "job")
    out = tmp_path / "policy.onnx"
    main([str(tmp_path / "job"), "--out", str(out)])
    # One self-contained file: no weights in a .data file beside it.
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["policy.onnx"]

    net, _, _, obs_norm = load_policy(tmp_path / "job", torch.device("cpu"))
    torch.manual_seed(0)
    inputs = example_inputs(net, tuple(obs_norm.rms.mean.shape), batch=5)
    recurrent = net.state_shape is not None
    observations = inputs[:-1] if recurrent else inputs  # a recurrent net's state comes last
    if net.layout is None:
        raw = observations[0].numpy()
    else:
        keyed = zip(net.layout, observations, strict=True)
        raw = flatten(net.layout, {part.key: x.numpy() for part, x in keyed})
    x = torch.from_numpy(obs_norm(raw.astype(np.float32), update=False))
    with torch.no_grad():
        expected = net.step(x, None, inputs[-1]) if recurrent else net(x)
    session = ort.InferenceSession(str(out))
    # Discrete keys go in as integers, everything else as float32.
    feeds = dict(zip(input_names(net), (x.numpy() for x in inputs), strict=True))
    got = session.run(None, feeds)
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-5, atol=1e-5)


def test_export_without_onnx_names_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed: import fails
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--out", str(tmp_path / "x.onnx")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert 'pip install "sharedppo[export]"' in err and "\n" not in err


def test_a_policy_trained_on_an_env_class_exports_through_the_api(tmp_path):
    import sharedppo
    from tests.custom_env_module import Reach

    sharedppo.train(["total_steps=256", "checkpoint.every_steps=null"], tmp_path / "job", Reach)
    policy = sharedppo.load(tmp_path / "job", env=Reach)
    assert repr(policy).startswith("Policy(sharedppo_api/Reach-v0, mlp shared trunk")
    out = policy.export(tmp_path / "reach.onnx")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["reach.onnx"]
    obs = np.array([[0.5], [-0.5]], dtype=np.float32)
    logits, _ = ort.InferenceSession(str(out)).run(None, {"obs": obs})
    np.testing.assert_array_equal(logits.argmax(-1), policy.predict(obs))
