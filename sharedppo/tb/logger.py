"""TensorBoard logging: one run per job folder, HParams in the same folder.

A sink only: what it writes (returns, losses, the return window's mean) is owned elsewhere.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary

from . import dashboard
from .events import EventFile

log = logging.getLogger("sharedppo")

# The update's stats that are a loss or a quantity of the policy change go under losses/; the
# rest (gradient norm, steps taken, clip range in force, SPS, learning rate) describes the
# optimisation and goes under charts/.
LOSS_STATS = frozenset(
    {
        "policy_loss",
        "value_loss",
        "entropy",
        "old_approx_kl",
        "approx_kl",
        "clipfrac",
        "explained_variance",
    }
)


def stat_tag(name: str) -> str:
    """The TensorBoard tag of an update's stat, by its name."""
    return f"losses/{name}" if name in LOSS_STATS else f"charts/{name}"


def shown_return(x: float) -> str:
    """A return as a line shows it: one decimal, or three where one would round a small
    return away (Blackjack's -0.043 is not -0.0, a 0.957 is not 1.0)."""
    return f"{x:.1f}" if abs(x) >= 1 or x == 0 or not math.isfinite(x) else f"{x:.3f}"


class Logger:
    """Writes event files straight into ``log_dir``, and the progress line."""

    # A live progress line on a terminal; false (a sweep's parallel jobs): plain log lines.
    live = True

    def __init__(
        self,
        log_dir: Path,
        config: dict[str, Any],
        resume_step: int | None = None,
        overrides: Sequence[str] = (),
        has_target: bool = True,
    ) -> None:
        """``overrides``: the job's command-line overrides (Hydra's, or a tuning trial's); the
        HParams dashboard lists those keys first. ``has_target``: whether the run has a
        target return, and so the reached_target metric."""
        # On resume (resume_step = checkpoint step + 1), purge_step makes TensorBoard drop
        # what the interrupted session wrote after its last checkpoint, so curves continue
        # without duplicated steps.
        self.writer = EventFile(log_dir, purge_step=resume_step)
        self._last_print = time.perf_counter()
        self._tty = sys.stderr.isatty() and self.live
        self._last_step = 0
        self._last_metrics: tuple[int, list[tuple[str, float]]] | None = None
        if resume_step is not None:
            return
        # Written into this run (add_hparams would open a timestamped sub-run), so the
        # hyperparameters sit next to the curves they produced.
        swept = dashboard.sweep_values(Path(log_dir))
        for summary in dashboard.hparams_summaries(config, overrides, swept, has_target):
            self.writer.add_summary(summary)
        self.writer.add_summary(dashboard.layout_summary())

    def _write(self, step: int, tagged: list[tuple[str, float]]) -> None:
        # One event holding every value of a step: add_scalar builds and queues one event per
        # value (about 50 us each), a tenth of a small network's whole PPO iteration.
        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in tagged]
        self.writer.add_summary(Summary(value=values), step)
        self._last_step = max(self._last_step, step)

    def episodes_finished(self, step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        tagged = []
        for ret, length in zip(returns.tolist(), lengths.tolist(), strict=True):
            tagged += [("charts/episodic_return", ret), ("charts/episodic_length", length)]
        self._write(step, tagged)

    def update_stats(
        self,
        step: int,
        stats: dict[str, float],
        mean_return: float,
        window: Sequence[float] = (),
    ) -> None:
        """One update's stats by name (tagged by :func:`stat_tag`), the window's mean return
        and the lowest and highest return in the window (the Custom Scalars band)."""
        low, high = (min(window), max(window)) if window else (math.nan, math.nan)
        spread = [(dashboard.RETURN_MIN, low), (dashboard.RETURN_MAX, high)]
        tagged = [(stat_tag(name), value) for name, value in stats.items()]
        self._write(step, [*tagged, (dashboard.RETURN_MEAN, mean_return), *spread])

    def final_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        """The HParams metrics of the run so far (``dashboard.final_metrics``), and the steps
        and seconds to the target once reached; None leaves one out. Written at each
        checkpoint and at the end of every run, completed, interrupted or failed, so a run
        shows in the HParams views; ``step`` defaults to the last one logged."""
        scalars = dashboard.metric_scalars(metrics)
        at = self._last_step if step is None else step
        if scalars and (at, scalars) != self._last_metrics:  # the same again: nothing new
            self._write(at, scalars)
            self._last_metrics = (at, scalars)
        self.writer.flush()  # on disk with the checkpoint: a job killed later still shows

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def eval_result(self, step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        write_eval(self.writer, step, returns, lengths)

    def progress(
        self, step: int, total: int, sps: float, episodes: int, mean_return: float
    ) -> None:
        """A live line on a terminal; a plain log line every 10 s elsewhere (CI, clusters)."""
        now = time.perf_counter()
        every = 0.2 if self._tty else 10.0
        if now - self._last_print < every and step < total:
            return
        self._last_print = now
        eta = (total - step) / sps if sps > 0 else float("nan")
        line = (
            f"step {step:,}/{total:,}  {sps:,.0f} steps/s  episodes {episodes:,}  "
            f"mean return {shown_return(mean_return)}  ETA {eta:,.0f} s"
        )
        if self._tty:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        else:
            log.info(line)

    def close(self) -> None:
        if self._tty:
            print(file=sys.stderr)
        self.writer.flush()
        self.writer.close()


def write_eval(writer: EventFile, step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
    writer.add_scalar("eval/mean_return", float(returns.mean()), step)
    writer.add_scalar("eval/std_return", float(returns.std()), step)
    writer.add_scalar("eval/mean_length", float(lengths.mean()), step)


GIF_MAX_SIDE = 320  # px; TensorBoard shows a preview, the MP4 keeps full size
GIF_MAX_FRAMES = 200  # a longer episode is shown at a lower frame rate, in real time


def video_summary(tag: str, video: Path) -> Summary:
    """An MP4 as an animated-GIF image summary, which TensorBoard's image dashboard plays.

    torch's add_video would need ``moviepy.editor``, which moviepy 2 no longer has.
    """
    import imageio.v3 as iio
    from PIL import Image

    meta = iio.immeta(video, plugin="FFMPEG")
    fps = float(meta.get("fps") or 30.0)
    count = max(1, round(float(meta.get("duration") or 0.0) * fps))
    step = -(-count // GIF_MAX_FRAMES)
    # Streamed, keeping only the frames shown: a whole episode decoded at once can be a GB.
    kept = [f for i, f in enumerate(iio.imiter(video, plugin="FFMPEG")) if i % step == 0]
    scale = -(-max(kept[0].shape[:2]) // GIF_MAX_SIDE)
    # Box-averaged, so one-pixel lines (CartPole's track) stay visible.
    frames = np.stack([np.asarray(Image.fromarray(f).reduce(scale)) for f in kept])
    # Browsers play delays under 20 ms as 100 ms.
    duration = max(20.0, 1000.0 * step / fps)
    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=duration, loop=0)
    image = Summary.Image(
        height=frames.shape[1],
        width=frames.shape[2],
        colorspace=frames.shape[3],
        encoded_image_string=gif,
    )
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def log_eval(
    job: Path, step: int, returns: np.ndarray, lengths: np.ndarray, video_dir: Path | None
) -> None:
    """Write an evaluation (and its newest video, as an animated GIF) into a job's run."""
    writer = EventFile(job)
    write_eval(writer, step, returns, lengths)
    videos = list(video_dir.glob("*.mp4")) if video_dir is not None else []
    if videos:
        newest = max(videos, key=lambda p: p.stat().st_mtime)
        writer.add_summary(video_summary("eval/video", newest), step)
    writer.close()
