"""EnvPool as the vector env (``env.backend=envpool``), presented as the gymnasium one is.

EnvPool steps its envs in C++ threads and, like the gymnasium path (``envs.py``), uses
next-step autoreset: the step after an episode ends ignores its action and returns the reset
observation with reward 0, so the rollout's valid mask is derived the same way. Its Atari
preprocessing runs inside EnvPool, set here to ``env.atari``'s values; the adapter below
renames EnvPool's info keys to the ones the rollout and the episode tracker read
(``env_reward``: the unclipped score, ``game_over``: the real end of a game).

Where the two Atari paths still differ (neither changes what a transition or a game is): after
a lost life EnvPool plays 1 to noop_max single no-op frames before FIRE, where ours plays one
frame-skipped no-op; EnvPool presses FIRE when the game has it anywhere in its action set,
ours when it is action 1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from ..config import ConfigError, EnvConfig
from ..extras import require

# ale-py's ALE/*-v5 defaults (sticky actions 0.25, the minimal action set, 108,000 frames),
# which the gymnasium path uses unless env.kwargs say otherwise; EnvPool's own differ.
ALE_V5 = {"repeat_action_probability": 0.25, "full_action_space": False}
ALE_MAX_FRAMES = 108_000
# Set by the builder itself; a user cannot hand them over in env.kwargs.
_OWN = {
    "num_envs",
    "batch_size",
    "seed",
    "env_seed",
    "max_episode_steps",
    "base_path",
    "gym_reset_return_info",
    "max_num_players",
    "reward_threshold",
}


def task_id(env_id: str) -> str:
    """EnvPool's name for a gymnasium id: ALE/Breakout-v5 is Breakout-v5, the rest as is."""
    return env_id.removeprefix("ALE/")


def check(cfg: EnvConfig) -> None:
    """Raise ConfigError (one line naming the key) unless EnvPool can build ``cfg`` as the
    gymnasium path would; first that EnvPool itself is installed."""
    require("envpool", "env.backend=envpool")
    import envpool

    if ":" in cfg.id:
        raise ConfigError(
            f"env.id={cfg.id!r}: a module:Id env is not available with env.backend=envpool "
            "(EnvPool builds only its own ids); use env.backend=gymnasium"
        )
    task = task_id(cfg.id)
    if task not in envpool.list_all_envs():
        raise ConfigError(
            f"env.id={cfg.id!r} is not an EnvPool id; use env.backend=gymnasium for it"
        )
    if not cfg.id.startswith("ALE/") and type(envpool.make_spec(task)).__name__ == "AtariEnvSpec":
        # Its own defaults (no life-loss episodes, no clipping, no sticky actions) are not ours.
        raise ConfigError(
            f"env.id={cfg.id!r}: with env.backend=envpool an Atari game is named as in "
            f"gymnasium, env.id=ALE/{task} with env=atari (its preprocessing set to ours)"
        )
    if cfg.wrappers:
        raise ConfigError(
            "env.wrappers is not available with env.backend=envpool (its envs are C++ "
            "objects that Python wrappers cannot reach); use env.backend=gymnasium"
        )
    atari = cfg.id.startswith("ALE/")
    if atari and not cfg.atari.enabled:
        raise ConfigError(
            "env.atari.enabled=false is not available with env.backend=envpool (its Atari "
            "envs always preprocess); use env.backend=gymnasium"
        )
    if atari and not cfg.atari.grayscale:
        raise ConfigError(
            "env.atari.grayscale=false is not available with env.backend=envpool (its colour "
            "frames are laid out channel-first); use env.backend=gymnasium"
        )
    known = set(ALE_V5) | {"max_num_frames_per_episode"} if atari else _options(task)
    for name in cfg.kwargs:
        if name not in known:
            raise ConfigError(
                f"env.kwargs.{name} is not available with env.backend=envpool for "
                f"{cfg.id!r}; it takes: {', '.join(sorted(known)) or 'none'}"
            )


def _options(task: str) -> set[str]:
    import envpool

    return set(envpool.make_spec(task).config._fields) - _OWN


