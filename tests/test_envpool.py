"""env.backend=envpool: the same transitions, episode statistics and valid rows as gymnasium's.

Skipped, saying why, where EnvPool is not installed; under CI (which installs it) a missing
EnvPool fails instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sharedppo.config import ConfigError
from sharedppo.envs.build import make_envs, target_return
from sharedppo.run.episodes import EpisodeTracker
from sharedppo.run.memory import RolloutMemory
from tests.conftest import run_cli
from tests.test_extras import BARE, assert_one_line, without


def need(*modules: str) -> None:
    for module in modules:
        try:
            __import__(module)
        except ImportError as err:
            reason = f"{module} is not installed ({err}): pip install -e '.[test,envpool]'"
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the EnvPool tests: {reason}")
            pytest.skip(reason)


@dataclass
class Trace:
    """What the rollout reads from each vector step, [T, N], and what it derives from it."""

    obs: np.ndarray  # the first step's observations
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    env_reward: np.ndarray
    game_over: np.ndarray
    valid: np.ndarray  # RolloutMemory's valid rows
    returns: list[list[float]]  # per env, the finished episodes as the tracker records them
    lengths: list[list[int]]


def trace(cfg, steps: int, policy) -> Trace:
    """Step the env built from ``cfg`` ``steps`` times as the rollout does (policy: obs, t ->
    actions), filling a real RolloutMemory and EpisodeTracker."""
    envs, obs, _ = make_envs(cfg, seed=0)
    n = envs.num_envs
    memory = RolloutMemory(num_steps=steps, num_envs=n, obs_shape=(1,), device=torch.device("cpu"))
    tracker = EpisodeTracker(n)
    rows = {k: [] for k in ("reward", "terminated", "truncated", "env_reward", "game_over")}
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    first = obs
    for t in range(steps):
        obs, reward, terminated, truncated, info = envs.step(policy(obs, t))
        done = terminated | truncated
        memory.host_dones[t] = done
        memory.host_terminated[t] = terminated
        game_over = np.asarray(info.get("game_over", done), dtype=bool)
        env_reward = np.asarray(info.get("env_reward", reward), dtype=np.float64)
        values = (reward, terminated, truncated, env_reward, game_over)
        for key, value in zip(rows, values, strict=True):
            rows[key].append(np.asarray(value).copy())
        finished = tracker.step(env_reward, game_over)
        if finished is not None:
            for i, ret, length in zip(np.flatnonzero(game_over), *finished, strict=True):
                returns[i].append(float(ret))
                lengths[i].append(int(length))
    envs.close()
    memory.close(torch.zeros(n))
    arrays = {k: np.stack(v) for k, v in rows.items()}
    return Trace(
        first, valid=memory.valid.numpy().astype(bool), returns=returns, lengths=lengths, **arrays
    )


def env_cfg(cfg_factory, *overrides: str):
    return OmegaConf.to_object(cfg_factory(*overrides)).env


def check_next_step_autoreset(tr: Trace) -> None:
    """The step after an episode's end is the reset step: reward 0, not a transition."""
    done = tr.terminated | tr.truncated
    assert not (tr.terminated & tr.truncated).any()
    np.testing.assert_array_equal(tr.valid[1:], ~done[:-1])
    assert tr.valid[0].all()
    after = np.zeros_like(done)
    after[1:] = done[:-1]
    assert (tr.reward[after] == 0).all() and (tr.env_reward[after] == 0).all()


# CartPole: envs 0 and 1 balance (a PD rule on the pole), so every episode is cut by the time
# limit; envs 2 and 3 push left, so every episode ends early by falling.
LIMIT = 40


def cartpole_policy(obs: np.ndarray, t: int) -> np.ndarray:
    balance = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
    balance[2:] = 0
    return balance


def test_cartpole_transition_semantics_match(cfg_factory):
    need("envpool")
    traces = {
        backend: trace(
            env_cfg(
                cfg_factory,
                "env=cartpole",
                f"env.backend={backend}",
                "env.num_envs=4",
                f"env.max_episode_steps={LIMIT}",
            ),
            300,
            cartpole_policy,
        )
        for backend in ("gymnasium", "envpool")
    }
    for backend, tr in traces.items():
        check_next_step_autoreset(tr)
        assert tr.obs.shape == (4, 4) and tr.obs.dtype == np.float32, backend
        # Balancing: each episode is truncated at the limit (bootstrapped, not terminated).
        assert not tr.terminated[:, :2].any(), backend
        assert tr.truncated[:, :2].sum() >= 2 * 6, backend
        for i in (0, 1):
            assert tr.lengths[i] == tr.returns[i] == [LIMIT] * len(tr.lengths[i]), backend
        # Falling: terminated, never truncated, well before the limit.
        assert not tr.truncated[:, 2:].any(), backend
        for i in (2, 3):
            assert len(tr.lengths[i]) == tr.terminated[:, i].sum() >= 10, backend
            assert all(5 <= n < 20 for n in tr.lengths[i]), (backend, tr.lengths[i])
            assert tr.returns[i] == [float(n) for n in tr.lengths[i]], backend
        # A recorded episode's length is its valid rows: the reset step counts for none.
        for i in range(4):
            ends = np.flatnonzero(tr.terminated[:, i] | tr.truncated[:, i])
            assert tr.valid[: ends[0] + 1, i].sum() == tr.lengths[i][0], backend
    gym_tr, pool_tr = traces["gymnasium"], traces["envpool"]
    # The balanced envs' episode boundaries are fixed by the clock: identical rows.
    np.testing.assert_array_equal(gym_tr.truncated[:, :2], pool_tr.truncated[:, :2])
    np.testing.assert_array_equal(gym_tr.valid[:, :2], pool_tr.valid[:, :2])


