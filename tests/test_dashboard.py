"""What TensorBoard shows a user: run names, the HParams experiment, the Custom Scalars layout.

The sweep test talks to a real ``tensorboard`` process over HTTP, through the data API its
own frontend uses.
"""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import metadata, plugin_data_pb2

from sharedppo.overrides import job_name, safe_name
from sharedppo.tb.dashboard import METRICS, select_hparams
from tests.conftest import compose_config, run_cli
from tests.tbserver import get_json, tensorboard

BOOKKEEPING = ("checkpoint.", "eval.", "log_every_updates", "resume", "torch_threads", "device")


def test_sweep_in_tensorboard_names_runs_and_lists_swept_keys_first(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "ppo.clip_ratio=0.1,0.3",
        "seed=0,1",
        "total_steps=512",
        "checkpoint.every_steps=null",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    names = {
        "clip_ratio=0.1,seed=0",
        "clip_ratio=0.1,seed=1",
        "clip_ratio=0.3,seed=0",
        "clip_ratio=0.3,seed=1",
    }
    assert {p.name for p in sweep.iterdir() if p.is_dir()} == names

    with tensorboard(sweep, runs=4, timeout=60) as url:
        assert set(get_json(f"{url}/data/runs")) == names
        experiment = get_json(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
        session_groups = get_json(
            f"{url}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_RUNNING"],
                "colParams": [
                    {"metric": {"tag": "hparams/final_return"}},
                    {"metric": {"tag": "hparams/auc_return"}},
                ],
                "startIndex": 0,
                "sliceSize": 10,
            },
        )

    hparams = [h["name"] for h in experiment["hparamInfos"]]
    # The swept keys first (TensorBoard orders them by name), then the rest.
    assert hparams[:2] == ["ppo.clip_ratio", "seed"]
    assert "env.default_steps" not in hparams  # nobody set it: total_steps is the budget
    differs = [h["name"] for h in experiment["hparamInfos"] if h.get("differs")]
    assert differs == ["ppo.clip_ratio", "seed"]  # not the constant total_steps=512
    assert not [h for h in hparams if h.startswith(BOOKKEEPING)]
    assert {"ppo.lr", "network.width", "env.id"} <= set(hparams)
    info = {h["name"]: h for h in experiment["hparamInfos"]}
    assert sorted(info["ppo.clip_ratio"]["domainDiscrete"]) == [0.1, 0.3]
    assert info["network.shared"]["domainDiscrete"] == [False, True]
    # A seed is an identifier: text, one check box per seed, not 0.0000.
    assert info["seed"]["type"] == "DATA_TYPE_STRING"
    assert sorted(info["seed"]["domainDiscrete"]) == ["0", "1"]
    assert "tanh" in info["network.activation"]["domainDiscrete"]
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics == [
        "hparams/final_return",
        "hparams/best_return",
        "hparams/auc_return",
        "hparams/reached_target",
    ]
    # Every run has every metric, so the Parallel Coordinates and Scatter views draw them all.
    groups = session_groups["sessionGroups"]
    assert {g["name"] for g in groups} == names
    for group in groups:
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert set(values) == set(metrics)
        assert values["hparams/final_return"] > 0 and values["hparams/auc_return"] > 0
        assert values["hparams/reached_target"] == 0  # 512 steps: CartPole's 475 is far


