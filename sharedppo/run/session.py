"""``train``: a composed config in, a trained job folder out (build, load, fit, finish)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..config import Config, ConfigError, validate
from ..jobdir import JobDir
from ..nn.precision import check_precision
from .checkpoint import check_writable, read
from .resume import check_resume, record_resume, resume_note
from .signals import Interrupted, stop_requests
from .trainer import Trainer, TrainingError, TrainResult

__all__ = [
    "Interrupted",
    "TrainResult",
    "TrainingError",
    "resolve_device",
    "train",
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name!r} is not allowed: this machine has no CUDA device "
            f"(torch {torch.__version__}); use device=cpu or device=auto"
        )
    return torch.device(name)


def train(
    cfg: DictConfig,
    out_dir: Path,
    on_update: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Train from a composed config, writing TensorBoard events, checkpoints and
    ``summary.json`` to out_dir; returns the result, with the agent as ``result.agent`` and
    the folder as ``result.out_dir``.

    ``on_update(global_step, mean_return)`` is called after every update; returning True
    stops the run as a pre-emption would (last.pt written, resumable).
    """
    validate(cfg)
    c: Config = OmegaConf.to_object(cfg)  # plain dataclasses: attribute access in hot loops
    config = OmegaConf.to_container(cfg, resolve=True)
    device = resolve_device(c.device)
    check_precision(c.precision, device)
    job = JobDir(out_dir)
    saved = None
    if c.resume is not None:
        saved = read(JobDir(c.resume).last, map_location=device)
        changes = check_resume(saved, config, Path(c.resume))
    check_writable(job)
    if c.torch_threads > 0:
        torch.set_num_threads(c.torch_threads)

    trainer = Trainer(c, config, out_dir, device)
    if saved is not None:
        step = saved["progress"]["global_step"]
        try:
            trainer.load(saved, resume_note(step, changes))
        except BaseException:
            trainer.close()
            raise
        record_resume(out_dir, step, changes)  # only a resume that happened is on record
    extra: dict[str, str] = {}
    status = "failed"
    try:
        with stop_requests() as requested:
            trainer.fit(requested, on_update)
        status = "completed"
    except Interrupted as stop:
        status = "interrupted"
        extra = {"signal": str(stop), "resume": f"sharedppo resume={out_dir}"}
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint now, last.pt is the last one
        status, extra = "interrupted", {"signal": "SIGINT", "resume": f"sharedppo resume={out_dir}"}
        raise
    except BaseException as err:
        extra = {"error": f"{type(err).__name__}: {err}"}
        raise
    finally:
        trainer.close()
        result = trainer.result(status)
        job.write_summary({**result.summary(), **extra})
    trainer.finish()
    result.agent, result.out_dir = trainer.agent, out_dir
    return result