def test_mujoco_time_limit_is_truncation_on_both(cfg_factory):
    need("envpool", "mujoco")
    actions = np.random.default_rng(0).uniform(-1, 1, (100, 2, 6))
    traces = {
        backend: trace(
            env_cfg(
                cfg_factory,
                "env=halfcheetah",
                f"env.backend={backend}",
                "env.num_envs=2",
                "env.max_episode_steps=30",
            ),
            100,
            lambda obs, t: actions[t],
        )
        for backend in ("gymnasium", "envpool")
    }
    for backend, tr in traces.items():
        check_next_step_autoreset(tr)
        assert tr.obs.shape == (2, 17), backend
        assert not tr.terminated.any() and tr.lengths == [[30] * 3] * 2, backend
    np.testing.assert_array_equal(traces["gymnasium"].truncated, traces["envpool"].truncated)
    np.testing.assert_array_equal(traces["gymnasium"].valid, traces["envpool"].valid)


def breakout_actions(steps: int, n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4, (steps, n))


def test_atari_transition_semantics_match(cfg_factory):
    """Breakout: learner episodes per life, statistics per game on the unclipped score."""
    need("envpool", "ale_py", "cv2")
    steps, n = 1200, 2
    actions = breakout_actions(steps, n)
    traces = {
        backend: trace(
            env_cfg(cfg_factory, "env=atari", f"env.backend={backend}", f"env.num_envs={n}"),
            steps,
            lambda obs, t: actions[t],
        )
        for backend in ("gymnasium", "envpool")
    }
    for backend, tr in traces.items():
        check_next_step_autoreset(tr)
        assert tr.obs.shape == (n, 4, 84, 84) and tr.obs.dtype == np.uint8, backend
        assert set(np.unique(tr.reward)) <= {-1.0, 0.0, 1.0}, backend  # clipped for learning
        assert not tr.truncated.any(), backend
        for i in range(n):
            games = np.flatnonzero(tr.game_over[:, i])
            assert len(games) >= 1, (backend, i)
            # Five lives: five learner episodes end per game, the game's statistics once.
            first_game = tr.terminated[: games[0] + 1, i]
            assert first_game.sum() == 5, (backend, i)
            assert len(tr.returns[i]) == len(games), backend
            # The game's score is every life's unclipped reward.
            assert tr.returns[i][0] == tr.env_reward[: games[0] + 1, i].sum(), backend
            assert tr.lengths[i][0] == games[0] + 1, backend
    spaces = {
        backend: make_envs(env_cfg(cfg_factory, "env=atari", f"env.backend={backend}"), 0)[0]
        for backend in ("gymnasium", "envpool")
    }
    gym_envs, pool_envs = spaces["gymnasium"], spaces["envpool"]
    assert gym_envs.single_observation_space == pool_envs.single_observation_space
    assert gym_envs.single_action_space == pool_envs.single_action_space
    for envs in spaces.values():
        envs.close()


def test_atari_scores_are_the_games_own(cfg_factory):
    """Space Invaders pays 5-30 points an alien: the learner sees 1, the statistics the score."""
    need("envpool", "ale_py", "cv2")
    steps = 300
    actions = np.random.default_rng(1).integers(0, 6, (steps, 1))
    for backend in ("gymnasium", "envpool"):
        cfg = env_cfg(
            cfg_factory,
            "env=atari",
            "env.id=ALE/SpaceInvaders-v5",
            f"env.backend={backend}",
            "env.num_envs=1",
        )
        tr = trace(cfg, steps, lambda obs, t: actions[t])
        check_next_step_autoreset(tr)
        paid = tr.env_reward > 0
        assert paid.sum() >= 3 and tr.env_reward.max() >= 5, backend
        np.testing.assert_array_equal(tr.reward[paid], 1.0)
        np.testing.assert_array_equal(tr.reward[~paid], 0.0)