def reward_threshold(env_id: str) -> float | None:
    """EnvPool's solved bar for the id (its registry copies gymnasium's), or None."""
    import envpool

    value = getattr(envpool.make_spec(task_id(env_id)).config, "reward_threshold", None)
    return None if value is None else float(value)


def make_pool(cfg: EnvConfig, seed: int, num_envs: int) -> VectorEnv:
    """EnvPool's vector env for ``cfg`` (checked first), seeded: env i gets ``seed + i``."""
    check(cfg)
    import envpool

    options: dict[str, Any] = {"num_envs": num_envs, "seed": seed}
    if cfg.id.startswith("ALE/"):
        options.update(_atari_options(cfg))
    else:
        options.update(cfg.kwargs)
        if cfg.max_episode_steps is not None:
            options["max_episode_steps"] = cfg.max_episode_steps
    try:
        with warnings.catch_warnings():
            # Its spaces are built from float64 bounds, which gymnasium warns about once cast.
            warnings.simplefilter("ignore", UserWarning)
            pool = envpool.make_gymnasium(task_id(cfg.id), **options)
            pool.single_observation_space, pool.single_action_space  # noqa: B018
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(
            f"env.kwargs={dict(cfg.kwargs)!r} were refused by EnvPool's {cfg.id!r}: {err}"
        ) from None
    autoreset = pool.metadata.get("autoreset_mode")
    if autoreset != AutoresetMode.NEXT_STEP:  # what the rollout's valid mask assumes
        raise ConfigError(
            f"env.backend=envpool: EnvPool uses {autoreset}; sharedppo expects "
            "NEXT_STEP (EnvPool >= 1.2.5 with gymnasium 1.x has it)"
        )
    return EnvPoolEnvs(pool, atari=cfg.id.startswith("ALE/"))


def _atari_options(cfg: EnvConfig) -> dict[str, Any]:
    ale = {**ALE_V5, **cfg.kwargs}
    atari = cfg.atari
    # The gymnasium path's ALE counts its frame limit in emulator frames, and so does an
    # env.max_episode_steps there (its TimeLimit sits under the frame skip); EnvPool counts
    # agent steps.
    frame_limit = ale.pop("max_num_frames_per_episode", ALE_MAX_FRAMES)
    frames = cfg.max_episode_steps or frame_limit
    return {
        **ale,
        "max_episode_steps": max(1, frames // atari.frame_skip),
        # EnvPool's noops are 1..noop_max single frames, as gymnasium's AtariPreprocessing's;
        # it needs at least one.
        "noop_max": max(1, atari.noop_max),
        "frame_skip": atari.frame_skip,  # max-pools the last two frames, as ours does
        "episodic_life": atari.episodic_life,
        "use_fire_reset": atari.fire_reset,
        "img_height": atari.screen_size,
        "img_width": atari.screen_size,
        "gray_scale": True,
        "reward_clip": atari.clip_reward,
        "stack_num": atari.frame_stack,
    }


class EnvPoolEnvs(VectorWrapper):
    """EnvPool's vector env with the gymnasium path's info keys (``vector.INFO_KEYS``).

    Classic control and MuJoCo infos are dropped (the gymnasium path's carry nothing the
    rollout reads). Atari's become ``env_reward`` (EnvPool's unclipped ``reward``) and
    ``game_over`` (its ``terminated``, the real end of the game, or a time-limit truncation),
    as ``atari.RecordGameScore`` writes them.
    """

    def __init__(self, env: VectorEnv, atari: bool) -> None:
        super().__init__(env)
        self.atari = atari

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        # EnvPool is seeded when it is made (make_pool); it warns about a seed here.
        obs, info = self.env.reset(options=options)
        return obs, self._info(info, None)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, reward, terminated, truncated, self._info(info, truncated)

    def _info(self, info: dict[str, Any], truncated: np.ndarray | None) -> dict[str, Any]:
        if not self.atari:
            return {}
        game_over = info["terminated"].astype(bool)
        if truncated is not None:
            game_over |= truncated
        return {
            "env_reward": info["reward"].astype(np.float64),
            "game_over": game_over,
        }
