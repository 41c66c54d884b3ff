"""Optional features and the extra that brings each: the table, and the one-line refusal.

A feature whose packages are missing is reported as one line naming
``pip install "sharedppo[EXTRA]"``, before training, instead of a traceback part-way through a
run or gymnasium's advice to install gymnasium's own extras. Presence is tested by importing
what the feature imports, so a half-installed extra is caught too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
from dataclasses import dataclass
from typing import NoReturn

import gymnasium as gym

from .config import ConfigError


@dataclass(frozen=True)
class Feature:
    extra: str
    description: str
    modules: tuple[str, ...]


FEATURES = {
    # gymnasium's Box2D envs import pygame at module level, not only to render.
    "box2d": Feature("box2d", "Box2D", ("Box2D", "pygame")),
    # gymnasium's MuJoCo envs import their renderer (imageio) even when nothing is rendered.
    "mujoco": Feature("mujoco", "MuJoCo", ("mujoco", "imageio")),
    "atari": Feature("atari", "the Arcade Learning Environment", ("ale_py", "cv2")),
    # RecordVideo writes MP4s with moviepy; the TensorBoard GIF reads them back with imageio;
    # classic-control envs draw their frames with pygame.
    "video": Feature(
        "video", "video recording", ("moviepy", "imageio", "imageio_ffmpeg", "pygame")
    ),
    "joblib": Feature("sweep", "the joblib launcher", ("hydra_plugins.hydra_joblib_launcher",)),
    "submitit": Feature(
        "sweep", "the submitit launcher", ("hydra_plugins.hydra_submitit_launcher",)
    ),
    "tune": Feature("sweep", "Optuna", ("optuna",)),
    "report": Feature("sweep", "matplotlib", ("matplotlib",)),
    "export": Feature("export", "ONNX", ("onnx", "onnxscript")),
    "envpool": Feature("envpool", "EnvPool", ("envpool",)),
}

# gymnasium env modules (by entry point) -> the feature they need.
ENV_MODULES = {
    "gymnasium.envs.box2d": "box2d",
    "gymnasium.envs.mujoco": "mujoco",
    "ale_py": "atari",
}

# hydra/launcher options -> the feature (plugin) that provides them.
LAUNCHERS = {
    "joblib": "joblib",
    "submitit_local": "submitit",
    "submitit_slurm": "submitit",
    "slurm": "submitit",  # conf/hydra/launcher/slurm.yaml builds on submitit_slurm
}


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def require(feature: str, what: str, *also: str) -> None:
    """Raise ConfigError (one line, naming the extra) unless ``feature``'s modules import.

    ``also``: further modules that belong to the same extra (an env's own module, say).
    """
    spec = FEATURES[feature]
    # pygame greets on stdout when imported; a check must not print.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    for module in (*spec.modules, *also):
        try:
            importlib.import_module(module)
        except (ImportError, gym.error.DependencyNotInstalled) as err:
            raise ConfigError(
                f"{what} needs {spec.description} ({first_line(err)}): "
                f'pip install "sharedppo[{spec.extra}]"'
            ) from None


def check_launcher(name: str) -> None:
    """``hydra/launcher=NAME`` names a plugin that is installed (Hydra's own launchers pass)."""
    if name in LAUNCHERS:
        require(LAUNCHERS[name], f"hydra/launcher={name}")


def headless_rendering() -> None:
    """Render rgb_array frames without a display, and without probing for one.

    pygame's display (classic control draws through it even off-screen) would otherwise probe
    for Wayland/X11 and print "XDG_RUNTIME_DIR is invalid"; MuJoCo needs an off-screen GL
    context when no display exists. A user's own settings win.
    """
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if not os.environ.get("SDL_VIDEODRIVER"):
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    if not os.environ.get("DISPLAY") and not os.environ.get("MUJOCO_GL"):
        os.environ["MUJOCO_GL"] = "egl"
    # PyOpenGL logs at INFO that its optional C speed-ups are absent; Hydra shows INFO.
    logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)


def prepare_video(what: str = "eval.video=true") -> None:
    """Call before building a video env: the extra is installed, rendering is headless."""
    require("video", what)
    headless_rendering()


class OneLineParser(argparse.ArgumentParser):
    """The secondary commands' argument parser: a mistake is one line and exit 2, like every
    other refusal of sharedppo's (argparse's own error prints the usage above it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def finite(text: str) -> float:
    """An argparse type: a float that is a number (inf and nan are typos, not thresholds)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value
