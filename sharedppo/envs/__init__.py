"""The environments: the one builder (gymnasium or EnvPool behind one contract), the lean sync
vector env, the Atari preprocessing, Dict observations flattened with a layout, environment
state for exact resume, and the check that a config's env packages are installed.

The contract every backend meets (``build.make_envs`` checks or builds it): a gymnasium
``VectorEnv`` with NEXT_STEP autoreset (the rollout's valid mask assumes it), one flat
observation array per step (Dict observations flattened, with a layout), and in the infos
only what the rollout reads: ``action_mask`` where actions are masked, ``env_reward`` (the
env's own reward, where it was shaped or clipped for learning) and ``game_over`` (the end of
a game, where a lost life ends the learner's episode).

May import ``config`` and ``extras``.
"""
