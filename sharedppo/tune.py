"""Hyperparameter tuning on current Optuna, with pruning and a resumable SQLite study.

    sharedppo-tune --search cartpole --trials 30 [overrides ...]

The search space is a YAML file in ``conf/hparams_search/`` (or any path). Each trial composes
its config through Hydra's compose API, trains as a normal job (TensorBoard events, .hydra/,
checkpoints in its own folder), and reports the 20-episode mean return after every update so
the pruner can stop it early. Rerunning the same command continues the study where it
stopped. The best trial is written as a preset usable as ``experiment=NAME``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .checkpoint import CheckpointError
from .compose import compose_checked
from .config import ConfigError
from .extras import check_extras, require

log = logging.getLogger("sharedppo.tune")


def load_space(search: str) -> DictConfig:
    """A YAML file, or a name in conf/hparams_search/ composed through Hydra."""
    path = Path(search)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--search {search!r}: no such file")
        return OmegaConf.load(path)
    space = compose_checked([f"hparams_search={search}"]).hparams_search
    if space is None:  # an optional group skips a missing option silently
        folder = files("sharedppo.conf") / "hparams_search"
        names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise ConfigError(
            f"--search {search!r} is not allowed: a .yaml file or one of " + ", ".join(names)
        )
    return space


def suggest(trial: Any, name: str, spec: DictConfig) -> Any:
    kind = spec.type
    if kind == "float":
        return trial.suggest_float(name, spec.low, spec.high, log=bool(spec.get("log", False)))
    if kind == "int":
        return trial.suggest_int(name, spec.low, spec.high, log=bool(spec.get("log", False)))
    if kind == "categorical":
        return trial.suggest_categorical(name, list(spec.choices))
    raise ConfigError(f"params.{name}.type={kind!r} is not allowed: float, int or categorical")


def make_pruner(spec: DictConfig) -> Any:
    import optuna

    kind = spec.get("type", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.get("n_startup_trials", 5),
            n_warmup_steps=spec.get("n_warmup_steps", 0),
        )
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner.type={kind!r} is not allowed: median, successive_halving or none")


def write_preset(cfg: DictConfig, path: Path, note: str) -> None:
    """The whole resolved config as a @package _global_ preset: it sets every value."""
    body = OmegaConf.to_container(cfg, resolve=True)
    body.pop("resume", None)
    body.pop("hparams_search", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# @package _global_\n# {note}\n" + OmegaConf.to_yaml(body))


def tune(space: DictConfig, out: Path, trials: int, extra: list[str], preset_dir: Path) -> Any:
    import optuna

    from .runner import train

    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=space.study_name,
        storage=storage,
        direction=space.get("direction", "maximize"),
        sampler=optuna.samplers.TPESampler(seed=space.get("seed")),
        pruner=make_pruner(space.get("pruner", {})),
        load_if_exists=True,
    )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    base = [*space.get("overrides", []), *extra]

    def objective(trial: optuna.Trial) -> float:
        values = [f"{name}={suggest(trial, name, spec)}" for name, spec in space.params.items()]
        overrides = [*base, *values, f"seed={space.get('seed', 0) + trial.number}"]
        cfg = compose_checked(overrides)
        folder = out / f"trial_{trial.number:03d}"
        # The same layout as a Hydra job, so sharedppo-report and resume= read it.
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
        (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))

        def on_update(step: int, mean_return: float) -> bool:
            if math.isfinite(mean_return):
                trial.report(mean_return, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at env step {step}")
            return False

        result = train(cfg, folder, on_update=on_update)
        if not math.isfinite(result.mean_return):
            raise optuna.TrialPruned("no episode finished")
        return result.mean_return

    if trials > done:
        study.optimize(objective, n_trials=trials - done, catch=(ConfigError, CheckpointError))
    best = study.best_trial
    best_cfg = OmegaConf.load(out / f"trial_{best.number:03d}" / ".hydra" / "config.yaml")
    preset = preset_dir / "experiment" / f"{space.study_name}_best.yaml"
    write_preset(
        best_cfg,
        preset,
        f"best trial {best.number} of study {space.study_name!r} "
        f"(mean return {best.value:.2f}), written by sharedppo-tune",
    )
    return study, preset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sharedppo-tune", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--search",
        default="cartpole",
        help="a file, or a name in conf/hparams_search/ (default: cartpole)",
    )
    parser.add_argument("--trials", type=int, default=None, help="total trials for the study")
    parser.add_argument("--out", type=Path, default=None, help="default: tune/STUDY_NAME")
    parser.add_argument(
        "--preset-dir",
        type=Path,
        default=None,
        help="where experiment/STUDY_best.yaml goes (default: the --out folder)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every trial")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        require("tune", "sharedppo-tune")
        space = load_space(args.search)
        # Every trial composes these; a bad value or a missing package is one line now, not
        # one failed trial after another.
        check_extras(compose_checked([*space.get("overrides", []), *args.overrides]))
        out = args.out or Path("tune") / space.study_name
        trials = args.trials if args.trials is not None else int(space.get("n_trials", 20))
        study, preset = tune(space, out, trials, args.overrides, args.preset_dir or out)
    except ConfigError as err:
        print(f"sharedppo-tune: error: {err}", file=sys.stderr)
        sys.exit(2)
    best = study.best_trial
    print(f"best trial {best.number}: mean return {best.value:.2f} with {best.params}")
    print(f"preset written to {preset}; use it with:")
    print(
        f"  sharedppo 'hydra.searchpath=[file://{preset.parent.parent.resolve()}]' "
        f"experiment={preset.stem}"
    )


if __name__ == "__main__":
    main()