def test_envpool_atari_evaluation_and_video_envs_match_training(cfg_factory, tmp_path):
    """Evaluation builds EnvPool with fewer envs; video comes from the gymnasium path (EnvPool
    does not render): all three see one observation space."""
    need("envpool", "ale_py", "cv2")
    cfg = env_cfg(cfg_factory, "env=atari", "env.backend=envpool", "env.num_envs=2")
    train_envs, train_obs, _ = make_envs(cfg, seed=0)
    eval_envs, eval_obs, _ = make_envs(cfg, seed=1, num_envs=1)
    assert eval_envs.single_observation_space == train_envs.single_observation_space
    assert eval_obs.shape[1:] == train_obs.shape[1:] == (4, 84, 84)
    need("moviepy")
    video_envs, video_obs, _ = make_envs(cfg, seed=2, video_dir=tmp_path / "videos")
    assert video_envs.single_observation_space == train_envs.single_observation_space
    assert video_obs.dtype == train_obs.dtype
    for envs in (train_envs, eval_envs, video_envs):
        envs.close()


def test_seeding_is_reproducible_and_per_env(cfg_factory):
    need("envpool")
    cfg = env_cfg(cfg_factory, "env=cartpole", "env.backend=envpool", "env.num_envs=3")
    a, b, c = (make_envs(cfg, seed=s)[1] for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(row) for row in a}) == 3  # each env its own seed
    assert target_return(cfg) == 475.0  # EnvPool's registry, as gymnasium's


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("env.id=tests.custom_env_module:Custom-v0", "module:Id"),
        ("env.id=Acrobat-v1", "env.id='Acrobat-v1' is not an EnvPool id"),
        ("+env.kwargs.gravity=3.0", "env.kwargs.gravity"),
        ("env.id=Breakout-v5", "ALE/Breakout-v5"),
        ("env.wrappers=[{_target_: gymnasium.wrappers.ClipReward}]", "env.wrappers"),
    ],
)
def test_what_envpool_cannot_honour_is_one_line(cfg_factory, override, named):
    need("envpool")
    from sharedppo.envs.requirements import check_extras

    with pytest.raises(ConfigError, match="env.backend") as err:
        check_extras(cfg_factory("env.backend=envpool", override))
    assert named in str(err.value) and "\n" not in str(err.value)


def test_atari_options_envpool_cannot_honour_are_one_line(cfg_factory):
    need("envpool")
    from sharedppo.envs.requirements import check_extras

    for override, named in (
        ("env.atari.grayscale=false", "env.atari.grayscale"),
        ("+env.kwargs.frameskip=1", "env.kwargs.frameskip"),
    ):
        with pytest.raises(ConfigError, match=named):
            check_extras(cfg_factory("env=atari", "env.backend=envpool", override))


def test_missing_envpool_is_one_line_naming_the_extra(tmp_path):
    proc = without(tmp_path, "env.backend=envpool", blocked=(*BARE, "envpool"))
    assert_one_line(proc, "envpool", "env.backend=envpool needs EnvPool")
    assert not (tmp_path / "outputs").exists()


def test_atari_on_envpool_needs_no_ale_py(tmp_path):
    """The envpool extra alone runs Atari: EnvPool brings its own emulator and ROMs."""
    need("envpool")
    proc = without(
        tmp_path,
        "env=atari",
        "env.backend=envpool",
        "env.num_envs=2",
        "ppo.num_steps=16",
        "total_steps=64",
        "checkpoint.every_steps=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        blocked=("ale_py", "cv2"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").is_file()


def test_cartpole_trains_end_to_end_on_envpool(tmp_path):
    need("envpool")
    proc = run_cli(
        "env=cartpole",
        "env.backend=envpool",
        "total_steps=16384",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] >= 16384
    # A random policy averages about 22; a few thousand PPO steps already do far better.
    assert summary["mean_return"] > 60, summary
    assert "Traceback" not in proc.stderr and "WARN" not in proc.stderr
    # Its checkpoint resumes (the env restarts from a reset, as for any C-state env).
    proc = run_cli(
        f"resume={tmp_path / 'run'}", "total_steps=20480", "env.backend=envpool", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] >= 20480


def test_breakout_fast_preset_runs(cfg_factory, tmp_path):
    """The fast Breakout preset: EnvPool's envs with the fp32 recipe of experiment=breakout."""
    need("envpool")
    from sharedppo.run.session import train

    small = ["env.num_envs=2", "ppo.num_steps=32", "total_steps=128", "device=cpu"]
    cfg = cfg_factory("experiment=breakout_fast", *small)
    plain = cfg_factory("experiment=breakout", *small)
    assert (cfg.env.backend, cfg.precision, cfg.torch_threads) == ("envpool", "fp32", 0)
    assert cfg.ppo == plain.ppo and cfg.network == plain.network
    assert cfg.env.atari == plain.env.atari
    result = train(cfg, tmp_path)
    assert result.global_step >= 128
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