def test_single_run_folder_shows_overrides_and_layout(tmp_path):
    proc = run_cli("total_steps=256", "network.width=32", "seed=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "outputs").glob("*/*")
    # In the order given, the seed last, keys by their last part.
    assert run.name.endswith("_total_steps=256,width=32,seed=3")
    acc = EventAccumulator(str(run), size_guidance={"tensors": 0})
    acc.Reload()
    assert {"charts/return_window_min", "charts/return_window_max"} <= set(acc.Tags()["scalars"])
    layout = layout_pb2.Layout()
    layout.ParseFromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    titles = [c.title for c in layout.category]
    assert titles == [
        "return",
        "losses",
        "approximate KL and clip fraction",
        "SPS and learning rate",
    ]
    margin = layout.category[0].chart[0].margin.series[0]
    assert (margin.value, margin.lower, margin.upper) == (
        "charts/mean_return",
        "charts/return_window_min",
        "charts/return_window_max",
    )


def test_hparams_selection_puts_overrides_first_and_drops_bookkeeping():
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(
        compose_config("env=acrobot", "ppo.lr=0.01", "device=cpu", "eval.episodes=3"),
        resolve=True,
    )
    params, chosen = select_hparams(cfg, ["env=acrobot", "ppo.lr=0.01", "device=cpu"])
    assert chosen == ["env", "ppo.lr", "device"]
    assert list(params)[:3] == chosen and params["env"] == "acrobot" and params["ppo.lr"] == 0.01
    assert not [k for k in params if k.startswith(BOOKKEEPING[:-1])]
    assert not [k for k in params if k.startswith("env.atari.")]  # Atari wrappers are off
    # Left alone, the device is how the run executes, not what it learns.
    assert "device" not in select_hparams(cfg, [])[0]


def test_names_are_safe_bounded_and_unique(tmp_path):
    assert safe_name(["seed=1", "env.id=ALE/Pong-v5"]) == "id=ALE_Pong-v5,seed=1"
    # A last part two keys share keeps the whole key; a group stays as it is.
    same = ["eval.every_steps=1", "checkpoint.every_steps=2", "env=acrobot", "ppo.lr=0.1"]
    assert safe_name(same) == "eval.every_steps=1,checkpoint.every_steps=2,env=acrobot,lr=0.1"
    long = safe_name([f"env.kwargs.k{i}=value{i}" for i in range(30)])
    assert len(long) <= 100 and long != safe_name([f"env.kwargs.k{i}=value{i}" for i in range(29)])
    # Two jobs with the same overrides (seed=0,0) each get their own folder.
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "seed=0,0", "total_steps=64", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        "total_steps=64,seed=0~job0",
        "total_steps=64,seed=0~job1",
    ]
    # Without the sweeper's record the job number keeps names apart.
    assert job_name(str(tmp_path / "nowhere"), 3, ["seed=1"]) == "seed=1~job3"


def test_resume_accepts_job_folders_named_from_overrides(tmp_path):
    first = tmp_path / "first"
    proc = run_cli("total_steps=512", f"hydra.run.dir={first}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    job = tmp_path / "sweep" / "clip_ratio=0.1,seed=0 it's"
    job.parent.mkdir()
    first.rename(job)
    proc = run_cli(f"resume={job}", "total_steps=1024", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"global_step": 1024' in (job / "summary.json").read_text()


def hparams_of(run: Path) -> tuple[list[str], dict[str, float]]:
    """A run's declared metrics (its HParams experiment, read back from the plugin data it
    wrote) and the last value of each scalar tag it wrote."""
    acc = EventAccumulator(str(run))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    last = {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}
    return [m.name.tag for m in experiment.metric_infos], last


def test_every_run_carries_every_declared_metric_reached_or_not(cfg_factory, tmp_path):
    """TensorBoard's Parallel Coordinates and Scatter views leave out a run that lacks a
    declared metric: one run that reaches its target and one that never does both carry
    them all, and nothing says the second reached it."""
    from sharedppo.run.session import train

    tiny = ["total_steps=2048", "checkpoint.every_steps=1024"]
    for name, target in (("reached", 15), ("missed", 1e6)):
        train(cfg_factory(*tiny, f"env.target_return={target}"), tmp_path / name)
    runs = {name: hparams_of(tmp_path / name) for name in ("reached", "missed")}
    declared = runs["reached"][0]
    assert declared == [f"hparams/{k}" for k in METRICS]
    for name, (metrics, last) in runs.items():
        assert metrics == declared, name
        missing = [m for m in declared if m not in last]
        assert not missing, f"{name} lacks {missing}"
    assert runs["reached"][1]["hparams/reached_target"] == 1.0
    assert runs["missed"][1]["hparams/reached_target"] == 0.0
    # The steps to the target exist only where it was reached: not an HParams metric.
    assert "target/step" in runs["reached"][1] and "target/step" not in runs["missed"][1]
    assert not [m for m in declared if m.startswith("target/")]
    # The 20-episode mean is a curve under charts/, not under hparams/.
    assert "charts/mean_return" in runs["missed"][1]
