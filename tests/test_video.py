"""Evaluation videos: MP4s in the job folder and an animated GIF in TensorBoard, quietly."""

from __future__ import annotations

import io

import pytest
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from tests.conftest import run_cli


def test_video_reaches_tensorboard_as_an_animated_image(tmp_path):
    pytest.importorskip("moviepy", reason="the video extra is not installed")
    from PIL import Image

    out = tmp_path / "run"
    proc = run_cli(
        "total_steps=1024",
        "checkpoint.every_steps=null",
        "eval.video=true",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
        # The variable whose absence made SDL print "XDG_RUNTIME_DIR is invalid".
        env={"XDG_RUNTIME_DIR": ""},
    )
    assert proc.returncode == 0, proc.stderr
    for noise in ("moviepy.editor", "XDG_RUNTIME_DIR", "error", "pygame community"):
        assert noise not in proc.stderr + proc.stdout
    assert list((out / "videos").glob("*.mp4"))

    acc = EventAccumulator(str(out), size_guidance={IMAGES: 0})
    acc.Reload()
    assert acc.Tags()["images"] == ["eval/video"]
    (event,) = acc.Images("eval/video")
    summary = (out / "summary.json").read_text()
    assert f'"global_step": {event.step},' in summary
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and gif.is_animated and gif.n_frames > 1
    assert (gif.width, gif.height) == (event.width, event.height)
    assert max(gif.size) <= 320
